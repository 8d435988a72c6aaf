//! The catalog written out in its JSON form: [`serde::Serialize`] for [`Catalog`] and its parts.
//!
//! What is written is the canonical form of what [`Catalog::from_value`] reads: every plan and
//! add-on with a `limits` object, a resource without limits as `null`, a rule as its bare limit
//! unless it carries an overage, an anchor or a rate, and the optional sections (`trial`,
//! `actions`, `addons`, `meters`) only when they hold something. Read back, it is the same
//! catalog (the trial's duration to within a nanosecond or so: the JSON gives it in days).

use std::sync::Arc;

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

use super::cost::ResourceMeters;
use super::json::DAY_SECS;
use super::{
    Addon, Anchor, Catalog, Cost, Limit, Overage, Plan, Rate, ResourceLimits, Rule, Trial,
};
use crate::names::NameMap;

impl Serialize for Catalog {
    /// `{"trial": .., "actions": [..], "plans": [..], "addons": [..], "meters": {..}}`, the
    /// optional sections only when they hold something.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(trial) = &self.trial {
            map.serialize_entry("trial", trial)?;
        }
        if !self.actions.is_empty() {
            map.serialize_entry("actions", &Names(&self.actions))?;
        }
        map.serialize_entry("plans", &self.plans)?;
        if !self.addons.is_empty() {
            map.serialize_entry("addons", &self.addons)?;
        }
        if !self.meters.is_empty() {
            map.serialize_entry("meters", &Meters(&self.meters))?;
        }
        map.end()
    }
}

impl Serialize for Plan {
    /// `{"name": "pro", "limits": {..}}`, with `credits`, `anchor` and `rate` when set.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        named_entries(&mut map, &self.name, &self.limits, &self.credits)?;
        anchor_and_rate(&mut map, self.anchor, self.rate.as_ref())?;
        map.end()
    }
}

impl Serialize for Addon {
    /// `{"name": "more-clients", "limits": {..}}`, with `credits` when it adds to pools.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        named_entries(&mut map, &self.name, &self.limits, &self.credits)?;
        map.end()
    }
}

/// What a plan and an add-on both write: `name`, `limits`, and `credits` when it has pools.
fn named_entries<M: SerializeMap, C: Serialize>(
    map: &mut M,
    name: &str,
    limits: &NameMap<ResourceLimits>,
    credits: &NameMap<C>,
) -> Result<(), M::Error> {
    map.serialize_entry("name", name)?;
    map.serialize_entry("limits", &ByName(limits))?;
    if !credits.is_empty() {
        map.serialize_entry("credits", &ByName(credits))?;
    }
    Ok(())
}

/// What a plan and a rule both write when set: `anchor` and `rate`.
fn anchor_and_rate<M: SerializeMap>(
    map: &mut M,
    anchor: Option<Anchor>,
    rate: Option<&Rate>,
) -> Result<(), M::Error> {
    if let Some(anchor) = anchor {
        map.serialize_entry("anchor", &anchor)?;
    }
    if let Some(rate) = rate {
        map.serialize_entry("rate", rate)?;
    }
    Ok(())
}

impl Serialize for Trial {
    /// `{"duration": days, "fallback": "free"}`, the fallback only when there is one.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("duration", &(self.duration.as_secs_f64() / DAY_SECS))?;
        if let Some(fallback) = &self.fallback {
            map.serialize_entry("fallback", &**fallback)?;
        }
        map.end()
    }
}

impl Serialize for ResourceLimits {
    /// `null` when no action is limited (the resource is governed, and unlimited), else the
    /// rules by action name.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.is_empty() {
            return serializer.serialize_none();
        }
        serializer.collect_map(self.rules())
    }
}

impl Serialize for Rule {
    /// The limit as [`Limit`] writes it when the rule carries nothing else; otherwise an object
    /// with `max` and `per` (as far as the limit has them) and `overage`, `anchor` and `rate`
    /// when set: `{"max": 1000, "per": "month", "overage": 200}`, `{"rate": {"max": 60, "per":
    /// "minute"}}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.overage == Overage::Off && self.anchor.is_none() && self.rate.is_none() {
            return self.limit.serialize(serializer);
        }
        let mut map = serializer.serialize_map(None)?;
        if let Some(max) = self.limit.maximum() {
            map.serialize_entry("max", &max)?;
        }
        if let Limit::Periodic { per, .. } = &self.limit {
            map.serialize_entry("per", per)?;
        }
        if self.overage != Overage::Off {
            map.serialize_entry("overage", &self.overage)?;
        }
        anchor_and_rate(&mut map, self.anchor, self.rate.as_ref())?;
        map.end()
    }
}

impl Serialize for Anchor {
    /// `"calendar"` or `"subscription"`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Serialize for Rate {
    /// `{"max": 60, "per": "minute"}`, with `burst` when it is less than `max`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("max", &self.max)?;
        map.serialize_entry("per", &self.per)?;
        if self.burst != self.max {
            map.serialize_entry("burst", &self.burst)?;
        }
        map.end()
    }
}

impl Serialize for Cost {
    /// `{"cost": 5}` or `{"report": true, "estimate": 200}`, with `credits` naming its pool.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if self.is_reported() {
            map.serialize_entry("report", &true)?;
            map.serialize_entry("estimate", &self.units())?;
        } else {
            map.serialize_entry("cost", &self.units())?;
        }
        if let Some(pool) = self.pool() {
            map.serialize_entry("credits", pool)?;
        }
        map.end()
    }
}

/// Names as a JSON array of strings (`Arc<str>` is `Serialize` only with serde's `rc` feature).
struct Names<'a>(&'a [Arc<str>]);

impl Serialize for Names<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for name in self.0 {
            seq.serialize_element(&**name)?;
        }
        seq.end()
    }
}

/// A [`NameMap`] as a JSON object, in its order.
struct ByName<'a, V>(&'a NameMap<V>);

impl<V: Serialize> Serialize for ByName<'_, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, value)| (&**name, value)))
    }
}

/// The catalog's meters, by resource and then by action.
struct Meters<'a>(&'a NameMap<ResourceMeters>);

impl Serialize for Meters<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(resource, meters)| {
            let by_action = ActionMeters(meters);
            (&**resource, by_action)
        }))
    }
}

/// One resource's meters, by action name.
struct ActionMeters<'a>(&'a ResourceMeters);

impl Serialize for ActionMeters<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(action, meter)| (action, meter)))
    }
}

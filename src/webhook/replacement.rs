//! [`Replacement`]: a user's whole rights from one billing source.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::subscriber::{AddonGrant, Assignment, Subscriber};

/// A user's complete rights as one billing source (such as Stripe) sees them, to replace
/// whatever that source granted before: the plan assignment, the add-on grants marked with the
/// source, and the billing cycle's anchor.
///
/// A receiver builds one for each event it applies (the `stripe` feature's receiver does, with
/// the source `"stripe"`) and passes it to [`EntitlementHook::replace`](super::EntitlementHook::replace).
/// [`apply_to`](Self::apply_to) is the replacement on a [`Subscriber`] record, for hooks that
/// read and write whole records:
///
/// - the plan assignment becomes [`plan`](Self::plan) (`None` removes it), whoever set it
///   before;
/// - the add-on grants whose [`source`](AddonGrant::source) is this source are replaced by
///   [`addons`](Self::addons), each marked with the source; grants with another source, or
///   none, are kept;
/// - the [`cycle_anchor`](Subscriber::cycle_anchor) becomes [`cycle_anchor`](Self::cycle_anchor);
/// - usage is kept.
///
/// ```
/// use tower_plans::subscriber::{AddonGrant, Assignment};
/// use tower_plans::webhook::Replacement;
/// use tower_plans::Subscriber;
///
/// let mut john = Subscriber::new()
///     .with_plan(Assignment::new("free"))
///     .with_addon(AddonGrant::new("more-clients").source("stripe"))
///     .with_addon(AddonGrant::new("promo")) // granted by an admin: kept
///     .with_usage("clients", 3);
/// let rights = Replacement::new("john", "stripe")
///     .plan(Assignment::new("pro").expires_at(1_704_067_200_000))
///     .addon(AddonGrant::new("seats").quantity(5))
///     .cycle_anchor(1_701_388_800_000);
/// rights.apply_to(&mut john);
/// assert_eq!(john.plan_name(), Some("pro"));
/// assert_eq!(john.addons, [
///     AddonGrant::new("promo"),
///     AddonGrant::new("seats").quantity(5).source("stripe"),
/// ]);
/// assert_eq!(john.cycle_anchor, Some(1_701_388_800_000));
/// assert_eq!(john.usage.count("clients"), Some(3));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Replacement {
    /// The user whose rights these are.
    pub user: String,
    /// The source the rights come from (`"stripe"`), which marks its add-on grants.
    pub source: Arc<str>,
    /// The plan assignment; `None`: no plan.
    pub plan: Option<Assignment>,
    /// The add-on grants, each marked with [`source`](Self::source).
    pub addons: Vec<AddonGrant>,
    /// When the billing cycle started, in milliseconds since the Unix epoch.
    pub cycle_anchor: Option<u64>,
    /// The id of the event that carried the rights (Stripe's `evt_...`).
    pub event_id: Option<String>,
    /// When the source created that event, in milliseconds since the Unix epoch. A hook that
    /// stores it per [`subscription`](Self::subscription) can refuse an older event across
    /// restarts and instances.
    pub event_created: Option<u64>,
    /// The source's subscription the rights come from (Stripe's `sub_...`).
    pub subscription: Option<String>,
    /// The source's customer (Stripe's `cus_...`).
    pub customer: Option<String>,
    /// The subscription's status at the source (Stripe's `active`, `past_due`, ...).
    pub status: Option<String>,
}

impl Replacement {
    /// No rights at all from `source` for `user`: no plan, no add-ons, no anchor.
    pub fn new(user: impl Into<String>, source: impl Into<Arc<str>>) -> Self {
        Self {
            user: user.into(),
            source: source.into(),
            plan: None,
            addons: Vec::new(),
            cycle_anchor: None,
            event_id: None,
            event_created: None,
            subscription: None,
            customer: None,
            status: None,
        }
    }

    /// Sets the plan assignment, builder style.
    #[must_use]
    pub fn plan(mut self, assignment: Assignment) -> Self {
        self.plan = Some(assignment);
        self
    }

    /// Adds an add-on grant, marked with the source, builder style.
    #[must_use]
    pub fn addon(mut self, grant: AddonGrant) -> Self {
        let source = Arc::clone(&self.source);
        self.addons.push(grant.source(source));
        self
    }

    /// Sets the billing cycle's anchor (ms since the Unix epoch), builder style.
    #[must_use]
    pub fn cycle_anchor(mut self, ms: u64) -> Self {
        self.cycle_anchor = Some(ms);
        self
    }

    /// Whether the rights grant anything: a plan or an add-on.
    pub fn grants_anything(&self) -> bool {
        self.plan.is_some() || !self.addons.is_empty()
    }

    /// Replaces what the source granted in `subscriber` with these rights (see the
    /// [type docs](Self)); the usage and the grants of other sources are kept.
    pub fn apply_to(&self, subscriber: &mut Subscriber) {
        subscriber.assignment = self.plan.clone();
        subscriber
            .addons
            .retain(|grant| grant.source.as_deref() != Some(&*self.source));
        subscriber.addons.extend(self.addons.iter().map(|grant| {
            let mut grant = grant.clone();
            grant.source = Some(Arc::clone(&self.source));
            grant
        }));
        subscriber.cycle_anchor = self.cycle_anchor;
    }

    /// [`apply_to`](Self::apply_to) on a record in its JSON form (see [`Subscriber`]), for
    /// stores that keep records as JSON: sets or removes `plan` and `cycle_anchor`, and in
    /// `addons` replaces the grants whose `source` is this source. Every other key is kept as it
    /// is written (the usage in either form, the other grants). A value that is not an object
    /// (`null`: an unknown user) becomes a record with these rights only. Read back with
    /// [`Subscriber::from_value`], a valid record gives what `apply_to` gives.
    ///
    /// ```
    /// use serde_json::json;
    /// use tower_plans::subscriber::{AddonGrant, Assignment};
    /// use tower_plans::webhook::Replacement;
    ///
    /// let mut record = json!({"plan": "free", "clients": 3,
    ///                         "addons": [{"name": "promo"}, {"name": "seats", "source": "stripe"}]});
    /// Replacement::new("john", "stripe")
    ///     .plan(Assignment::new("pro").expires_at(1_704_067_200_000))
    ///     .addon(AddonGrant::new("seats").quantity(5))
    ///     .apply_to_json(&mut record);
    /// assert_eq!(record, json!({
    ///     "plan": {"name": "pro", "trial": false, "expire": 1_704_067_200_000_u64},
    ///     "clients": 3,
    ///     "addons": [{"name": "promo"}, {"name": "seats", "quantity": 5, "source": "stripe"}]
    /// }));
    /// ```
    pub fn apply_to_json(&self, record: &mut Value) {
        if !record.is_object() {
            *record = Value::Object(Map::new());
        }
        let Value::Object(map) = record else {
            return;
        };
        match &self.plan {
            Some(assignment) => {
                let mut plan = Map::new();
                plan.insert("name".into(), Value::from(&*assignment.plan));
                plan.insert("trial".into(), Value::Bool(assignment.trial));
                if let Some(joined) = assignment.joined {
                    plan.insert("join".into(), Value::from(joined));
                }
                if let Some(expires) = assignment.expires {
                    plan.insert("expire".into(), Value::from(expires));
                }
                map.insert("plan".into(), Value::Object(plan));
            }
            None => {
                map.remove("plan");
            }
        }
        let mut addons = match map.remove("addons") {
            Some(Value::Array(addons)) => addons,
            _ => Vec::new(),
        };
        addons.retain(|grant| grant.get("source").and_then(Value::as_str) != Some(&*self.source));
        addons.extend(self.addons.iter().map(|grant| {
            let mut written = Map::new();
            written.insert("name".into(), Value::from(&*grant.name));
            if let Some(starts) = grant.starts {
                written.insert("starts".into(), Value::from(starts));
            }
            if let Some(expires) = grant.expires {
                written.insert("expires".into(), Value::from(expires));
            }
            written.insert("quantity".into(), Value::from(grant.quantity));
            written.insert("source".into(), Value::from(&*self.source));
            Value::Object(written)
        }));
        if !addons.is_empty() {
            map.insert("addons".into(), Value::Array(addons));
        }
        match self.cycle_anchor {
            Some(anchor) => {
                map.insert("cycle_anchor".into(), Value::from(anchor));
            }
            None => {
                map.remove("cycle_anchor");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_without_rights_takes_the_sources_rights_away() {
        let mut record = Subscriber::new()
            .with_plan(Assignment::new("pro"))
            .with_addon(AddonGrant::new("seats").quantity(3).source("stripe"))
            .with_addon(AddonGrant::new("seats").source("admin"))
            .with_addon(AddonGrant::new("pack"))
            .with_cycle_anchor(5);
        let none = Replacement::new("u", "stripe");
        assert!(!none.grants_anything());
        none.apply_to(&mut record);
        assert_eq!(record.assignment, None);
        assert_eq!(
            record.addons,
            [
                AddonGrant::new("seats").source("admin"),
                AddonGrant::new("pack")
            ]
        );
        assert_eq!(record.cycle_anchor, None);
    }

    #[test]
    fn grants_are_marked_with_the_source_however_they_were_added() {
        let mut rights = Replacement::new("u", "stripe").addon(AddonGrant::new("a").source("x"));
        rights.addons.push(AddonGrant::new("b"));
        assert!(rights.grants_anything());
        let mut record = Subscriber::new();
        rights.apply_to(&mut record);
        assert_eq!(
            record.addons,
            [
                AddonGrant::new("a").source("stripe"),
                AddonGrant::new("b").source("stripe")
            ]
        );
        // Applied twice: the same record, not twice the grants.
        let once = record.clone();
        rights.apply_to(&mut record);
        assert_eq!(record, once);
    }

    #[test]
    fn the_json_form_reads_back_as_the_record_form_gives() {
        let records = [
            r#"{"name": "john", "plan": "free", "clients": 3, "cycle_anchor": 9}"#,
            r#"{"plan": {"name": "pro", "trial": true, "join": 5}, "usage": {"tasks": {"show": 2}},
                "addons": [{"name": "seats", "quantity": 2, "source": "stripe"},
                           {"name": "pack", "expires": 50, "source": "admin"}, {"name": "x"}]}"#,
            r#"{}"#,
            r#"{"addons": null, "plan": null}"#,
        ];
        let rights = [
            Replacement::new("john", "stripe"),
            Replacement::new("john", "stripe")
                .plan(Assignment::new("pro").as_trial().joined_at(1).expires_at(2))
                .addon(
                    AddonGrant::new("seats")
                        .quantity(4)
                        .starts_at(1)
                        .expires_at(3),
                )
                .addon(AddonGrant::new("pack"))
                .cycle_anchor(7),
        ];
        for record in records {
            for rights in &rights {
                let value: Value = serde_json::from_str(record).unwrap();
                let mut expected = Subscriber::from_value(&value).unwrap();
                rights.apply_to(&mut expected);
                let mut written = value.clone();
                rights.apply_to_json(&mut written);
                assert_eq!(
                    Subscriber::from_value(&written).unwrap(),
                    expected,
                    "{record} with {rights:?}: {written}"
                );
            }
        }
        // An unknown user (null) gets a record of the rights alone.
        let mut unknown = Value::Null;
        rights[1].apply_to_json(&mut unknown);
        let record = Subscriber::from_value(&unknown).unwrap();
        assert_eq!(record.plan_name(), Some("pro"));
        assert_eq!(record.addons.len(), 2);
    }
}

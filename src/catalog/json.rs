//! The JSON walker behind [`Catalog::from_value`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::builder::{assemble, check_custom_action};
use super::cost::meters;
use super::{
    Action, Addon, Anchor, Catalog, Limit, Overage, Period, Plan, Rate, RatePer, ResourceLimits,
    Rule, Trial,
};
use crate::format::{describe, non_negative_integer, FormatError, JsonPath};
use crate::names::NameMap;

/// Seconds in a day.
pub(super) const DAY_SECS: f64 = 86_400.0;

/// Reads a whole catalog.
pub(super) fn catalog(value: &Value) -> Result<Catalog, FormatError> {
    let root = JsonPath::root();
    let (trial_value, plans_value, actions_value, addons_value, meters_value) = match value {
        Value::Array(_) => (None, value, None, None, None),
        Value::Object(map) => {
            if let Some(key) = map.keys().find(|k| {
                !matches!(
                    k.as_str(),
                    "trial" | "plans" | "actions" | "addons" | "meters"
                )
            }) {
                return Err(root.key(key).error(
                    "unknown catalog property; expected `plans`, `trial`, `actions`, `addons` \
                     or `meters`",
                ));
            }
            let plans = map.get("plans").ok_or_else(|| {
                root.key("plans")
                    .error("missing; expected an array of plans")
            })?;
            (
                map.get("trial"),
                plans,
                map.get("actions"),
                map.get("addons"),
                map.get("meters"),
            )
        }
        other => {
            return Err(root.error(format!(
                "expected an object with `plans` or an array of plans, found {}",
                describe(other)
            )))
        }
    };

    let actions = actions(actions_value, &root.key("actions"))?;

    let plans_path = root.key("plans");
    let Value::Array(items) = plans_value else {
        return Err(plans_path.error(format!(
            "expected an array of plans, found {}",
            describe(plans_value)
        )));
    };
    let mut plans: Vec<Plan> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = plans_path.index(i);
        let Named {
            name,
            limits,
            credits,
            anchor,
            rate,
        } = named_limits(item, &path, &actions, Kind::Plan)?;
        if let Some(first) = plans.iter().position(|p| *p.name == *name) {
            return Err(path.key("name").error(format!(
                "duplicate plan name `{name}` (first at plans[{first}])"
            )));
        }
        let mut plan = Plan::new(name);
        plan.limits = limits;
        plan.credits = credits;
        plan.anchor = anchor;
        plan.rate = rate;
        plans.push(plan);
    }

    let addons = addons(addons_value, &root.key("addons"), &actions, &plans)?;
    let pools: Vec<&str> = plans
        .iter()
        .flat_map(|plan| plan.credits.iter().map(|(pool, _)| &**pool))
        .chain(
            addons
                .iter()
                .flat_map(|addon| addon.credits.iter().map(|(pool, _)| &**pool)),
        )
        .collect();
    let meters = meters(meters_value, &root.key("meters"), &actions, &pools)?;

    let trial = match trial_value {
        None | Some(Value::Null) => None,
        Some(value) => Some(trial(value, &root.key("trial"))?),
    };
    assemble(trial, plans, addons, actions, meters)
}

/// Reads the `addons` list: each add-on is read as a plan is.
fn addons(
    value: Option<&Value>,
    path: &JsonPath<'_>,
    actions: &[Arc<str>],
    plans: &[Plan],
) -> Result<Vec<Addon>, FormatError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(path.error(format!(
                "expected an array of add-ons, found {}",
                describe(other)
            )))
        }
    };
    let mut addons: Vec<Addon> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = path.index(i);
        let Named {
            name,
            limits,
            credits,
            ..
        } = named_limits(item, &path, actions, Kind::Addon)?;
        if let Some(first) = addons.iter().position(|a| *a.name == *name) {
            return Err(path.key("name").error(format!(
                "duplicate add-on name `{name}` (first at addons[{first}])"
            )));
        }
        if let Some(plan) = plans.iter().position(|p| *p.name == *name) {
            return Err(path.key("name").error(format!(
                "`{name}` is the name of a plan (plans[{plan}]); an add-on needs a name of its own"
            )));
        }
        let mut addon = Addon::new(name);
        addon.limits = limits;
        for (pool, rule) in credits.iter() {
            addon.credits.insert(Arc::clone(pool), rule.limit);
        }
        addons.push(addon);
    }
    Ok(addons)
}

/// Reads the `actions` declaration.
fn actions(value: Option<&Value>, path: &JsonPath<'_>) -> Result<Vec<Arc<str>>, FormatError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(path.error(format!(
                "expected an array of custom action names, found {}",
                describe(other)
            )))
        }
    };
    let mut names = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::String(name) = item else {
            return Err(path.index(i).error(format!(
                "expected a custom action name (a string), found {}",
                describe(item)
            )));
        };
        check_custom_action(name).map_err(|msg| path.index(i).error(msg))?;
        names.push(Arc::from(name.as_str()));
    }
    Ok(names)
}

/// Reads the trial policy (not `null`).
fn trial(value: &Value, path: &JsonPath<'_>) -> Result<Trial, FormatError> {
    match value {
        Value::Number(_) => Ok(Trial::new(days(value, path)?)),
        Value::Object(map) => {
            if let Some(key) = map
                .keys()
                .find(|k| !matches!(k.as_str(), "duration" | "fallback"))
            {
                return Err(path
                    .key(key)
                    .error("unknown trial property; expected `duration` or `fallback`"));
            }
            let duration_path = path.key("duration");
            let duration = match map.get("duration") {
                Some(value) => days(value, &duration_path)?,
                None => {
                    return Err(duration_path.error("missing; expected a positive number of days"))
                }
            };
            let mut trial = Trial::new(duration);
            match map.get("fallback") {
                None | Some(Value::Null) => {}
                Some(Value::String(name)) if !name.is_empty() => {
                    trial = trial.with_fallback(name.as_str());
                }
                Some(other) => {
                    return Err(path.key("fallback").error(format!(
                        "expected the name of a plan, found {}",
                        describe(other)
                    )))
                }
            }
            Ok(trial)
        }
        other => Err(path.error(format!(
            "expected a number of days or an object with `duration` and `fallback`, found {}",
            describe(other)
        ))),
    }
}

/// Reads a positive number of days (fractions allowed).
fn days(value: &Value, path: &JsonPath<'_>) -> Result<Duration, FormatError> {
    let expected = || {
        path.error(format!(
            "expected a positive number of days, found {}",
            describe(value)
        ))
    };
    let days = value.as_f64().ok_or_else(expected)?;
    if !(days.is_finite() && days > 0.0) {
        return Err(expected());
    }
    match Duration::try_from_secs_f64(days * DAY_SECS) {
        Ok(duration) if duration > Duration::ZERO => Ok(duration),
        Ok(_) => Err(expected()),
        Err(_) => Err(path.error(format!(
            "the trial duration {} is too long",
            describe(value)
        ))),
    }
}

/// What a named set of limits is, for error messages.
#[derive(Clone, Copy)]
enum Kind {
    Plan,
    Addon,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Plan => "plan",
            Kind::Addon => "add-on",
        }
    }
}

/// One plan or add-on as the JSON gives it.
struct Named<'v> {
    name: &'v str,
    limits: NameMap<ResourceLimits>,
    credits: NameMap<Rule>,
    /// A plan's `anchor` and `rate` (an add-on has neither).
    anchor: Option<Anchor>,
    rate: Option<Rate>,
}

/// The keys of a plan or an add-on that are never resources, also in the shorthand form.
const RESERVED: [&str; 4] = ["name", "credits", "anchor", "rate"];

/// Reads one plan or add-on, `{"name": .., "limits": {..}, "credits": {..}}` or the shorthand
/// without `limits`: its name, its limits per resource, its credit pools and (for a plan) its
/// `anchor` and plan-wide `rate`. Plans and add-ons share this reader, so that both accept
/// every limit form; an add-on only adds to limits, so the terms around them (`overage`,
/// `anchor`, `rate`) are errors there.
fn named_limits<'v>(
    value: &'v Value,
    path: &JsonPath<'_>,
    actions: &[Arc<str>],
    kind: Kind,
) -> Result<Named<'v>, FormatError> {
    let noun = kind.noun();
    let Value::Object(map) = value else {
        return Err(path.error(format!(
            "expected {} {noun} object, found {}",
            match kind {
                Kind::Plan => "a",
                Kind::Addon => "an",
            },
            describe(value)
        )));
    };
    let name_path = path.key("name");
    let name = match map.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.as_str(),
        Some(other) => {
            return Err(name_path.error(format!(
                "expected a non-empty {noun} name, found {}",
                describe(other)
            )))
        }
        None => return Err(name_path.error(format!("missing; expected the {noun}'s name"))),
    };
    let mut limits = NameMap::default();
    match map.get("limits") {
        Some(Value::Null) => {}
        Some(Value::Object(entries)) => {
            resources(
                &mut limits,
                entries.iter(),
                &path.key("limits"),
                actions,
                kind,
            )?;
        }
        Some(other) => {
            return Err(path.key("limits").error(format!(
                "expected an object of limits per resource, found {}",
                describe(other)
            )))
        }
        None => {
            let entries = map
                .iter()
                .filter(|(key, _)| !RESERVED.contains(&key.as_str()));
            resources(&mut limits, entries, path, actions, kind)?;
        }
    }
    let credits = credits(map.get("credits"), &path.key("credits"), kind)?;
    let (mut anchor, mut rate) = (None, None);
    for key in ["anchor", "rate"] {
        let Some(value) = map.get(key).filter(|value| !value.is_null()) else {
            continue;
        };
        let key_path = path.key(key);
        if let Kind::Addon = kind {
            return Err(key_path.error(format!(
                "an add-on only adds to limits; `{key}` belongs to a plan"
            )));
        }
        match key {
            "anchor" => anchor = Some(self::anchor(value, &key_path)?),
            _ => rate = Some(self::rate(value, &key_path)?),
        }
    }
    Ok(Named {
        name,
        limits,
        credits,
        anchor,
        rate,
    })
}

/// Reads the credit pools of a plan or an add-on: pool name -> allowance, each read as a limit
/// is (without a rate: a pool is not called).
fn credits(
    value: Option<&Value>,
    path: &JsonPath<'_>,
    kind: Kind,
) -> Result<NameMap<Rule>, FormatError> {
    let mut pools = NameMap::default();
    let entries = match value {
        None | Some(Value::Null) => return Ok(pools),
        Some(Value::Object(entries)) => entries,
        Some(other) => {
            return Err(path.error(format!(
                "expected an object of credit pools such as {{\"ai\": {{\"max\": 1000, \
                 \"per\": \"month\"}}}}, found {}",
                describe(other)
            )))
        }
    };
    for (pool, value) in entries {
        let pool_path = path.key(pool);
        if pool.is_empty() {
            return Err(pool_path.error("expected a non-empty pool name"));
        }
        let rule = rule(value, &pool_path, kind)?;
        if rule.rate.is_some() {
            return Err(pool_path
                .key("rate")
                .error("a credit pool has no rate; set it on the actions that draw from it"));
        }
        pools.insert(Arc::from(pool.as_str()), rule);
    }
    Ok(pools)
}

/// Reads limits per resource into `limits`.
fn resources<'v>(
    limits: &mut NameMap<ResourceLimits>,
    entries: impl Iterator<Item = (&'v String, &'v Value)>,
    path: &JsonPath<'_>,
    actions: &[Arc<str>],
    kind: Kind,
) -> Result<(), FormatError> {
    for (resource, value) in entries {
        let resource_path = path.key(resource);
        if resource.is_empty() {
            return Err(resource_path.error("expected a non-empty resource name"));
        }
        let resource_limits = resource_limits(value, &resource_path, actions, kind)?;
        limits.insert(Arc::from(resource.as_str()), resource_limits);
    }
    Ok(())
}

/// Reads the limits on one resource.
fn resource_limits(
    value: &Value,
    path: &JsonPath<'_>,
    actions: &[Arc<str>],
    kind: Kind,
) -> Result<ResourceLimits, FormatError> {
    match value {
        Value::Null => Ok(ResourceLimits::new()),
        Value::Object(map) => per_action(map, path, actions, kind),
        _ => match non_negative_integer(value) {
            Some(max) => Ok(ResourceLimits::new().with(Action::Create, Limit::Limited(max))),
            None => Err(path.error(format!(
                "expected a non-negative integer (the `create` limit), null (unlimited) or an \
                 object of limits per action, found {}",
                describe(value)
            ))),
        },
    }
}

/// Reads an object of limits per action.
fn per_action(
    map: &Map<String, Value>,
    path: &JsonPath<'_>,
    actions: &[Arc<str>],
    kind: Kind,
) -> Result<ResourceLimits, FormatError> {
    if map.contains_key("delete") && map.contains_key("destroy") {
        return Err(path
            .key("destroy")
            .error("`destroy` is an alias of `delete`, which is also set"));
    }
    let mut limits = ResourceLimits::new();
    for (key, value) in map {
        let action_path = path.key(key);
        let action = match Action::rest(key) {
            Some(action) => action,
            None => match actions.iter().find(|name| ***name == **key) {
                Some(name) => Action::Custom(Arc::clone(name)),
                None => {
                    // `{"reports": {"max": 20, "per": "day"}}`: a quota belongs to an action.
                    let hint = if matches!(
                        key.as_str(),
                        "max" | "per" | "overage" | "anchor" | "rate"
                    ) {
                        "; a quota is set per action: {\"create\": {\"max\": 20, \"per\": \"day\"}}"
                    } else {
                        ""
                    };
                    return Err(action_path.error(format!(
                        "unknown action `{key}`; expected index, show, create, update, patch, \
                         delete (or destroy), or a custom action declared in the catalog's \
                         `actions`{hint}"
                    )));
                }
            },
        };
        limits.set_rule(action, rule(value, &action_path, kind)?);
    }
    Ok(limits)
}

/// Reads one action's (or pool's) rule: a number, `null`, or an object `{"max": 20, "per":
/// "day"}` with the optional `anchor`, `overage` and `rate` of a plan (see [`Rule`]).
fn rule(value: &Value, path: &JsonPath<'_>, kind: Kind) -> Result<Rule, FormatError> {
    let map = match value {
        Value::Null => return Ok(Rule::new(Limit::Unlimited)),
        Value::Object(map) => map,
        _ => {
            return non_negative_integer(value)
                .map(|max| Rule::new(Limit::Limited(max)))
                .ok_or_else(|| {
                    path.error(format!(
                        "expected a non-negative integer, null (unlimited) or a quota \
                         {{\"max\": n, \"per\": \"day\"}}, found {}",
                        describe(value)
                    ))
                })
        }
    };
    if let Some(key) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "max" | "per" | "anchor" | "overage" | "rate"))
    {
        return Err(path.key(key).error(
            "unknown limit property; expected `max`, `per`, `anchor`, `overage` or `rate`",
        ));
    }
    if let Kind::Addon = kind {
        if let Some(key) = ["anchor", "overage", "rate"]
            .into_iter()
            .find(|key| map.contains_key(*key))
        {
            return Err(path.key(key).error(format!(
                "an add-on only adds to limits; `{key}` belongs to a plan's limit"
            )));
        }
    }
    let max_path = path.key("max");
    let max = match map.get("max") {
        Some(max) => Some(non_negative_integer(max).ok_or_else(|| {
            max_path.error(format!(
                "expected a non-negative integer, found {}",
                describe(max)
            ))
        })?),
        None => None,
    };
    let per_path = path.key("per");
    let expected = "expected \"hour\", \"day\", \"week\", \"month\" or \"year\"";
    let per = match map.get("per") {
        None => None,
        Some(Value::String(name)) => Some(
            Period::from_name(name)
                .ok_or_else(|| per_path.error(format!("unknown period \"{name}\"; {expected}")))?,
        ),
        Some(other) => return Err(per_path.error(format!("{expected}, found {}", describe(other)))),
    };
    let limit = match (max, per) {
        (Some(max), Some(per)) => Limit::Periodic { max, per },
        (Some(max), None) => Limit::Limited(max),
        (None, Some(_)) => {
            return Err(max_path.error("missing; expected how many each period allows"))
        }
        (None, None) if map.contains_key("rate") && map.len() == 1 => Limit::Unlimited,
        (None, None) => {
            return Err(max_path.error(
                "missing; expected how many the plan allows (a limit without `max` may only \
                 carry a `rate`)",
            ))
        }
    };
    let mut rule = Rule::new(limit);
    if let Some(value) = map.get("anchor") {
        let anchor_path = path.key("anchor");
        if per.is_none() {
            return Err(anchor_path.error("an anchor needs a quota's period (`per`)"));
        }
        rule = rule.with_anchor(anchor(value, &anchor_path)?);
    }
    if let Some(value) = map.get("overage") {
        let overage = match value {
            Value::Null => Overage::Unbounded,
            _ => Overage::Up(non_negative_integer(value).ok_or_else(|| {
                path.key("overage").error(format!(
                    "expected a non-negative integer (how far past `max`) or null (no end), \
                     found {}",
                    describe(value)
                ))
            })?),
        };
        rule = rule.with_overage(overage);
    }
    if let Some(value) = map.get("rate") {
        rule = rule.with_rate(rate(value, &path.key("rate"))?);
    }
    Ok(rule)
}

/// Reads an anchor: `"calendar"` or `"subscription"`.
fn anchor(value: &Value, path: &JsonPath<'_>) -> Result<Anchor, FormatError> {
    let expected = "expected \"calendar\" or \"subscription\"";
    match value {
        Value::String(name) => Anchor::from_name(name)
            .ok_or_else(|| path.error(format!("unknown anchor \"{name}\"; {expected}"))),
        other => Err(path.error(format!("{expected}, found {}", describe(other)))),
    }
}

/// Reads a rate: `{"max": 60, "per": "minute"}`, with an optional `burst` from 1 to `max`.
fn rate(value: &Value, path: &JsonPath<'_>) -> Result<Rate, FormatError> {
    let Value::Object(map) = value else {
        return Err(path.error(format!(
            "expected a rate such as {{\"max\": 60, \"per\": \"minute\"}}, found {}",
            describe(value)
        )));
    };
    if let Some(key) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "max" | "per" | "burst"))
    {
        return Err(path
            .key(key)
            .error("unknown rate property; expected `max`, `per` or `burst`"));
    }
    let positive = |key: &str| -> Result<Option<u64>, FormatError> {
        let Some(value) = map.get(key) else {
            return Ok(None);
        };
        match non_negative_integer(value) {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(path.key(key).error(format!(
                "expected a positive integer, found {}",
                describe(value)
            ))),
        }
    };
    let max = positive("max")?.ok_or_else(|| {
        path.key("max")
            .error("missing; expected how many requests per period")
    })?;
    let per_path = path.key("per");
    let expected = "expected \"second\", \"minute\", \"hour\" or \"day\"";
    let per = match map.get("per") {
        Some(Value::String(name)) => RatePer::from_name(name)
            .ok_or_else(|| per_path.error(format!("unknown rate period \"{name}\"; {expected}")))?,
        Some(other) => return Err(per_path.error(format!("{expected}, found {}", describe(other)))),
        None => return Err(per_path.error(format!("missing; {expected}"))),
    };
    let mut rate = Rate::new(max, per);
    if let Some(burst) = positive("burst")? {
        if burst > max {
            return Err(path.key("burst").error(format!(
                "a burst of {burst} is more than the rate's `max` of {max}"
            )));
        }
        rate = rate.with_burst(burst);
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fractional_trial_days() {
        let root = JsonPath::root();
        let half = days(&json!(0.5), &root).unwrap();
        assert_eq!(half, Duration::from_secs(43_200));
        assert!(days(&json!(0), &root).is_err());
        assert!(days(&json!(-3), &root).is_err());
        assert!(days(&json!("14"), &root).is_err());
        let err = days(&json!(1e300), &root).unwrap_err();
        assert!(err.message().contains("too long"), "{err}");
    }
}

//! The JSON walker behind [`Catalog::from_value`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::builder::{assemble, check_custom_action};
use super::cost::meters;
use super::{Action, Addon, Catalog, Limit, Period, Plan, ResourceLimits, Trial};
use crate::format::{describe, non_negative_integer, FormatError, JsonPath};
use crate::names::NameMap;

/// Seconds in a day.
const DAY_SECS: f64 = 86_400.0;

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
        let (name, limits, credits) = named_limits(item, &path, &actions, Kind::Plan)?;
        if let Some(first) = plans.iter().position(|p| *p.name == *name) {
            return Err(path.key("name").error(format!(
                "duplicate plan name `{name}` (first at plans[{first}])"
            )));
        }
        let mut plan = Plan::new(name);
        plan.limits = limits;
        plan.credits = credits;
        plans.push(plan);
    }

    let addons = addons(addons_value, &root.key("addons"), &actions, &plans)?;
    let pools: Vec<&str> = plans
        .iter()
        .flat_map(|plan| plan.credits.iter())
        .chain(addons.iter().flat_map(|addon| addon.credits.iter()))
        .map(|(pool, _)| &**pool)
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
        let (name, limits, credits) = named_limits(item, &path, actions, Kind::Addon)?;
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
        addon.credits = credits;
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

/// One plan's or add-on's name, limits per resource and credit pools.
type Named<'v> = (&'v str, NameMap<ResourceLimits>, NameMap<Limit>);

/// Reads one plan or add-on, `{"name": .., "limits": {..}, "credits": {..}}` or the shorthand
/// without `limits`: its name, its limits per resource and its credit pools. Plans and add-ons
/// share this reader, so that both accept every limit form.
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
            resources(&mut limits, entries.iter(), &path.key("limits"), actions)?;
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
                .filter(|(key, _)| !matches!(key.as_str(), "name" | "credits"));
            resources(&mut limits, entries, path, actions)?;
        }
    }
    let credits = credits(map.get("credits"), &path.key("credits"))?;
    Ok((name, limits, credits))
}

/// Reads the credit pools of a plan or an add-on: pool name -> allowance, each read as a limit
/// is.
fn credits(value: Option<&Value>, path: &JsonPath<'_>) -> Result<NameMap<Limit>, FormatError> {
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
        pools.insert(Arc::from(pool.as_str()), limit(value, &pool_path)?);
    }
    Ok(pools)
}

/// Reads limits per resource into `limits`.
fn resources<'v>(
    limits: &mut NameMap<ResourceLimits>,
    entries: impl Iterator<Item = (&'v String, &'v Value)>,
    path: &JsonPath<'_>,
    actions: &[Arc<str>],
) -> Result<(), FormatError> {
    for (resource, value) in entries {
        let resource_path = path.key(resource);
        if resource.is_empty() {
            return Err(resource_path.error("expected a non-empty resource name"));
        }
        let resource_limits = resource_limits(value, &resource_path, actions)?;
        limits.insert(Arc::from(resource.as_str()), resource_limits);
    }
    Ok(())
}

/// Reads the limits on one resource.
fn resource_limits(
    value: &Value,
    path: &JsonPath<'_>,
    actions: &[Arc<str>],
) -> Result<ResourceLimits, FormatError> {
    match value {
        Value::Null => Ok(ResourceLimits::new()),
        Value::Object(map) => per_action(map, path, actions),
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
                    let hint = if matches!(key.as_str(), "max" | "per") {
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
        limits.set(action, limit(value, &action_path)?);
    }
    Ok(limits)
}

/// Reads one action's limit: a number, `null`, or a quota `{"max": 20, "per": "day"}`.
fn limit(value: &Value, path: &JsonPath<'_>) -> Result<Limit, FormatError> {
    match value {
        Value::Null => Ok(Limit::Unlimited),
        Value::Object(map) => {
            if let Some(key) = map.keys().find(|k| !matches!(k.as_str(), "max" | "per")) {
                return Err(path
                    .key(key)
                    .error("unknown quota property; expected `max` or `per`"));
            }
            let max_path = path.key("max");
            let max = match map.get("max") {
                Some(max) => non_negative_integer(max).ok_or_else(|| {
                    max_path.error(format!(
                        "expected a non-negative integer, found {}",
                        describe(max)
                    ))
                })?,
                None => return Err(max_path.error("missing; expected how many each period allows")),
            };
            let per_path = path.key("per");
            let expected = "expected \"hour\", \"day\", \"week\", \"month\" or \"year\"";
            let per = match map.get("per") {
                Some(Value::String(name)) => Period::from_name(name).ok_or_else(|| {
                    per_path.error(format!("unknown period \"{name}\"; {expected}"))
                })?,
                Some(other) => {
                    return Err(per_path.error(format!("{expected}, found {}", describe(other))))
                }
                None => return Err(per_path.error(format!("missing; {expected}"))),
            };
            Ok(Limit::Periodic { max, per })
        }
        _ => non_negative_integer(value)
            .map(Limit::Limited)
            .ok_or_else(|| {
                path.error(format!(
                    "expected a non-negative integer, null (unlimited) or a quota \
                 {{\"max\": n, \"per\": \"day\"}}, found {}",
                    describe(value)
                ))
            }),
    }
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

//! The JSON walker behind [`Catalog::from_value`], and helpers shared with the subscriber loader.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::builder::{assemble, check_custom_action};
use super::{Action, Catalog, CatalogError, Limit, Plan, ResourceLimits, Trial};

/// Seconds in a day.
const DAY_SECS: f64 = 86_400.0;

/// A path into a JSON document, rendered only when an error needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JsonPath<'a> {
    parent: Option<&'a JsonPath<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy, Debug)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> JsonPath<'a> {
    /// The document itself (renders as the empty string).
    pub(crate) fn root() -> JsonPath<'static> {
        JsonPath {
            parent: None,
            seg: Seg::Root,
        }
    }

    /// The property `key` of the value at this path.
    pub(crate) fn key<'b>(&'b self, key: &'b str) -> JsonPath<'b> {
        JsonPath {
            parent: Some(self),
            seg: Seg::Key(key),
        }
    }

    /// The element `index` of the array at this path.
    pub(crate) fn index(&self, index: usize) -> JsonPath<'_> {
        JsonPath {
            parent: Some(self),
            seg: Seg::Index(index),
        }
    }

    /// The path as text: `plans[2].limits.clients.create`, `usage["a b"]`.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        if let Some(parent) = self.parent {
            parent.render_into(out);
        }
        match self.seg {
            Seg::Root => {}
            Seg::Key(key) if is_simple_key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Seg::Key(key) => {
                out.push('[');
                out.push_str(&Value::from(key).to_string());
                out.push(']');
            }
            Seg::Index(index) => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
        }
    }

    /// A catalog error at this path.
    pub(crate) fn error(&self, message: impl Into<String>) -> CatalogError {
        CatalogError::new(self.render(), message)
    }
}

/// Whether a key can be written after a dot: ASCII letters, digits, `_` and `-`.
fn is_simple_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A short description of a JSON value for "found ..." in error messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("`{n}`"),
        Value::String(s) => format!("the string {}", Value::from(s.as_str())),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// The value as a non-negative integer, if it is one. A float with no fractional part (`3.0`)
/// counts as an integer; negative, fractional, too large and non-numeric values do not.
pub(crate) fn non_negative_integer(value: &Value) -> Option<u64> {
    let Value::Number(n) = value else {
        return None;
    };
    if let Some(n) = n.as_u64() {
        return Some(n);
    }
    if n.is_i64() {
        return None;
    }
    let f = n.as_f64()?;
    // 2^64: the first f64 that does not fit in a u64.
    if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(f as u64)
    } else {
        None
    }
}

/// Reads a whole catalog.
pub(super) fn catalog(value: &Value) -> Result<Catalog, CatalogError> {
    let root = JsonPath::root();
    let (trial_value, plans_value, actions_value) = match value {
        Value::Array(_) => (None, value, None),
        Value::Object(map) => {
            if let Some(key) = map
                .keys()
                .find(|k| !matches!(k.as_str(), "trial" | "plans" | "actions"))
            {
                return Err(root
                    .key(key)
                    .error("unknown catalog property; expected `plans`, `trial` or `actions`"));
            }
            let plans = map.get("plans").ok_or_else(|| {
                root.key("plans")
                    .error("missing; expected an array of plans")
            })?;
            (map.get("trial"), plans, map.get("actions"))
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
        let plan = plan(item, &path, &actions)?;
        if let Some(first) = plans.iter().position(|p| p.name == plan.name) {
            return Err(path.key("name").error(format!(
                "duplicate plan name `{}` (first at plans[{first}])",
                plan.name
            )));
        }
        plans.push(plan);
    }

    let trial = match trial_value {
        None | Some(Value::Null) => None,
        Some(value) => Some(trial(value, &root.key("trial"))?),
    };
    assemble(trial, plans, actions)
}

/// Reads the `actions` declaration.
fn actions(value: Option<&Value>, path: &JsonPath<'_>) -> Result<Vec<Arc<str>>, CatalogError> {
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
fn trial(value: &Value, path: &JsonPath<'_>) -> Result<Trial, CatalogError> {
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
fn days(value: &Value, path: &JsonPath<'_>) -> Result<Duration, CatalogError> {
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

/// Reads one plan.
fn plan(value: &Value, path: &JsonPath<'_>, actions: &[Arc<str>]) -> Result<Plan, CatalogError> {
    let Value::Object(map) = value else {
        return Err(path.error(format!("expected a plan object, found {}", describe(value))));
    };
    let name_path = path.key("name");
    let name = match map.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.as_str(),
        Some(other) => {
            return Err(name_path.error(format!(
                "expected a non-empty plan name, found {}",
                describe(other)
            )))
        }
        None => return Err(name_path.error("missing; expected the plan's name")),
    };
    let mut plan = Plan::new(name);
    match map.get("limits") {
        Some(Value::Null) => {}
        Some(Value::Object(limits)) => {
            resources(&mut plan, limits.iter(), &path.key("limits"), actions)?;
        }
        Some(other) => {
            return Err(path.key("limits").error(format!(
                "expected an object of limits per resource, found {}",
                describe(other)
            )))
        }
        None => {
            let limits = map.iter().filter(|(key, _)| key.as_str() != "name");
            resources(&mut plan, limits, path, actions)?;
        }
    }
    Ok(plan)
}

/// Reads a plan's limits per resource into `plan`.
fn resources<'v>(
    plan: &mut Plan,
    entries: impl Iterator<Item = (&'v String, &'v Value)>,
    path: &JsonPath<'_>,
    actions: &[Arc<str>],
) -> Result<(), CatalogError> {
    for (resource, value) in entries {
        let resource_path = path.key(resource);
        if resource.is_empty() {
            return Err(resource_path.error("expected a non-empty resource name"));
        }
        let limits = resource_limits(value, &resource_path, actions)?;
        plan.limits.insert(Arc::from(resource.as_str()), limits);
    }
    Ok(())
}

/// Reads the limits on one resource.
fn resource_limits(
    value: &Value,
    path: &JsonPath<'_>,
    actions: &[Arc<str>],
) -> Result<ResourceLimits, CatalogError> {
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
) -> Result<ResourceLimits, CatalogError> {
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
                    return Err(action_path.error(format!(
                        "unknown action `{key}`; expected index, show, create, update, patch, \
                         delete (or destroy), or a custom action declared in the catalog's \
                         `actions`"
                    )))
                }
            },
        };
        let limit = match value {
            Value::Null => Limit::Unlimited,
            _ => Limit::Limited(non_negative_integer(value).ok_or_else(|| {
                action_path.error(format!(
                    "expected a non-negative integer or null (unlimited), found {}",
                    describe(value)
                ))
            })?),
        };
        limits.set(action, limit);
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_render_like_accessors() {
        let root = JsonPath::root();
        assert_eq!(root.render(), "");
        let plans = root.key("plans");
        let plan = plans.index(2);
        let limits = plan.key("limits");
        let clients = limits.key("clients");
        assert_eq!(
            clients.key("create").render(),
            "plans[2].limits.clients.create"
        );
        assert_eq!(
            limits.key("my clients").render(),
            r#"plans[2].limits["my clients"]"#
        );
        assert_eq!(limits.key("").render(), r#"plans[2].limits[""]"#);
        assert_eq!(root.key("a.b").render(), r#"["a.b"]"#);
        assert_eq!(root.index(0).render(), "[0]");
    }

    #[test]
    fn non_negative_integers() {
        assert_eq!(non_negative_integer(&json!(0)), Some(0));
        assert_eq!(non_negative_integer(&json!(3)), Some(3));
        assert_eq!(non_negative_integer(&json!(u64::MAX)), Some(u64::MAX));
        assert_eq!(non_negative_integer(&json!(3.0)), Some(3));
        assert_eq!(non_negative_integer(&json!(-1)), None);
        assert_eq!(non_negative_integer(&json!(-1.0)), None);
        assert_eq!(non_negative_integer(&json!(2.5)), None);
        assert_eq!(non_negative_integer(&json!(1e20)), None);
        assert_eq!(non_negative_integer(&json!("3")), None);
        assert_eq!(non_negative_integer(&json!(null)), None);
        assert_eq!(non_negative_integer(&json!(true)), None);
    }

    #[test]
    fn descriptions_name_the_value() {
        assert_eq!(describe(&json!(-1)), "`-1`");
        assert_eq!(describe(&json!("3")), r#"the string "3""#);
        assert_eq!(describe(&json!([1])), "an array");
        assert_eq!(describe(&json!({})), "an object");
        assert_eq!(describe(&json!(null)), "null");
        assert_eq!(describe(&json!(false)), "`false`");
    }

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

//! The JSON reader behind [`Subscriber::from_value`].

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{AddonGrant, Assignment, CreditGrant, ResourceUsage, Subscriber, Usage};
use crate::catalog::Action;
use crate::format::{describe, non_negative_integer, FormatError, JsonPath};

/// Reads a whole subscriber record.
pub(super) fn subscriber(value: &Value) -> Result<Subscriber, FormatError> {
    let root = JsonPath::root();
    let Value::Object(map) = value else {
        return Err(root.error(format!(
            "expected a subscriber record (an object), found {}",
            describe(value)
        )));
    };
    let name = match name(map, "name", &root)? {
        Some(name) => Some(name),
        None => name(map, "id", &root)?,
    };
    let plan_path = root.key("plan");
    let assignment = match map.get("plan") {
        None | Some(Value::Null) => None,
        Some(value) => Some(assignment(value, &plan_path)?),
    };
    let usage = match map.get("usage") {
        Some(Value::Null) => Usage::new(),
        Some(Value::Object(usage)) => read_usage(usage.iter(), &root.key("usage"))?,
        Some(other) => {
            return Err(root.key("usage").error(format!(
                "expected an object of usage per resource, found {}",
                describe(other)
            )))
        }
        None => {
            let entries = map.iter().filter(|(key, _)| {
                !matches!(
                    key.as_str(),
                    "name" | "id" | "plan" | "addons" | "cycle_anchor" | "grants"
                )
            });
            read_usage(entries, &root)?
        }
    };
    let addons = addons(map.get("addons"), &root.key("addons"))?;
    let cycle_anchor = instant(map.get("cycle_anchor"), &root.key("cycle_anchor"))?;
    let grants = credit_grants(map.get("grants"), &root.key("grants"))?;
    Ok(Subscriber {
        name,
        assignment,
        usage,
        addons,
        cycle_anchor,
        grants,
    })
}

/// Reads the `grants` of credits.
fn credit_grants(
    value: Option<&Value>,
    path: &JsonPath<'_>,
) -> Result<Vec<CreditGrant>, FormatError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(path.error(format!(
                "expected an array of credit grants, found {}",
                describe(other)
            )))
        }
    };
    let mut grants: Vec<CreditGrant> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = path.index(i);
        let grant = credit_grant(item, &path)?;
        if let Some(first) = grants.iter().position(|g| g.id == grant.id) {
            return Err(path.key("id").error(format!(
                "duplicate grant id `{}` (first at grants[{first}])",
                grant.id
            )));
        }
        grants.push(grant);
    }
    Ok(grants)
}

/// Reads one credit grant.
fn credit_grant(value: &Value, path: &JsonPath<'_>) -> Result<CreditGrant, FormatError> {
    let Value::Object(map) = value else {
        return Err(path.error(format!(
            "expected a credit grant, an object with `id`, `credits`, `amount`, `starts` and \
             `expires`, found {}",
            describe(value)
        )));
    };
    if let Some(key) = map.keys().find(|k| {
        !matches!(
            k.as_str(),
            "id" | "credits" | "amount" | "starts" | "expires"
        )
    }) {
        return Err(path.key(key).error(
            "unknown credit grant property; expected `id`, `credits`, `amount`, `starts` or \
             `expires`",
        ));
    }
    let text = |key: &str, what: &str| -> Result<Arc<str>, FormatError> {
        match map.get(key) {
            Some(Value::String(text)) if !text.is_empty() => Ok(Arc::from(text.as_str())),
            Some(other) => Err(path.key(key).error(format!(
                "expected a non-empty {what}, found {}",
                describe(other)
            ))),
            None => Err(path.key(key).error(format!("missing; expected the {what}"))),
        }
    };
    let id = text("id", "grant id")?;
    if id.starts_with('$') {
        return Err(path.key("id").error(format!(
            "a grant id may not start with `$` (found `{id}`): the layer keeps such ids for itself"
        )));
    }
    let pool = text("credits", "credit pool name")?;
    let amount = match map.get("amount") {
        Some(value) => non_negative_integer(value).ok_or_else(|| {
            path.key("amount").error(format!(
                "expected a number of units (a non-negative integer), found {}",
                describe(value)
            ))
        })?,
        None => {
            return Err(path
                .key("amount")
                .error("missing; expected a number of units"))
        }
    };
    let mut grant = CreditGrant::new(id, pool, amount);
    grant.starts = instant(map.get("starts"), &path.key("starts"))?;
    grant.expires = instant(map.get("expires"), &path.key("expires"))?;
    if let (Some(starts), Some(expires)) = (grant.starts, grant.expires) {
        if expires < starts {
            return Err(path.key("expires").error(format!(
                "the grant expires ({expires}) before it starts ({starts})"
            )));
        }
    }
    Ok(grant)
}

/// Reads the `addons` grants.
fn addons(value: Option<&Value>, path: &JsonPath<'_>) -> Result<Vec<AddonGrant>, FormatError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(path.error(format!(
                "expected an array of add-on grants, found {}",
                describe(other)
            )))
        }
    };
    let mut grants = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        grants.push(grant(item, &path.index(i))?);
    }
    Ok(grants)
}

/// Reads one add-on grant.
fn grant(value: &Value, path: &JsonPath<'_>) -> Result<AddonGrant, FormatError> {
    let Value::Object(map) = value else {
        return Err(path.error(format!(
            "expected an add-on grant, an object with `name`, `starts`, `expires`, \
             `quantity` and `source`, found {}",
            describe(value)
        )));
    };
    if let Some(key) = map.keys().find(|k| {
        !matches!(
            k.as_str(),
            "name" | "starts" | "expires" | "quantity" | "source"
        )
    }) {
        return Err(path.key(key).error(
            "unknown add-on grant property; expected `name`, `starts`, `expires`, `quantity` \
             or `source`",
        ));
    }
    let name_path = path.key("name");
    let mut grant = match map.get("name") {
        Some(Value::String(name)) if !name.is_empty() => AddonGrant::new(name.as_str()),
        Some(other) => {
            return Err(name_path.error(format!(
                "expected a non-empty add-on name, found {}",
                describe(other)
            )))
        }
        None => return Err(name_path.error("missing; expected the add-on's name")),
    };
    grant.starts = instant(map.get("starts"), &path.key("starts"))?;
    grant.expires = instant(map.get("expires"), &path.key("expires"))?;
    if let (Some(starts), Some(expires)) = (grant.starts, grant.expires) {
        if expires < starts {
            return Err(path.key("expires").error(format!(
                "the grant expires ({expires}) before it starts ({starts})"
            )));
        }
    }
    grant.quantity = match map.get("quantity") {
        None | Some(Value::Null) => 1,
        Some(value) => non_negative_integer(value).ok_or_else(|| {
            path.key("quantity").error(format!(
                "expected a number of units (a non-negative integer), found {}",
                describe(value)
            ))
        })?,
    };
    grant.source = match map.get("source") {
        None | Some(Value::Null) => None,
        Some(Value::String(source)) if !source.is_empty() => Some(Arc::from(source.as_str())),
        Some(other) => {
            return Err(path.key("source").error(format!(
                "expected a non-empty string naming who granted the add-on, found {}",
                describe(other)
            )))
        }
    };
    Ok(grant)
}

/// Reads `name` or `id`: a string or a number; `null` or absent is `None`.
fn name(
    map: &Map<String, Value>,
    key: &str,
    root: &JsonPath<'_>,
) -> Result<Option<Arc<str>>, FormatError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(Arc::from(s.as_str()))),
        Some(Value::Number(n)) => Ok(Some(Arc::from(n.to_string()))),
        Some(other) => Err(root.key(key).error(format!(
            "expected a string or a number, found {}",
            describe(other)
        ))),
    }
}

/// Reads the `plan` property (not `null`).
fn assignment(value: &Value, path: &JsonPath<'_>) -> Result<Assignment, FormatError> {
    let map = match value {
        Value::String(name) if !name.is_empty() => return Ok(Assignment::new(name.as_str())),
        Value::Object(map) => map,
        other => {
            return Err(path.error(format!(
                "expected a plan name or an object with `name`, `trial`, `join` and \
                 `expire`, found {}",
                describe(other)
            )))
        }
    };
    if let Some(key) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "name" | "trial" | "join" | "expire"))
    {
        return Err(path
            .key(key)
            .error("unknown plan property; expected `name`, `trial`, `join` or `expire`"));
    }
    let name_path = path.key("name");
    let mut assignment = match map.get("name") {
        Some(Value::String(name)) if !name.is_empty() => Assignment::new(name.as_str()),
        Some(other) => {
            return Err(name_path.error(format!(
                "expected a non-empty plan name, found {}",
                describe(other)
            )))
        }
        None => return Err(name_path.error("missing; expected the plan's name")),
    };
    assignment.trial = match map.get("trial") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(trial)) => *trial,
        Some(other) => {
            return Err(path.key("trial").error(format!(
                "expected `true` or `false`, found {}",
                describe(other)
            )))
        }
    };
    assignment.joined = instant(map.get("join"), &path.key("join"))?;
    assignment.expires = instant(map.get("expire"), &path.key("expire"))?;
    if assignment.trial && assignment.joined.is_none() && assignment.expires.is_none() {
        return Err(path.error("a trial needs `join` or `expire` to know when it ends"));
    }
    Ok(assignment)
}

/// Reads an instant in ms since the Unix epoch; `null` or absent is `None`.
fn instant(value: Option<&Value>, path: &JsonPath<'_>) -> Result<Option<u64>, FormatError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => non_negative_integer(value).map(Some).ok_or_else(|| {
            path.error(format!(
                "expected milliseconds since the Unix epoch (a non-negative integer), found {}",
                describe(value)
            ))
        }),
    }
}

/// Reads usage entries (resource -> count or counts per action).
fn read_usage<'v>(
    entries: impl Iterator<Item = (&'v String, &'v Value)>,
    path: &JsonPath<'_>,
) -> Result<Usage, FormatError> {
    let mut usage = Usage::new();
    for (resource, value) in entries {
        let resource_path = path.key(resource);
        if resource.is_empty() {
            return Err(resource_path.error("expected a non-empty resource name"));
        }
        let entry = match value {
            Value::Null => continue,
            Value::Object(map) => ResourceUsage {
                count: None,
                actions: per_action(map, &resource_path)?,
            },
            _ => ResourceUsage::plain(non_negative_integer(value).ok_or_else(|| {
                resource_path.error(format!(
                    "expected a count (a non-negative integer) or an object of counts per \
                     action, found {}",
                    describe(value)
                ))
            })?),
        };
        usage.resources.insert(Arc::from(resource.as_str()), entry);
    }
    Ok(usage)
}

/// Reads counts per action.
fn per_action(
    map: &Map<String, Value>,
    path: &JsonPath<'_>,
) -> Result<HashMap<Arc<str>, u64>, FormatError> {
    if map.contains_key("delete") && map.contains_key("destroy") {
        return Err(path
            .key("destroy")
            .error("`destroy` is an alias of `delete`, which is also set"));
    }
    let mut counts = HashMap::with_capacity(map.len());
    for (key, value) in map {
        let action_path = path.key(key);
        if key.is_empty() {
            return Err(action_path.error("expected a non-empty action name"));
        }
        if value.is_null() {
            continue;
        }
        let count = non_negative_integer(value).ok_or_else(|| {
            action_path.error(format!(
                "expected a count (a non-negative integer), found {}",
                describe(value)
            ))
        })?;
        let key: Arc<str> = match Action::rest(key) {
            Some(rest) => Arc::from(rest.as_str()),
            None => Arc::from(key.as_str()),
        };
        counts.insert(key, count);
    }
    Ok(counts)
}

//! What a request costs ([`Cost`]): the catalog's `meters`, by resource and action.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::Action;
use crate::format::{describe, non_negative_integer, FormatError, JsonPath};
use crate::names::NameMap;

/// What a request to one action of one resource consumes: a cost in units, drawn from the
/// action's own limit or from a credit pool, known before the request or reported by the
/// handler after it.
///
/// The catalog's top-level `"meters"` holds them by resource and action:
/// `{"images": {"create": {"cost": 5, "credits": "ai"}}, "chat": {"create": {"credits": "ai",
/// "report": true, "estimate": 200}}}`. `cost` (default 1) is what a request takes; `credits`
/// names the pool it draws from (plans declare pools beside their limits); `report: true` means
/// the handler reports what the request consumed, and `estimate` (default 1) is what is reserved
/// before. A meter without `credits` consumes from the action's own limit.
///
/// A request takes at least one unit: a `cost` or an `estimate` of 0 is a catalog error (from
/// the JSON loaders and from [`CatalogBuilder::build`](super::CatalogBuilder::build) alike), so
/// that a limit of 0, a used-up allowance and a plan without the pool refuse every request.
///
/// ```
/// use tower_plans::{Action, Catalog};
///
/// let catalog = Catalog::from_json(
///     r#"{"plans": [{"name": "pro", "limits": {"images": null}, "credits": {"ai": 1000}}],
///         "meters": {"images": {"create": {"cost": 5, "credits": "ai"}}}}"#,
/// )?;
/// let meter = catalog.cost("images", &Action::Create).expect("declared above");
/// assert_eq!(meter.units(), 5);
/// assert_eq!(meter.pool(), Some("ai"));
/// assert!(!meter.is_reported());
/// # Ok::<(), tower_plans::format::FormatError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cost {
    units: u64,
    pool: Option<Arc<str>>,
    reported: bool,
}

impl Cost {
    /// A request costs a fixed `cost` units of the action's own limit (at least 1: a catalog
    /// with a cost of 0 does not build): the JSON's `"cost": 5`.
    pub fn fixed(cost: u64) -> Self {
        Self {
            units: cost,
            pool: None,
            reported: false,
        }
    }

    /// The handler reports what a request consumed; `estimate` units are reserved before (at
    /// least 1: a catalog with an estimate of 0 does not build).
    pub fn reported(estimate: u64) -> Self {
        Self {
            units: estimate,
            pool: None,
            reported: true,
        }
    }

    /// Draws from the credit pool `pool` instead of the action's own limit, builder style.
    #[must_use]
    pub fn from_pool(mut self, pool: impl Into<Arc<str>>) -> Self {
        self.pool = Some(pool.into());
        self
    }

    /// The units a request reserves: its cost, or the estimate of a reported meter.
    pub fn units(&self) -> u64 {
        self.units
    }

    /// The pool a request draws from, `None` for the action's own limit.
    pub fn pool(&self) -> Option<&str> {
        self.pool.as_deref()
    }

    /// The pool's name, shared.
    pub(crate) fn pool_arc(&self) -> Option<&Arc<str>> {
        self.pool.as_ref()
    }

    /// Whether the handler reports what a request consumed.
    pub fn is_reported(&self) -> bool {
        self.reported
    }
}

/// The meters of one resource, by action, in the order of [`Action`]'s `Ord` (kept by
/// [`set_meter`]), so that two catalogs with the same meters compare equal however they were
/// built.
pub(super) type ResourceMeters = Vec<(Action, Cost)>;

/// Sets the meter of `action` (already normalised) in `meters`, replacing the one it had.
pub(super) fn set_meter(meters: &mut ResourceMeters, action: Action, meter: Cost) {
    match meters.binary_search_by(|(metered, _)| metered.cmp(&action)) {
        Ok(at) => meters[at].1 = meter,
        Err(at) => meters.insert(at, (action, meter)),
    }
}

/// Reads the catalog's `meters`: by resource, by action (REST or declared custom), a meter
/// whose pool, if it names one, is among `pools` (those the plans and add-ons declare).
pub(super) fn meters(
    value: Option<&Value>,
    path: &JsonPath<'_>,
    actions: &[Arc<str>],
    pools: &[&str],
) -> Result<NameMap<ResourceMeters>, FormatError> {
    let mut meters = NameMap::default();
    let entries = match value {
        None | Some(Value::Null) => return Ok(meters),
        Some(Value::Object(entries)) => entries,
        Some(other) => {
            return Err(path.error(format!(
                "expected an object of meters per resource, found {}",
                describe(other)
            )))
        }
    };
    for (resource, value) in entries {
        let resource_path = path.key(resource);
        if resource.is_empty() {
            return Err(resource_path.error("expected a non-empty resource name"));
        }
        let Value::Object(by_action) = value else {
            return Err(resource_path.error(format!(
                "expected an object of meters per action, found {}",
                describe(value)
            )));
        };
        if by_action.contains_key("delete") && by_action.contains_key("destroy") {
            return Err(resource_path
                .key("destroy")
                .error("`destroy` is an alias of `delete`, which is also set"));
        }
        let mut resource_meters = ResourceMeters::new();
        for (key, value) in by_action {
            let action_path = resource_path.key(key);
            let action = match Action::rest(key) {
                Some(action) => action,
                None => match actions.iter().find(|name| ***name == **key) {
                    Some(name) => Action::Custom(Arc::clone(name)),
                    None => {
                        return Err(action_path.error(format!(
                            "unknown action `{key}`; expected index, show, create, update, \
                             patch, delete (or destroy), or a custom action declared in the \
                             catalog's `actions`"
                        )))
                    }
                },
            };
            let meter = meter(value, &action_path)?;
            // Checked here, where the path has the action as the JSON spells it (`destroy`).
            if let Some(pool) = meter.pool() {
                if !pools.contains(&pool) {
                    return Err(action_path.key("credits").error(format!(
                        "unknown credit pool `{pool}`; no plan or add-on declares it"
                    )));
                }
            }
            set_meter(&mut resource_meters, action, meter);
        }
        meters.insert(Arc::from(resource.as_str()), resource_meters);
    }
    Ok(meters)
}

/// Reads one meter.
fn meter(value: &Value, path: &JsonPath<'_>) -> Result<Cost, FormatError> {
    let Value::Object(map) = value else {
        return Err(path.error(format!(
            "expected a meter object such as {{\"cost\": 5, \"credits\": \"ai\"}}, found {}",
            describe(value)
        )));
    };
    if let Some(key) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "cost" | "credits" | "report" | "estimate"))
    {
        return Err(path
            .key(key)
            .error("unknown meter property; expected `cost`, `credits`, `report` or `estimate`"));
    }
    let reported = match map.get("report") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(report)) => *report,
        Some(other) => {
            return Err(path
                .key("report")
                .error(format!("expected true or false, found {}", describe(other))))
        }
    };
    let count = |key: &str, map: &Map<String, Value>| -> Result<Option<u64>, FormatError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            // A request takes at least one unit: with none, a limit of 0 or a plan without
            // the pool would let it through.
            Some(value) => non_negative_integer(value)
                .filter(|units| *units > 0)
                .map(Some)
                .ok_or_else(|| {
                    path.key(key).error(format!(
                        "expected a positive integer (a request takes at least one unit), \
                         found {}",
                        describe(value)
                    ))
                }),
        }
    };
    let cost = count("cost", map)?;
    let estimate = count("estimate", map)?;
    let mut meter = match (reported, cost, estimate) {
        (true, Some(_), _) => {
            return Err(path
                .key("cost")
                .error("a reported meter has no fixed cost; give its `estimate` instead"))
        }
        (false, _, Some(_)) => {
            return Err(path
                .key("estimate")
                .error("an estimate belongs to a reported meter (`\"report\": true`)"))
        }
        (true, None, estimate) => Cost::reported(estimate.unwrap_or(1)),
        (false, cost, None) => Cost::fixed(cost.unwrap_or(1)),
    };
    match map.get("credits") {
        None | Some(Value::Null) => {}
        Some(Value::String(pool)) if !pool.is_empty() => meter = meter.from_pool(pool.as_str()),
        Some(other) => {
            return Err(path.key("credits").error(format!(
                "expected the name of a credit pool, found {}",
                describe(other)
            )))
        }
    }
    Ok(meter)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(value: Value) -> Result<NameMap<ResourceMeters>, FormatError> {
        meters(
            Some(&value),
            &JsonPath::root().key("meters"),
            &[Arc::from("export")],
            &["ai"],
        )
    }

    #[test]
    fn meters_read_costs_pools_and_reports() {
        let meters = read(json!({
            "images": {"create": {"cost": 5, "credits": "ai"}},
            "chat": {"create": {"credits": "ai", "report": true, "estimate": 200}},
            "reports": {"export": {}, "destroy": {"cost": 2}}
        }))
        .unwrap();
        let images = &meters.get("images").unwrap()[0];
        assert_eq!(images.0, Action::Create);
        assert_eq!(images.1, Cost::fixed(5).from_pool("ai"));
        let chat = &meters.get("chat").unwrap()[0].1;
        assert!(chat.is_reported());
        assert_eq!((chat.units(), chat.pool()), (200, Some("ai")));
        let reports = meters.get("reports").unwrap();
        assert!(reports.contains(&(Action::custom("export"), Cost::fixed(1))));
        assert!(reports.contains(&(Action::Delete, Cost::fixed(2))));
    }

    #[test]
    fn bad_meters_name_their_path() {
        let cases = [
            (json!([]), "meters"),
            (json!({"images": 5}), "meters.images"),
            (json!({"images": {"craete": {}}}), "meters.images.craete"),
            (
                json!({"images": {"create": {"price": 1}}}),
                "meters.images.create.price",
            ),
            (
                json!({"images": {"create": {"cost": -1}}}),
                "meters.images.create.cost",
            ),
            (
                json!({"images": {"create": {"cost": 1.5}}}),
                "meters.images.create.cost",
            ),
            (
                json!({"images": {"create": {"cost": 0}}}),
                "meters.images.create.cost",
            ),
            (
                json!({"chat": {"create": {"report": true, "estimate": 0}}}),
                "meters.chat.create.estimate",
            ),
            (
                json!({"images": {"create": {"credits": "a1"}}}),
                "meters.images.create.credits",
            ),
            (
                json!({"reports": {"destroy": {"credits": "a1"}}}),
                "meters.reports.destroy.credits",
            ),
            (
                json!({"images": {"create": {"report": "yes"}}}),
                "meters.images.create.report",
            ),
            (
                json!({"images": {"create": {"report": true, "cost": 3}}}),
                "meters.images.create.cost",
            ),
            (
                json!({"images": {"create": {"estimate": 3}}}),
                "meters.images.create.estimate",
            ),
            (
                json!({"images": {"create": {"credits": ""}}}),
                "meters.images.create.credits",
            ),
            (json!({"images": {"create": 5}}), "meters.images.create"),
            (json!({"": {}}), "meters[\"\"]"),
            (
                json!({"x": {"delete": {}, "destroy": {}}}),
                "meters.x.destroy",
            ),
        ];
        for (value, path) in cases {
            let error = read(value.clone()).expect_err(&value.to_string());
            assert_eq!(error.path(), path, "{value}: {error}");
        }
    }

    #[test]
    fn no_meters_is_empty() {
        assert!(meters(None, &JsonPath::root(), &[], &[])
            .unwrap()
            .is_empty());
        assert!(read(Value::Null).unwrap().is_empty());
    }
}

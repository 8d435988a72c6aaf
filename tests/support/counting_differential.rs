//! Counting against the read-only decision: random catalogs, records and request sequences, sent
//! through one layer that counts usage and one that does not, checked against a plain model of
//! the counters.
//!
//! The layer without counting answers by section 6 of the semantics on a record that never
//! changes. The layer that counts must give the same answer for every request that changes
//! nothing (a denial, an action without a finite limit), and may differ only by the units its
//! allowed requests counted. The model says by how much, counter by counter:
//!
//! * a resource's *item count* starts at what the record gives a create (its plain count, or its
//!   per-action `create` count, or 0); a successful create adds one, a successful delete takes
//!   one away (never below 0);
//! * an action with a finite limit counts its successful calls on a counter of its own, which
//!   starts at the record's per-action count of that action. While it has none, it reads what
//!   the decision reads: for a resource the record counts plainly (or not at all), the plain
//!   count, which is the item count and moves with it; for a resource counted per action, 0. A
//!   refused request creates no counter;
//! * a `PATCH` limited through the `update` limit counts on the `patch` counter when the record
//!   has a `patch` count, else on the `update` counter;
//! * a quota (`{"max", "per"}`) counts per period from 0, whatever the record says; the record's
//!   count is the period's usage only without counting (the one deliberate difference).
//!
//! Included by the layer tests (the in-memory store, and the SQLite example's store) and the Redis
//! tests (plans in memory, counts in Redis) with `#[path = "../support/counting_differential.rs"]`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tower::{service_fn, ServiceExt};
use tower_plans::{
    Action, Allowed, MemoryStore, PlanLimitLayer, PlanLimitLayerBuilder, PlanStore, UserId,
};

/// The decision clock of every case.
pub const NOW: u64 = 1_800_000_000_000;

const DAY: u64 = 86_400_000;

/// The resources of every catalog.
pub const RESOURCES: [&str; 3] = ["clients", "tasks", "notes"];

/// The actions a catalog or a record may name (`archive` is declared as a custom action).
const ACTIONS: [&str; 7] = [
    "index", "show", "create", "update", "patch", "delete", "archive",
];

/// How many cases to run: `PROPTEST_CASES` when set, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default)
}

/// One request of a sequence: a resource and what is done to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    List,
    Show,
    Head,
    Create,
    Put,
    Patch,
    Delete,
    Archive,
}

impl Op {
    const ALL: [Op; 8] = [
        Op::List,
        Op::Show,
        Op::Head,
        Op::Create,
        Op::Put,
        Op::Patch,
        Op::Delete,
        Op::Archive,
    ];

    fn method(self) -> Method {
        match self {
            Op::List | Op::Show => Method::GET,
            Op::Head => Method::HEAD,
            Op::Create | Op::Archive => Method::POST,
            Op::Put => Method::PUT,
            Op::Patch => Method::PATCH,
            Op::Delete => Method::DELETE,
        }
    }

    fn path(self, resource: &str) -> String {
        match self {
            Op::List | Op::Create => format!("/{resource}"),
            Op::Archive => format!("/{resource}/7/archive"),
            _ => format!("/{resource}/7"),
        }
    }

    /// The action the layer maps the request to.
    fn action(self) -> &'static str {
        match self {
            Op::List => "index",
            Op::Show | Op::Head => "show",
            Op::Create => "create",
            Op::Put => "update",
            Op::Patch => "patch",
            Op::Delete => "delete",
            Op::Archive => "archive",
        }
    }
}

/// One generated case: a catalog, one user's record, and the requests of that user.
#[derive(Clone, Debug)]
pub struct Case {
    pub catalog: Value,
    pub record: Value,
    pub requests: Vec<(usize, Op)>,
}

impl Case {
    /// The catalog as JSON text.
    pub fn catalog_json(&self) -> String {
        self.catalog.to_string()
    }

    /// The users document of a `MemoryStore` holding the case's record as `u`.
    pub fn users_json(&self) -> String {
        json!({ "u": self.record }).to_string()
    }

    /// A store holding the catalog and the record.
    pub fn store(&self) -> MemoryStore {
        MemoryStore::from_json(&self.catalog_json(), &self.users_json())
            .expect("generated catalogs and records load")
    }
}

/// A limit value: unlimited, a number, or a monthly quota.
fn limit_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(Value::Null),
        5 => (0u64..5).prop_map(Value::from),
        2 => (1u64..4).prop_map(|max| json!({"max": max, "per": "month"})),
    ]
}

/// A resource's limits: absent, unlimited, the create shorthand, or per action (`destroy`
/// spelling `delete` now and then).
fn resource_limits(quotas: bool) -> impl Strategy<Value = Option<Value>> {
    let value = if quotas {
        limit_value().boxed()
    } else {
        prop_oneof![Just(Value::Null), (0u64..4).prop_map(Value::from)].boxed()
    };
    let per_action = (
        proptest::collection::vec(proptest::option::of(value), ACTIONS.len()),
        any::<bool>(),
    )
        .prop_map(|(values, destroy)| {
            let mut map = Map::new();
            for (action, value) in ACTIONS.iter().zip(values) {
                if let Some(value) = value {
                    let key = if *action == "delete" && destroy {
                        "destroy"
                    } else {
                        action
                    };
                    map.insert(key.to_owned(), value);
                }
            }
            Some(Value::Object(map))
        });
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        2 => (0u64..5).prop_map(|n| Some(Value::from(n))),
        5 => per_action,
    ]
}

/// Limits for every resource (some absent).
fn limits(quotas: bool) -> impl Strategy<Value = Value> {
    proptest::collection::vec(resource_limits(quotas), RESOURCES.len()).prop_map(|all| {
        let mut map = Map::new();
        for (resource, limits) in RESOURCES.iter().zip(all) {
            if let Some(limits) = limits {
                map.insert((*resource).to_owned(), limits);
            }
        }
        Value::Object(map)
    })
}

/// A catalog: free and pro, a 14-day trial that falls back to free, the `archive` action and an
/// add-on.
fn catalog() -> impl Strategy<Value = Value> {
    (limits(true), limits(true), limits(false)).prop_map(|(free, pro, extra)| {
        json!({
            "trial": {"duration": 14, "fallback": "free"},
            "actions": ["archive"],
            "plans": [
                {"name": "free", "limits": free},
                {"name": "pro", "limits": pro},
            ],
            "addons": [{"name": "extra", "limits": extra}],
        })
    })
}

/// A resource's usage in a record: absent, a plain count, or counts per action.
fn resource_usage() -> impl Strategy<Value = Option<Value>> {
    let per_action = (
        proptest::collection::vec(proptest::option::of(0u64..6), ACTIONS.len()),
        any::<bool>(),
    )
        .prop_map(|(counts, destroy)| {
            let mut map = Map::new();
            for (action, count) in ACTIONS.iter().zip(counts) {
                if let Some(count) = count {
                    let key = if *action == "delete" && destroy {
                        "destroy"
                    } else {
                        action
                    };
                    map.insert(key.to_owned(), Value::from(count));
                }
            }
            Some(Value::Object(map))
        });
    prop_oneof![
        2 => Just(None),
        3 => (0u64..6).prop_map(|n| Some(Value::from(n))),
        3 => per_action,
    ]
}

/// A record: a plan (active, on trial, fallen back from a trial, expired, or none), usage, and
/// for an active plan perhaps the add-on.
fn record() -> impl Strategy<Value = Value> {
    let plan = prop_oneof![
        4 => Just(json!("free")),
        3 => Just(json!("pro")),
        1 => Just(json!({"name": "pro", "trial": true, "join": NOW - DAY})),
        1 => Just(json!({"name": "pro", "trial": true, "join": NOW - 20 * DAY})),
        1 => Just(json!({"name": "pro", "expire": NOW - DAY})),
        1 => Just(Value::Null),
    ];
    (
        plan,
        proptest::collection::vec(resource_usage(), RESOURCES.len()),
        0u64..3,
    )
        .prop_map(|(plan, usage, addon)| {
            let mut map = Map::new();
            for (resource, usage) in RESOURCES.iter().zip(usage) {
                if let Some(usage) = usage {
                    map.insert((*resource).to_owned(), usage);
                }
            }
            let mut record = json!({"name": "u", "usage": map});
            // Add-ons only beside a plan that applies: without one, their limits alone would.
            let active = plan == json!("free") || plan == json!("pro");
            if !plan.is_null() {
                record["plan"] = plan;
            }
            if active && addon > 0 {
                record["addons"] = json!([{"name": "extra", "quantity": addon}]);
            }
            record
        })
}

/// A whole case.
pub fn case() -> impl Strategy<Value = Case> {
    (
        catalog(),
        record(),
        proptest::collection::vec(
            (0..RESOURCES.len(), proptest::sample::select(&Op::ALL[..])),
            1..30,
        ),
    )
        .prop_map(|(catalog, record, requests)| Case {
            catalog,
            record,
            requests,
        })
}

/// The layer of one side, configured alike: the fixed clock, an `archive` route per resource.
pub fn builder(store: impl PlanStore) -> PlanLimitLayerBuilder {
    let mut builder = PlanLimitLayer::builder(store).clock(|| NOW);
    for resource in RESOURCES {
        builder = builder.route(
            Method::POST,
            format!("/{resource}/{{id}}/archive"),
            resource,
            Action::custom("archive"),
        );
    }
    builder
}

/// What one side answered: the status and the JSON body (the denial, or the [`Allowed`]
/// decision the handler echoes).
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// Sends one request of user `u` through `layer` to a handler that answers 200 with the
/// [`Allowed`] decision.
pub async fn send(layer: &PlanLimitLayer, resource: &str, op: Op) -> Answer {
    let service = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|req: Request<Full<Bytes>>| async move {
            let allowed = req.extensions().get::<Allowed>().cloned();
            let body = serde_json::to_vec(&allowed).expect("Allowed serialises");
            Ok::<_, Infallible>(Response::new(Full::from(body)))
        }));
    let mut request = Request::builder()
        .method(op.method())
        .uri(op.path(resource))
        .body(Full::default())
        .expect("valid request");
    request.extensions_mut().insert(UserId::from("u"));
    let response = service.oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("in-memory body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, body }
}

/// The counters the model keeps for the layer that counts.
#[derive(Debug, Default)]
pub struct Model {
    /// The resources the record counts per action.
    per_action: Vec<&'static str>,
    /// Item counts.
    items: HashMap<&'static str, u64>,
    /// Per-action counters that exist (from the record or counted).
    actions: HashMap<(&'static str, &'static str), u64>,
    /// Quota counters of the one period the clock is in.
    periods: HashMap<(&'static str, &'static str), u64>,
}

/// Which counter a request counts on.
#[derive(Clone, Copy, Debug)]
enum Counter {
    Items,
    Action(&'static str),
    Period(&'static str),
}

impl Model {
    /// The counters as the record starts them.
    pub fn of(record: &Value) -> Model {
        let mut model = Model::default();
        for resource in RESOURCES {
            match record["usage"].get(resource) {
                Some(Value::Object(counts)) => {
                    model.per_action.push(resource);
                    for action in ACTIONS {
                        let key = if action == "delete" && counts.contains_key("destroy") {
                            "destroy"
                        } else {
                            action
                        };
                        if let Some(count) = counts.get(key).and_then(Value::as_u64) {
                            if action == "create" {
                                model.items.insert(resource, count);
                            } else {
                                model.actions.insert((resource, action), count);
                            }
                        }
                    }
                }
                Some(count) => {
                    model.items.insert(resource, count.as_u64().unwrap_or(0));
                }
                None => {}
            }
        }
        model
    }

    fn items(&self, resource: &'static str) -> u64 {
        self.items.get(resource).copied().unwrap_or(0)
    }

    /// The count of `counter` of `resource`.
    fn count(&self, resource: &'static str, counter: Counter) -> u64 {
        match counter {
            Counter::Items => self.items(resource),
            Counter::Action(action) => match self.actions.get(&(resource, action)) {
                Some(count) => *count,
                None if self.per_action.contains(&resource) => 0,
                // The plain count is the item count.
                None => self.items(resource),
            },
            Counter::Period(action) => self.periods.get(&(resource, action)).copied().unwrap_or(0),
        }
    }

    /// Counts one successful use of `counter`.
    fn commit(&mut self, resource: &'static str, counter: Counter) {
        let after = self.count(resource, counter) + 1;
        match counter {
            Counter::Items => self.items.insert(resource, after),
            Counter::Action(action) => self.actions.insert((resource, action), after),
            Counter::Period(action) => self.periods.insert((resource, action), after),
        };
    }

    fn give_back_item(&mut self, resource: &'static str) {
        let after = self.items(resource).saturating_sub(1);
        self.items.insert(resource, after);
    }
}

/// The limit the side without counting applied, read from its answer: `None` when there is
/// none to read (another denial), `Some(None)` when unlimited, else the maximum and whether it
/// is a quota.
fn limit_of(answer: &Answer) -> Option<Option<(u64, bool)>> {
    match answer.status {
        StatusCode::OK => match &answer.body["limit"] {
            Value::Null => Some(None),
            Value::Number(max) => Some(Some((max.as_u64()?, false))),
            quota => Some(Some((quota["max"].as_u64()?, true))),
        },
        StatusCode::FORBIDDEN if answer.body.get("maximum").is_some() => Some(Some((
            answer.body["maximum"].as_u64()?,
            answer.body.get("resets").is_some(),
        ))),
        _ => None,
    }
}

/// Whether the effective plan `plan` limits a `PATCH` of `resource` through its `update` limit.
fn patch_counts_updates(catalog: &Value, plan: &str, resource: &str) -> bool {
    let Some(plans) = catalog["plans"].as_array() else {
        return false;
    };
    let Some(limits) = plans
        .iter()
        .find(|p| p["name"] == plan)
        .and_then(|p| p["limits"].get(resource))
    else {
        return false;
    };
    limits.is_object() && limits.get("patch").is_none() && limits.get("update").is_some()
}

/// Runs `case`'s requests through `off` (no counting) and `on` (counting), checking each answer
/// of `on` against the model; returns a description of the first difference.
pub async fn run(case: &Case, off: &PlanLimitLayer, on: &PlanLimitLayer) -> Result<(), String> {
    let mut model = Model::of(&case.record);
    let mut log = String::new();
    for (step, &(at, op)) in case.requests.iter().enumerate() {
        let resource = RESOURCES[at];
        let without = send(off, resource, op).await;
        let with = send(on, resource, op).await;
        let _ = writeln!(
            log,
            "{step}: {} {} -> off {} {} | on {} {}",
            op.method(),
            op.path(resource),
            without.status,
            without.body,
            with.status,
            with.body
        );
        let expected = expect(case, &mut model, resource, op, &without);
        if let Err(why) = expected.check(&with) {
            return Err(format!("{why}\nrequests so far:\n{log}model: {model:?}"));
        }
    }
    Ok(())
}

/// What the counting side must answer.
enum Expected {
    /// Exactly this.
    Same(Answer),
    /// This status (an action without a finite limit: the usage an allowed request reports may
    /// come from the record).
    Status(StatusCode),
    /// This status, and these values in the body.
    Fields(StatusCode, Value),
}

impl Expected {
    fn check(&self, answer: &Answer) -> Result<(), String> {
        match self {
            Expected::Same(expected) if expected == answer => Ok(()),
            Expected::Status(status) if *status == answer.status => Ok(()),
            Expected::Fields(status, fields)
                if *status == answer.status
                    && fields
                        .as_object()
                        .is_some_and(|fields| fields.iter().all(|(k, v)| answer.body[k] == *v)) =>
            {
                Ok(())
            }
            Expected::Same(expected) => Err(format!(
                "expected {} {}, got {} {}",
                expected.status, expected.body, answer.status, answer.body
            )),
            Expected::Status(status) => Err(format!(
                "expected status {status}, got {} {}",
                answer.status, answer.body
            )),
            Expected::Fields(status, fields) => Err(format!(
                "expected {status} with {fields}, got {} {}",
                answer.status, answer.body
            )),
        }
    }
}

/// The answer the model expects from the counting side for this request, given the answer
/// `without` of the side that does not count; counts what an allowed request counts.
fn expect(
    case: &Case,
    model: &mut Model,
    resource: &'static str,
    op: Op,
    without: &Answer,
) -> Expected {
    let Some(limit) = limit_of(without) else {
        // No plan, expired: nothing is counted, and the answer is the same.
        return Expected::Same(without.clone());
    };
    let plan = without.body["plan"].as_str().unwrap_or_default().to_owned();
    let action = op.action();
    let finite = limit.is_some();
    let quota = limit.is_some_and(|(_, quota)| quota);
    // Which counter the request reserves on, if any; what a success changes besides.
    let counter = match action {
        "create" if quota => Some(Counter::Period("create")),
        "create" => Some(Counter::Items),
        "delete" if quota => Some(Counter::Period("delete")),
        _ if !finite => None,
        "patch" if patch_counts_updates(&case.catalog, &plan, resource) => {
            let counted = if model.actions.contains_key(&(resource, "patch")) {
                "patch"
            } else {
                "update"
            };
            Some(if quota {
                Counter::Period(counted)
            } else {
                Counter::Action(counted)
            })
        }
        action if quota => Some(Counter::Period(action)),
        action => Some(Counter::Action(action)),
    };
    let Some(counter) = counter else {
        // Not counted: allowed by an unlimited action (a delete gives its item back).
        if action == "delete" {
            model.give_back_item(resource);
        }
        return Expected::Status(StatusCode::OK);
    };
    let usage = model.count(resource, counter);
    let Some((maximum, _)) = limit else {
        // An unlimited create: counted on the items, allowed.
        model.commit(resource, counter);
        return Expected::Status(StatusCode::OK);
    };
    if usage >= maximum {
        let mut body = json!({
            "reason": "subscription",
            "plan": plan,
            "item": resource,
            "action": action,
            "maximum": maximum,
            "usage": usage,
        });
        if quota {
            body["resets"] = without.body["resets"].clone();
        }
        return Expected::Same(Answer {
            status: StatusCode::FORBIDDEN,
            body,
        });
    }
    // Allowed, and counted: the answer says the counted usage before this request.
    model.commit(resource, counter);
    match (action, counter) {
        ("create", Counter::Period(_)) => model.commit(resource, Counter::Items),
        ("delete", _) => model.give_back_item(resource),
        _ => {}
    }
    if without.status == StatusCode::OK {
        let mut body = without.body.clone();
        body["usage"] = json!(usage);
        body["remaining"] = json!(maximum - usage);
        return Expected::Same(Answer {
            status: StatusCode::OK,
            body,
        });
    }
    // Denied without counting (the record's count was higher), allowed with it: the decision
    // names what the denial named.
    let mut fields = json!({
        "plan": plan,
        "item": resource,
        "action": action,
        "usage": usage,
        "remaining": maximum - usage,
    });
    if quota {
        fields["resets"] = without.body["resets"].clone();
    }
    Expected::Fields(StatusCode::OK, fields)
}

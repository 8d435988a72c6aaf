//! The subscriber record reader: `Subscriber::from_json`, `Subscriber::from_value` and serde's
//! `Deserialize`.
//!
//! Any text: no panic, and the three readers agree. A record that loads keeps its promises: its
//! name, plan and usage are what a plain reading of the document gives; a trial knows when it
//! ends; counts read back through `Usage::get`, `count` and `action_count` as stored; written
//! out in the JSON form and read back, it is the same record; a memory store loaded with it
//! hands it back; and deciding on it, at any time, never panics and allows only what the limit
//! allows.

#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use tower_plans::decision::{decide, Decision, Denial, PlanState, Policy};
use tower_plans::subscriber::{AddonGrant, Assignment};
use tower_plans::{Action, Catalog, MemoryStore, Subscriber};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = Subscriber::from_json(text);
    if let Err(error) = &loaded {
        let _ = error.to_string();
    }
    let value = match serde_json::from_str::<Value>(text) {
        Ok(value) => value,
        Err(_) => {
            let error = loaded.expect_err("text that is not JSON loads no record");
            assert_eq!(error.path(), "", "invalid JSON is about the whole document");
            return;
        }
    };
    assert_eq!(
        loaded,
        Subscriber::from_value(&value),
        "from_json and from_value disagree"
    );
    let via_serde = serde_json::from_value::<Subscriber>(value.clone());
    match (&loaded, &via_serde) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "Deserialize reads another record"),
        (Err(_), Err(_)) => {}
        _ => panic!("from_json {loaded:?} but Deserialize {via_serde:?}"),
    }
    // A memory store loaded with the record as a user's loads exactly when the record does and
    // grants only add-ons its catalog knows, and names the user in its error.
    let users = json!({ "u": value.clone() });
    let plans =
        json!({"plans": [{"name": "free"}], "addons": [{"name": "pack"}, {"name": "more"}]});
    let unknown = loaded.as_ref().ok().and_then(|record| {
        record
            .addons
            .iter()
            .position(|grant| !matches!(&*grant.name, "pack" | "more"))
    });
    match (&loaded, MemoryStore::from_values(&plans, &users)) {
        (Ok(record), Ok(store)) => {
            assert_eq!(unknown, None, "a store granted an add-on its catalog lacks");
            assert_eq!(store.subscriber("u").as_deref(), Some(record));
        }
        (Ok(record), Err(error)) => {
            let at = unknown.expect("the store refused a record it knows every add-on of");
            assert_eq!(
                error.to_string(),
                format!(
                    "users[\"u\"].addons[{at}].name: the catalog has no add-on `{}`",
                    record.addons[at].name
                )
            );
        }
        (Err(record), Err(error)) => {
            let path = record.path();
            let dot = if path.is_empty() || path.starts_with('[') {
                ""
            } else {
                "."
            };
            let expected = format!("users[\"u\"]{dot}{path}: {}", record.message());
            assert_eq!(error.to_string(), expected);
        }
        (_, Ok(store)) if value.is_null() => assert!(store.is_empty()),
        (record, store) => panic!("the record {record:?}, but the store {store:?}"),
    }
    if let Ok(record) = loaded {
        check(&record, &value);
    }
});

fn check(record: &Subscriber, value: &Value) {
    let Value::Object(map) = value else {
        panic!("a record loaded from {value:?}");
    };

    // The name: `name`, else `id`, as a string or a number.
    let as_name = |key: &str| match map.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    assert_eq!(
        record.name.as_deref(),
        as_name("name").or_else(|| as_name("id")).as_deref()
    );

    // The plan.
    match (&record.assignment, map.get("plan")) {
        (None, None | Some(Value::Null)) => {}
        (Some(assignment), Some(Value::String(name))) => {
            assert_eq!(assignment, &Assignment::new(name.as_str()));
        }
        (Some(assignment), Some(Value::Object(plan))) => {
            assert_eq!(
                plan.get("name").and_then(Value::as_str),
                Some(&*assignment.plan)
            );
            assert_eq!(
                assignment.trial,
                plan.get("trial").and_then(Value::as_bool).unwrap_or(false)
            );
            assert_eq!(assignment.joined, instant(plan.get("join")));
            assert_eq!(assignment.expires, instant(plan.get("expire")));
        }
        (assignment, plan) => panic!("plan {plan:?} read as {assignment:?}"),
    }
    if let Some(assignment) = &record.assignment {
        assert!(!assignment.plan.is_empty());
        assert!(
            !assignment.trial || assignment.joined.is_some() || assignment.expires.is_some(),
            "a trial that never ends"
        );
    }

    // The add-on grants: as a plain reading of the document gives them.
    let grants: Vec<AddonGrant> = match map.get("addons") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let name = item["name"].as_str().expect("a loaded grant has a name");
                let mut grant = AddonGrant::new(name);
                grant.starts = instant(item.get("starts"));
                grant.expires = instant(item.get("expires"));
                grant.quantity = item.get("quantity").and_then(count_of).unwrap_or(1);
                grant.source = item.get("source").and_then(Value::as_str).map(Arc::from);
                grant
            })
            .collect(),
        Some(other) => panic!("add-ons {other:?} loaded"),
    };
    assert_eq!(record.addons, grants);
    for grant in &record.addons {
        assert!(!grant.name.is_empty());
        assert!(grant.source.as_deref() != Some(""), "an empty source");
        if let (Some(starts), Some(expires)) = (grant.starts, grant.expires) {
            assert!(starts <= expires, "a grant that ends before it starts");
        }
    }

    // The billing cycle's anchor.
    assert_eq!(record.cycle_anchor, instant(map.get("cycle_anchor")));

    // The usage: as a plain reading of the document gives it.
    let expected = expected_usage(map);
    assert_eq!(
        record.usage.len(),
        expected.len(),
        "usage {:?}",
        record.usage
    );
    for (resource, counts) in &expected {
        let Some(got) = record.usage.resource(resource) else {
            panic!("{resource}: expected {counts:?}, read nothing");
        };
        match counts {
            Expected::Count(n) => {
                assert_eq!(got.count(), Some(*n), "{resource}");
                assert_eq!(got.actions().count(), 0, "{resource}");
            }
            Expected::PerAction(want) => {
                assert_eq!(got.count(), None, "{resource}");
                let got: HashMap<&str, u64> = got.actions().map(|(k, v)| (&**k, v)).collect();
                let want: HashMap<&str, u64> = want.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                assert_eq!(got, want, "counts of {resource}");
            }
        }
    }

    // Reading counts back.
    for (resource, usage) in record.usage.iter() {
        assert!(!resource.is_empty());
        for action in actions() {
            let get = record.usage.get(resource, &action);
            assert!(
                usage.actions().all(|(key, _)| &**key != "destroy"),
                "destroy is kept as delete"
            );
            let own = usage
                .actions()
                .find(|&(key, _)| &**key == action_key(&action))
                .map(|(_, n)| n);
            assert_eq!(record.usage.action_count(resource, &action), own);
            assert_eq!(record.usage.count(resource), usage.count());
            // An action's own count, else the plain count, else 0.
            assert_eq!(get, own.or(usage.count()).unwrap_or(0));
        }
    }

    write_and_read_back(record);
    memory_store(record);
    decisions(record);
}

#[derive(Debug)]
enum Expected {
    Count(u64),
    PerAction(Vec<(String, u64)>),
}

/// The usage of a loaded record, read plainly: the `usage` object, or the top-level properties
/// but `name`, `id`, `plan`, `addons`, `cycle_anchor` and `grants`; `null` counts left out; `destroy`
/// is `delete`.
fn expected_usage(map: &Map<String, Value>) -> Vec<(String, Expected)> {
    let entries: Vec<(&String, &Value)> = match map.get("usage") {
        Some(Value::Object(usage)) => usage.iter().collect(),
        Some(_) => Vec::new(),
        None => map
            .iter()
            .filter(|(key, _)| {
                !["name", "id", "plan", "addons", "cycle_anchor", "grants"].contains(&key.as_str())
            })
            .collect(),
    };
    let mut out = Vec::new();
    for (resource, value) in entries {
        match value {
            Value::Null => {}
            Value::Object(counts) => {
                let counts = counts
                    .iter()
                    .filter_map(|(action, count)| {
                        let action = if action == "destroy" {
                            "delete"
                        } else {
                            action
                        };
                        count_of(count).map(|n| (action.to_owned(), n))
                    })
                    .collect();
                out.push((resource.clone(), Expected::PerAction(counts)));
            }
            count => out.push((
                resource.clone(),
                Expected::Count(count_of(count).expect("a loaded count is a count")),
            )),
        }
    }
    out
}

/// A count: a non-negative integer, also written as a float without a fraction.
fn count_of(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    (f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0).then_some(f as u64)
}

fn instant(value: Option<&Value>) -> Option<u64> {
    value.and_then(count_of)
}

fn actions() -> [Action; 9] {
    [
        Action::Index,
        Action::Show,
        Action::Create,
        Action::Update,
        Action::Patch,
        Action::Delete,
        Action::Custom(Arc::from("destroy")),
        Action::custom("export"),
        Action::custom("a"),
    ]
}

/// The key a per-action count is kept under.
fn action_key(action: &Action) -> &str {
    match action.as_str() {
        "destroy" => "delete",
        name => name,
    }
}

/// The record in the JSON form (a plan object, a `usage` object), read back.
fn write_and_read_back(record: &Subscriber) {
    let mut root = Map::new();
    if let Some(name) = &record.name {
        root.insert("name".into(), Value::from(&**name));
    }
    if let Some(assignment) = &record.assignment {
        root.insert(
            "plan".into(),
            json!({
                "name": &*assignment.plan,
                "trial": assignment.trial,
                "join": assignment.joined,
                "expire": assignment.expires,
            }),
        );
    }
    let usage: Map<String, Value> = record
        .usage
        .iter()
        .map(|(resource, usage)| {
            // A record read from JSON has one form or the other.
            let value = match usage.count() {
                Some(n) => Value::from(n),
                None => usage
                    .actions()
                    .map(|(action, n)| (action.to_string(), Value::from(n)))
                    .collect::<Map<String, Value>>()
                    .into(),
            };
            (resource.to_string(), value)
        })
        .collect();
    root.insert("usage".into(), Value::Object(usage));
    let addons: Vec<Value> = record
        .addons
        .iter()
        .map(|grant| {
            json!({"name": &*grant.name, "starts": grant.starts, "expires": grant.expires,
                   "quantity": grant.quantity, "source": grant.source.as_deref()})
        })
        .collect();
    root.insert("addons".into(), Value::Array(addons));
    root.insert("cycle_anchor".into(), json!(record.cycle_anchor));
    let grants: Vec<Value> = record
        .grants
        .iter()
        .map(|grant| {
            json!({"id": &*grant.id, "credits": &*grant.pool, "amount": grant.amount,
                   "starts": grant.starts, "expires": grant.expires})
        })
        .collect();
    root.insert("grants".into(), Value::Array(grants));
    let text = Value::Object(root).to_string();
    match Subscriber::from_json(&text) {
        Ok(again) => assert_eq!(&again, record, "the record changed on the way out and back"),
        Err(error) => panic!("the record written out does not load: {error}\n{text}"),
    }
}

/// A memory store loaded with the record hands it back.
fn memory_store(record: &Subscriber) {
    let store = MemoryStore::new(catalog().clone());
    store.insert_user("u", record.clone());
    assert_eq!(store.subscriber("u").as_deref(), Some(record));
    assert_eq!(store.len(), 1);
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        Catalog::from_json(
            r#"{
                "trial": {"duration": 14, "fallback": "free"},
                "actions": ["export"],
                "plans": [
                    {"name": "free", "clients": 3, "tasks": {"show": 0, "update": 2}},
                    {"name": "pro", "clients": null, "tasks": {"create": 10, "patch": 1, "export": 5}}
                ],
                "addons": [
                    {"name": "pack", "clients": 10, "tasks": {"export": {"max": 5, "per": "day"}}},
                    {"name": "more", "tasks": {"update": null, "show": 2}}
                ]
            }"#,
        )
        .expect("the fuzz catalog loads")
    })
}

/// Deciding on the record, at times around its plan's, never panics; an allowed request is one
/// the limit allows, a denied one is at or over its limit, and an expiry is in the past.
fn decisions(record: &Subscriber) {
    let catalog = catalog();
    let policies = [
        Policy::new(),
        Policy::new()
            .with_grace_period(Duration::from_secs(86_400))
            .with_default_plan("free"),
        Policy::new().with_grace_period(Duration::MAX),
    ];
    let mut times = vec![0, 1, 1_700_000_000_000, u64::MAX - 1, u64::MAX];
    if let Some(assignment) = &record.assignment {
        for at in [assignment.joined, assignment.expires]
            .into_iter()
            .flatten()
        {
            times.extend([at.saturating_sub(1), at, at.saturating_add(1)]);
        }
    }
    let resources: [Arc<str>; 3] = [Arc::from("clients"), Arc::from("tasks"), Arc::from("other")];
    for policy in &policies {
        for &now in &times {
            for resource in &resources {
                for action in actions() {
                    match decide(catalog, Some(record), now, resource, &action, policy) {
                        Decision::Allow(allowed) => {
                            assert!(
                                allowed.limit.allows(allowed.usage),
                                "allowed at usage {} under {:?}",
                                allowed.usage,
                                allowed.limit
                            );
                            // The plan, or without one the add-on the limit comes from.
                            if allowed.state == PlanState::Addons {
                                assert!(catalog.addon(&allowed.plan).is_some());
                                assert!(record.addons.iter().any(|g| g.name == allowed.plan));
                            } else {
                                assert!(catalog.plan(&allowed.plan).is_some());
                            }
                        }
                        Decision::Deny(denial) => {
                            match &denial {
                                Denial::LimitReached { maximum, usage, .. } => {
                                    assert!(usage >= maximum, "denied at {usage} of {maximum}");
                                }
                                Denial::Expired { date, .. } => {
                                    assert!(*date <= now, "expired at {date}, now {now}");
                                }
                                _ => {}
                            }
                            let body = denial.to_json_bytes();
                            let parsed: Value =
                                serde_json::from_slice(&body).expect("a denial body is JSON");
                            assert_eq!(parsed["reason"], "subscription");
                        }
                    }
                }
            }
        }
    }
}

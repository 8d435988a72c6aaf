//! The in-memory store: loading subscriber-format JSON, run-time changes, shared state, errors.

use std::sync::Arc;

use tower_plans::{
    store::LoadError, subscriber::Assignment, Action, Catalog, MemoryStore, PlanStore, Subscriber,
};

const PLANS: &str = r#"{
    "trial": {"duration": 14, "fallback": "free"},
    "plans": [
        {"name": "free", "clients": 3},
        {"name": "pro", "limits": {"clients": 30, "tasks": {"show": null, "create": 100}}}
    ]
}"#;

const USERS: &str = r#"{
    "john": {"name": "john", "plan": "free", "usage": {"clients": 2}},
    "jane": {"plan": {"name": "pro", "trial": true, "join": 1700000000000}, "clients": 7},
    "ghost": null
}"#;

fn store() -> MemoryStore {
    MemoryStore::from_json(PLANS, USERS).unwrap()
}

#[tokio::test]
async fn loads_the_catalog_and_the_users() {
    let store = store();
    assert_eq!(store.len(), 2);
    assert!(!store.is_empty());

    let catalog = store.plans().await.unwrap();
    assert_eq!(catalog.plans().len(), 2);
    assert!(catalog.plan("pro").is_some());
    assert_eq!(catalog.trial().unwrap().fallback(), Some("free"));
    assert!(Arc::ptr_eq(&catalog, &store.catalog()));

    let john = store.user("john").await.unwrap().unwrap();
    assert_eq!(john.name.as_deref(), Some("john"));
    assert_eq!(john.plan_name(), Some("free"));
    assert_eq!(john.usage.get("clients", &Action::Create), 2);

    let jane = store.subscriber("jane").unwrap();
    assert_eq!(
        jane.assignment,
        Some(
            Assignment::new("pro")
                .as_trial()
                .joined_at(1_700_000_000_000)
        )
    );
    assert_eq!(jane.usage.count("clients"), Some(7));

    // A `null` record is an unknown user, like one that is not listed.
    assert!(store.user("ghost").await.unwrap().is_none());
    assert!(store.user("nobody").await.unwrap().is_none());
}

#[test]
fn from_values_and_empty_users() {
    let plans: serde_json::Value = serde_json::from_str(PLANS).unwrap();
    let store = MemoryStore::from_values(&plans, &serde_json::json!({})).unwrap();
    assert!(store.is_empty());
    let store = MemoryStore::from_values(&plans, &serde_json::Value::Null).unwrap();
    assert_eq!(store.len(), 0);
    let store = MemoryStore::new(Catalog::from_json(PLANS).unwrap());
    assert!(store.is_empty());
    assert!(store.catalog().plan("free").is_some());
}

#[tokio::test]
async fn user_returns_the_shared_record() {
    let store = store();
    let first = store.user("john").await.unwrap().unwrap();
    let second = store.user("john").await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&first, &second));

    // A change copies the record only because `first` still holds it: `first` keeps what it read.
    store.add_usage("john", "clients", 1);
    let third = store.subscriber("john").unwrap();
    assert!(!Arc::ptr_eq(&first, &third));
    assert_eq!(first.usage.count("clients"), Some(2));
    assert_eq!(third.usage.count("clients"), Some(3));
}

#[test]
fn set_plan_creates_updates_and_removes() {
    let store = store();
    store.set_plan(
        "john",
        Some(Assignment::new("pro").expires_at(1_800_000_000_000)),
    );
    let john = store.subscriber("john").unwrap();
    assert_eq!(john.plan_name(), Some("pro"));
    assert_eq!(
        john.assignment.as_ref().unwrap().expires,
        Some(1_800_000_000_000)
    );
    // Usage is kept across a plan change.
    assert_eq!(john.usage.count("clients"), Some(2));

    store.set_plan("john", None);
    assert_eq!(store.subscriber("john").unwrap().assignment, None);
    assert_eq!(store.len(), 2);

    // Setting a plan creates an unknown user, named by the id.
    store.set_plan("newcomer", Some(Assignment::new("free")));
    assert_eq!(
        *store.subscriber("newcomer").unwrap(),
        Subscriber::new()
            .with_name("newcomer")
            .with_plan(Assignment::new("free"))
    );
    assert_eq!(store.len(), 3);

    // Removing the plan of an unknown user does not create it.
    store.set_plan("stranger", None);
    assert!(store.subscriber("stranger").is_none());
    assert_eq!(store.len(), 3);
}

#[test]
fn usage_set_and_add() {
    let store = store();
    store.set_usage("john", "clients", 10);
    assert_eq!(
        store.subscriber("john").unwrap().usage.count("clients"),
        Some(10)
    );
    assert_eq!(store.add_usage("john", "clients", 5), 15);
    assert_eq!(store.add_usage("john", "clients", -20), 0);
    assert_eq!(store.add_usage("john", "projects", 1), 1);

    // Unknown users are created, without a plan.
    assert_eq!(store.add_usage("visitor", "clients", 2), 2);
    let visitor = store.subscriber("visitor").unwrap();
    assert_eq!(visitor.assignment, None);
    assert_eq!(visitor.name.as_deref(), Some("visitor"));
    store.set_usage("other", "clients", 4);
    assert_eq!(
        store.subscriber("other").unwrap().usage.count("clients"),
        Some(4)
    );

    assert_eq!(store.add_action_usage("john", "tasks", &Action::Show, 3), 3);
    assert_eq!(
        store.add_action_usage("john", "tasks", &Action::Show, -1),
        2
    );
    let john = store.subscriber("john").unwrap();
    let tasks = john.usage.resource("tasks").expect("tasks are recorded");
    assert_eq!(tasks.count(), None);
    assert_eq!(
        tasks.actions().collect::<Vec<_>>(),
        [(&Arc::from("show"), 2)]
    );
}

#[test]
fn insert_remove_and_replace_the_catalog() {
    let store = store();
    let previous = store.insert_user("john", Subscriber::new().with_usage("clients", 1));
    assert_eq!(previous.unwrap().plan_name(), Some("free"));
    assert_eq!(store.subscriber("john").unwrap().plan_name(), None);
    assert!(store.insert_user("amy", Subscriber::new()).is_none());
    assert_eq!(store.len(), 3);

    let removed = store.remove_user("amy").unwrap();
    assert_eq!(*removed, Subscriber::new());
    assert!(store.remove_user("amy").is_none());
    assert_eq!(store.len(), 2);

    let old = store.catalog();
    store.set_catalog(Catalog::from_json(r#"[{"name": "solo", "clients": 1}]"#).unwrap());
    assert!(old.plan("free").is_some());
    assert!(store.catalog().plan("free").is_none());
    assert!(store.catalog().plan("solo").is_some());
}

#[tokio::test]
async fn clones_share_state() {
    let store = store();
    let clone = store.clone();
    clone.set_plan("john", Some(Assignment::new("pro")));
    clone.insert_user("amy", Subscriber::new());
    clone.set_catalog(Catalog::from_json(r#"[{"name": "pro", "clients": 1}]"#).unwrap());
    assert_eq!(store.subscriber("john").unwrap().plan_name(), Some("pro"));
    assert_eq!(store.len(), 3);
    assert!(store.plans().await.unwrap().plan("free").is_none());

    // Through `Arc<dyn PlanStore>` as the layer holds it.
    let shared: Arc<dyn PlanStore> = Arc::new(store.clone());
    clone.remove_user("john");
    assert!(shared.user("john").await.unwrap().is_none());
}

#[test]
fn concurrent_updates_are_not_lost() {
    let store = store();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..500 {
                    store.add_usage("john", "clients", 1);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(
        store.subscriber("john").unwrap().usage.count("clients"),
        Some(2 + 8 * 500)
    );
}

#[test]
fn many_users_changed_from_many_threads_are_all_kept() {
    let store = MemoryStore::new(Catalog::from_json(PLANS).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let id = format!("t{t}-u{i}");
                    store.insert_user(id.as_str(), Subscriber::new().with_usage("clients", i));
                    assert_eq!(store.add_usage(&id, "clients", 1), i + 1);
                    if i % 2 == 1 {
                        assert!(store.remove_user(&id).is_some());
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(store.len(), 4 * 250);
    for t in 0..4 {
        for i in 0..500u64 {
            let record = store.subscriber(&format!("t{t}-u{i}"));
            if i % 2 == 1 {
                assert!(record.is_none(), "t{t}-u{i} was removed");
            } else {
                assert_eq!(record.unwrap().usage.count("clients"), Some(i + 1));
            }
        }
    }
    for t in 0..4 {
        for i in (0..500).step_by(2) {
            store.remove_user(&format!("t{t}-u{i}"));
        }
    }
    assert!(store.is_empty());
}

#[test]
fn a_panic_while_updating_does_not_break_the_store() {
    let store = store();
    let clone = store.clone();
    let result = std::thread::spawn(move || {
        clone.update_user("john", |_| panic!("bug in an update"));
    })
    .join();
    assert!(result.is_err());
    // The lock was poisoned; the store recovers instead of panicking.
    assert_eq!(store.subscriber("john").unwrap().plan_name(), Some("free"));
    assert_eq!(store.add_usage("john", "clients", 1), 3);
    assert_eq!(store.len(), 2);
}

#[test]
fn update_user_returns_the_closure_result() {
    let store = store();
    let clients = store.update_user("john", |john| {
        john.assignment = Some(Assignment::new("pro"));
        john.usage.add("clients", 1)
    });
    assert_eq!(clients, 3);
    assert_eq!(store.subscriber("john").unwrap().plan_name(), Some("pro"));
}

// --- load errors ------------------------------------------------------------------------------

#[test]
fn a_malformed_catalog_is_a_catalog_error() {
    let error = MemoryStore::from_json(r#"[{"name": "free", "clients": -1}]"#, "{}").unwrap_err();
    let LoadError::Catalog(inner) = &error else {
        panic!("expected a catalog error, got {error:?}");
    };
    assert_eq!(inner.path(), "plans[0].clients");
    assert!(error
        .to_string()
        .starts_with("catalog: plans[0].clients: expected a non-negative"));
}

#[test]
fn a_malformed_user_names_the_user_and_the_path() {
    let error = MemoryStore::from_json(
        PLANS,
        r#"{"john": {"plan": {"name": "free", "expire": "soon"}}}"#,
    )
    .unwrap_err();
    let LoadError::User { id, error: inner } = &error else {
        panic!("expected a user error, got {error:?}");
    };
    assert_eq!(&**id, "john");
    assert_eq!(inner.path(), "plan.expire");
    assert_eq!(
        error.to_string(),
        r#"users["john"].plan.expire: expected milliseconds since the Unix epoch (a non-negative integer), found the string "soon""#
    );

    let error = MemoryStore::from_json(PLANS, r#"{"john": 7}"#).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"users["john"]: expected a subscriber record (an object), found `7`"#
    );

    let error = MemoryStore::from_json(
        PLANS,
        r#"{"jane": {"plan": "free", "usage": {"clients": -2}}}"#,
    )
    .unwrap_err();
    assert!(error
        .to_string()
        .starts_with(r#"users["jane"].usage.clients: expected a count"#));
}

#[test]
fn users_must_be_an_object() {
    let error = MemoryStore::from_json(PLANS, r#"[{"name": "john"}]"#).unwrap_err();
    assert!(matches!(
        error,
        LoadError::UsersNotObject { found: "an array" }
    ));
    assert_eq!(
        error.to_string(),
        "users: expected an object of user id to record, found an array"
    );
}

#[test]
fn invalid_json_names_the_document() {
    let error = MemoryStore::from_json("{", "{}").unwrap_err();
    assert!(matches!(error, LoadError::CatalogJson(_)));
    let error = MemoryStore::from_json(PLANS, "{").unwrap_err();
    assert!(matches!(error, LoadError::UsersJson(_)));
    assert!(error.to_string().starts_with("users: invalid JSON: "));
    assert!(std::error::Error::source(&error).is_some());
}

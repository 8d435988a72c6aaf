//! The Postgres plan store: the catalog and the records round-trip through the tables with every
//! part the JSON forms have; bad JSON is refused with the path to the bad value and changes
//! nothing; writes notify the instances that listen, whoever makes them.

use std::time::Duration;

use serde_json::json;
use tower_plans::postgres::driver as sqlx;
use tower_plans::postgres::{Error, PostgresStore};
use tower_plans::store::LoadError;
use tower_plans::{Action, Catalog, MemoryStore, PlanStore, Subscriber};

use crate::common::*;

/// A catalog with every part: a trial with a fallback, a custom action, limits in each form,
/// periods, credit pools, add-ons with limits and pools, and meters.
const FULL: &str = r#"{
    "trial": {"duration": 14, "fallback": "free"},
    "actions": ["archive"],
    "meters": {
        "images": {"create": {"cost": 5, "credits": "ai"}},
        "chat": {"create": {"credits": "ai", "report": true, "estimate": 200}},
        "reports": {"archive": {"cost": 2}}
    },
    "plans": [
        {"name": "free", "limits": {"clients": 3, "projects": {"create": 1, "destroy": 0},
                                    "reports": {"create": {"max": 2, "per": "month"}},
                                    "notes": null},
         "credits": {"ai": {"max": 100, "per": "month"}}},
        {"name": "pro", "clients": 30, "reports": {"archive": 10}, "credits": {"ai": null}},
        {"name": "team"}
    ],
    "addons": [
        {"name": "more-clients", "limits": {"clients": 10}},
        {"name": "more-ai", "limits": {}, "credits": {"ai": 500}}
    ]
}"#;

/// A record with every part: a trial plan, a cycle anchor, usage in each form, add-ons and
/// grants.
const RECORD: &str = r#"{
    "name": "John",
    "plan": {"name": "pro", "trial": true, "join": 1700000000000, "expire": 1701000000000},
    "cycle_anchor": 1700000000000,
    "usage": {"clients": 3, "tasks": {"show": 40, "create": 2}, "notes": {},
              "big": 18446744073709551615},
    "addons": [
        {"name": "more-clients", "quantity": 2, "starts": 1600000000000},
        {"name": "more-ai", "expires": 1900000000000}
    ],
    "grants": [
        {"id": "g1", "credits": "ai", "amount": 500, "expires": 1900000000000},
        {"id": "g2", "credits": "ai", "amount": 50}
    ]
}"#;

#[tokio::test]
async fn postgres_the_catalog_round_trips_with_every_part() {
    let store = fresh().await;
    // A fresh database has an empty catalog.
    assert_eq!(store.plans().await.unwrap().plans().count(), 0);
    store.set_catalog_json(FULL).await.unwrap();
    let read = store.plans().await.unwrap();
    assert_eq!(*read, Catalog::from_json(FULL).unwrap());
    // The bare-array form.
    store
        .set_catalog_json(r#"[{"name": "solo", "clients": 1}]"#)
        .await
        .unwrap();
    let read = store.plans().await.unwrap();
    assert_eq!(
        *read,
        Catalog::from_json(r#"[{"name": "solo", "clients": 1}]"#).unwrap()
    );
    assert!(read.trial().is_none());
}

#[tokio::test]
async fn postgres_a_record_round_trips_with_every_part() {
    let store = fresh().await;
    store.set_catalog_json(FULL).await.unwrap();
    assert!(store.user("john").await.unwrap().is_none());
    store.set_user_json("john", RECORD).await.unwrap();
    let read = store
        .user("john")
        .await
        .unwrap()
        .expect("john has a record");
    assert_eq!(*read, Subscriber::from_json(RECORD).unwrap());
    assert_eq!(read.usage.count("big"), Some(u64::MAX));
    assert!(read.usage.resource("notes").expect("named").is_per_action());
    // A record with mixed counts (as counted usage writes them) keeps both.
    let mut mixed = Subscriber::from_json(r#"{"plan": "free", "usage": {"projects": 5}}"#).unwrap();
    mixed.usage.set_action("projects", &Action::Show, 6);
    store.put_user("mia", &mixed).await.unwrap();
    assert_eq!(*store.user("mia").await.unwrap().unwrap(), mixed);
    // Removing: by null, and by name.
    store.set_user_json("john", "null").await.unwrap();
    assert!(store.user("john").await.unwrap().is_none());
    store.remove_user("mia").await.unwrap();
    assert!(store.user("mia").await.unwrap().is_none());
}

#[tokio::test]
async fn postgres_load_json_reads_as_the_memory_store_does() {
    let store = fresh().await;
    let users = json!({"john": serde_json::from_str::<serde_json::Value>(RECORD).unwrap(),
                       "ann": {"plan": "free", "clients": 2}})
    .to_string();
    store.load_json(FULL, &users).await.unwrap();
    let memory = MemoryStore::from_json(FULL, &users).unwrap();
    assert_eq!(
        *store.plans().await.unwrap(),
        *memory.plans().await.unwrap()
    );
    for id in ["john", "ann", "nobody"] {
        assert_eq!(
            store.user(id).await.unwrap(),
            memory.user(id).await.unwrap(),
            "{id}"
        );
    }
}

#[tokio::test]
async fn postgres_bad_json_names_what_is_wrong_and_writes_nothing() {
    let store = fresh().await;
    store.set_catalog_json(FULL).await.unwrap();
    store
        .set_user_json("ann", r#"{"plan": "free"}"#)
        .await
        .unwrap();

    let error = store
        .set_catalog_json(r#"[{"name": "free", "clients": -1}]"#)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Load(LoadError::Catalog(_))),
        "{error:?}"
    );
    assert!(error.to_string().contains("plans[0].clients"), "{error}");
    let error = store.set_catalog_json("{").await.unwrap_err();
    assert!(
        matches!(error, Error::Load(LoadError::CatalogJson(_))),
        "{error:?}"
    );

    let error = store
        .set_user_json("ann", r#"{"plan": {"name": "pro", "trial": true}}"#)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Load(LoadError::User { .. })),
        "{error:?}"
    );
    let error = store
        .load_json(
            FULL,
            r#"{"bob": {"plan": "free", "addons": [{"name": "nope"}]}}"#,
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("nope"), "{error}");
    let error = store.load_json(FULL, "[]").await.unwrap_err();
    assert!(
        matches!(error, Error::Load(LoadError::UsersNotObject { .. })),
        "{error:?}"
    );
    // An instant past i64::MAX milliseconds does not fit its column.
    let error = store
        .set_user_json(
            "ann",
            r#"{"plan": {"name": "free", "expire": 18446744073709551615}}"#,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::OutOfRange { .. }), "{error:?}");

    // Nothing changed.
    assert_eq!(
        *store.plans().await.unwrap(),
        Catalog::from_json(FULL).unwrap()
    );
    assert_eq!(
        store.user("ann").await.unwrap().unwrap().plan_name(),
        Some("free")
    );
    assert!(store.user("bob").await.unwrap().is_none());
}

#[tokio::test]
async fn postgres_bad_rows_written_by_hand_are_errors_never_panics() {
    let store = fresh().await;
    store.set_catalog_json(FULL).await.unwrap();
    sqlx::query("UPDATE tower_plans.plan_limits SET limits = '\"lots\"' WHERE plan = 'free' AND resource = 'clients'")
        .execute(store.pool())
        .await
        .unwrap();
    let error = store.plans().await.unwrap_err();
    assert!(error.to_string().contains("clients"), "{error}");
}

#[tokio::test]
async fn postgres_a_second_store_on_the_same_database_migrates_nothing_twice() {
    let url = PostgresServer::shared().database();
    let (a, b) = tokio::join!(PostgresStore::connect(&url), PostgresStore::connect(&url));
    let (a, _b) = (a.unwrap(), b.unwrap());
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM tower_plans.schema_migrations ORDER BY version")
            .fetch_all(a.pool())
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 3]);
    // A database migrated further than this crate knows is refused.
    sqlx::query(
        "INSERT INTO tower_plans.schema_migrations (version, description) VALUES (99, 'later')",
    )
    .execute(a.pool())
    .await
    .unwrap();
    let error = PostgresStore::connect(&url).await.unwrap_err();
    assert!(
        matches!(error, Error::NewerSchema { found: 99, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn postgres_writes_notify_every_listening_instance_whoever_makes_them() {
    let url = PostgresServer::shared().database();
    let a = Instance::cached(&url).await;
    let b = Instance::cached(&url).await;
    a.store
        .load_json(CATALOG, r#"{"ann": {"plan": "free"}}"#)
        .await
        .unwrap();
    for instance in [&a, &b] {
        assert_eq!(
            instance.send(http::Method::GET, "/tasks", "ann").await.1,
            "free usage=0"
        );
    }
    // The application's own SQL, behind both instances' caches: the trigger notifies.
    sqlx::query("UPDATE tower_plans.subscribers SET plan = 'pro' WHERE id = 'ann'")
        .execute(a.store.pool())
        .await
        .unwrap();
    for (n, instance) in [&a, &b].into_iter().enumerate() {
        let seen = eventually(Duration::from_secs(1), || async {
            instance.send(http::Method::GET, "/tasks", "ann").await.1 == "pro usage=0"
        })
        .await;
        assert!(seen.is_some(), "instance {n} kept its cached record");
    }
}

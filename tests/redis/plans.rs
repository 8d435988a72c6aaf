//! The plan store over Redis keys: reading the JSON formats, the writers that check them, and
//! malformed data in Redis answered as a store failure whose text never reaches the client.

use std::time::Duration;

use http::{Method, StatusCode};
use tower_plans::redis::driver as redis;
use tower_plans::redis::Error;
use tower_plans::store::LoadError;
use tower_plans::{PlanLimitLayer, PlanStore, UserCache};

use crate::common::*;

#[tokio::test]
async fn redis_plan_store_reads_the_catalog_and_records_it_was_loaded_with() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    let plans = conn.plan_store();
    assert!(plans.plans().await.is_err(), "no catalog yet");
    plans
        .load_json(
            CATALOG,
            r#"{"ann": {"plan": "free", "usage": {"clients": 2}}, "bob": {"name": "bob", "plan": {"name": "pro", "trial": true, "join": 1700000000000}}, "cid": null}"#,
        )
        .await
        .unwrap();
    let catalog = plans.plans().await.unwrap();
    assert!(catalog.plan("free").is_some() && catalog.plan("pro").is_some());
    let ann = plans.user("ann").await.unwrap().expect("ann");
    assert_eq!(ann.plan_name(), Some("free"));
    assert_eq!(ann.usage.count("clients"), Some(2));
    let bob = plans.user("bob").await.unwrap().expect("bob");
    assert_eq!(bob.plan_name(), Some("pro"));
    assert!(plans.user("cid").await.unwrap().is_none());

    plans
        .set_user_json("cid", r#"{"plan": "pro"}"#)
        .await
        .unwrap();
    assert_eq!(
        plans.user("cid").await.unwrap().unwrap().plan_name(),
        Some("pro")
    );
    plans.set_user_json("cid", "null").await.unwrap();
    assert!(plans.user("cid").await.unwrap().is_none());
    plans
        .set_user_json("cid", r#"{"plan": "pro"}"#)
        .await
        .unwrap();
    plans.remove_user("cid").await.unwrap();
    assert!(plans.user("cid").await.unwrap().is_none());
}

#[tokio::test]
async fn redis_plan_store_writers_refuse_malformed_json_and_write_nothing() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    let plans = conn.plan_store();
    plans.set_catalog_json(CATALOG).await.unwrap();

    let error = plans
        .set_catalog_json(r#"[{"name": "free", "clients": -1}]"#)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Load(LoadError::Catalog(_))),
        "{error}"
    );
    assert!(error.to_string().contains("plans[0].clients"), "{error}");
    assert!(
        plans.plans().await.unwrap().plan("pro").is_some(),
        "unchanged"
    );

    let error = plans
        .set_user_json("ann", r#"{"plan": "free", "clients": "3"}"#)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Load(LoadError::User { .. })),
        "{error}"
    );
    assert!(
        error.to_string().contains(r#"users["ann"].clients"#),
        "{error}"
    );
    let error = plans.set_user_json("ann", "{").await.unwrap_err();
    assert!(
        matches!(error, Error::Load(LoadError::UsersJson(_))),
        "{error}"
    );
    assert!(plans.user("ann").await.unwrap().is_none());

    let error = plans
        .load_json(CATALOG, r#"{"ann": {"plan": "free"}, "bob": {"plan": 7}}"#)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains(r#"users["bob"].plan"#),
        "{error}"
    );
    assert!(
        plans.user("ann").await.unwrap().is_none(),
        "nothing written"
    );
    let error = plans.load_json(CATALOG, "[]").await.unwrap_err();
    assert!(
        matches!(error, Error::Load(LoadError::UsersNotObject { .. })),
        "{error}"
    );
}

/// Text planted in Redis that must never reach a client.
const PLANTED: &str = "secret-internal-detail";

#[tokio::test]
async fn redis_malformed_json_in_redis_is_a_store_failure_never_shown_to_the_client() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    conn.plan_store().set_catalog_json(CATALOG).await.unwrap();
    let mut manager = conn.manager().expect("one redis-server").clone();
    let records = [
        (
            "ann",
            format!(r#"{{"plan": "free", "usage": {{"clients": "{PLANTED}"}}}}"#),
        ),
        ("bob", format!("{{not json {PLANTED}")),
    ];
    for (id, json) in &records {
        let _: () = redis::cmd("SET")
            .arg(format!("test:{{{id}}}:user"))
            .arg(json)
            .query_async(&mut manager)
            .await
            .unwrap();
    }
    let closed = builder(&conn).build().unwrap();
    let open = builder(&conn).fail_open(true).build().unwrap();
    for (id, _) in &records {
        let (status, body) = send(&closed, Method::POST, "/clients", id).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{id}");
        assert_eq!(body, r#"{"reason":"plan_store_unavailable"}"#);
        let (status, body) = send(&open, Method::POST, "/clients", id).await;
        assert_eq!((status, body.as_str()), (StatusCode::CREATED, "unchecked"));
    }

    // A malformed catalog: the same.
    let _: () = redis::cmd("SET")
        .arg("test:catalog")
        .arg(format!(r#"[{{"name": "{PLANTED}", "clients": "x"}}]"#))
        .query_async(&mut manager)
        .await
        .unwrap();
    let fresh = builder(&conn).build().unwrap();
    let (status, body) = send(&fresh, Method::POST, "/clients", "ann").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!body.contains(PLANTED));
}

#[tokio::test]
async fn redis_plan_store_serves_an_uncounted_layer_with_and_without_a_user_cache() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    conn.plan_store()
        .load_json(
            CATALOG,
            r#"{"ann": {"plan": "free", "usage": {"clients": 5}}}"#,
        )
        .await
        .unwrap();
    for cached in [false, true] {
        let mut builder = PlanLimitLayer::builder(conn.plan_store());
        if cached {
            builder = builder.user_cache(UserCache::time_to_live(Duration::from_secs(60), 10));
        }
        let layer = builder.build().unwrap();
        assert_eq!(
            send(&layer, Method::GET, "/clients", "ann").await,
            (StatusCode::OK, "free usage=5".to_owned())
        );
        let (status, body) = send(&layer, Method::POST, "/clients", "ann").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains(r#""maximum":5,"usage":5"#), "{body}");
    }
}

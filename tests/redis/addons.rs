//! Add-on grants in subscriber records kept in Redis: read by the plan store, counted against the
//! combined limit in Redis, and checked against the catalog by `load_json`.

use http::{Method, StatusCode};
use tower_plans::redis::Error;
use tower_plans::store::LoadError;
use tower_plans::PlanStore;

use crate::common::*;

/// Free keeps 5 clients; the pack adds 10.
const PLANS: &str = r#"{
    "plans": [{"name": "free", "limits": {"clients": 5}}],
    "addons": [{"name": "more-clients", "limits": {"clients": 10}}]
}"#;

/// The body of free's denial at `maximum`.
fn denied(maximum: u64, usage: u64) -> String {
    format!(
        r#"{{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":{maximum},"usage":{usage}}}"#
    )
}

#[tokio::test]
async fn redis_records_with_addons_raise_the_counted_limit() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    let plans = conn.plan_store();
    plans
        .load_json(
            PLANS,
            r#"{
                "ann": {"plan": "free", "usage": {"clients": 5},
                        "addons": [{"name": "more-clients", "quantity": 2}]},
                "bob": {"plan": "free", "usage": {"clients": 5},
                        "addons": [{"name": "more-clients", "expires": 1600000000000}]},
                "cid": {"plan": "free", "usage": {"clients": 5},
                        "addons": [{"name": "more-clients", "starts": 4102444800000}]}
            }"#,
        )
        .await
        .unwrap();
    let ann = plans.user("ann").await.unwrap().expect("ann");
    assert_eq!(ann.addons.len(), 1);
    assert_eq!(ann.addons[0].quantity, 2);

    let layer = builder(&conn).build().unwrap();
    // ann: 5 + 2 x 10 = 25, counted in Redis from her record's 5.
    for usage in 5..25 {
        assert_eq!(
            send(&layer, Method::POST, "/clients", "ann").await,
            (StatusCode::CREATED, format!("free usage={usage}"))
        );
    }
    assert_eq!(
        send(&layer, Method::POST, "/clients", "ann").await,
        (StatusCode::FORBIDDEN, denied(25, 25))
    );
    // bob's pack expired and cid's has not started: 5.
    for user in ["bob", "cid"] {
        assert_eq!(
            send(&layer, Method::POST, "/clients", user).await,
            (StatusCode::FORBIDDEN, denied(5, 5)),
            "{user}"
        );
    }

    // A record written later with a pack is read as such.
    plans
        .set_user_json(
            "bob",
            r#"{"plan": "free", "usage": {"clients": 5}, "addons": [{"name": "more-clients"}]}"#,
        )
        .await
        .unwrap();
    assert_eq!(
        send(&layer, Method::POST, "/clients", "bob").await,
        (StatusCode::CREATED, "free usage=5".to_owned())
    );
}

#[tokio::test]
async fn redis_load_json_refuses_an_addon_the_catalog_does_not_know() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    let plans = conn.plan_store();
    let error = plans
        .load_json(
            PLANS,
            r#"{"ann": {"plan": "free", "addons": [{"name": "more-clients"}, {"name": "less-clients"}]}}"#,
        )
        .await
        .unwrap_err();
    let Error::Load(LoadError::User { id, error }) = &error else {
        panic!("expected a user error, got {error}");
    };
    assert_eq!((&**id, error.path()), ("ann", "addons[1].name"));
    assert!(plans.plans().await.is_err(), "nothing was written");

    // A malformed grant is refused by the record's own check.
    let error = plans
        .load_json(
            PLANS,
            r#"{"ann": {"plan": "free", "addons": [{"name": "more-clients", "quantity": -2}]}}"#,
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("addons[0].quantity"), "{error}");
}

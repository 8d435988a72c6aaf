//! Add-ons through the layer: counted usage reserves against the combined limit (also under
//! concurrency), the clock is read only when a grant's bounds matter, a resource only an add-on
//! names is governed, and granting through the store is seen once the user's cached record is
//! invalidated, while a cached grant still ends on time.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tower_plans::subscriber::AddonGrant;
use tower_plans::{MemoryStore, PlanLimitLayer, PlanLimitLayerBuilder, UserCache};

const DAY: u64 = 86_400_000;

/// free keeps 3 clients and 1 project; add-ons: 10 more clients, 2 more projects, and 2
/// invoices (a resource no plan names).
const PLANS: &str = r#"{
    "plans": [{"name": "free", "limits": {"clients": 3, "projects": 1}}],
    "addons": [
        {"name": "more-clients", "limits": {"clients": 10}},
        {"name": "more-projects", "limits": {"projects": 2}},
        {"name": "invoices", "limits": {"invoices": {"create": 2}}}
    ]
}"#;

/// A store where john is on free with `clients` clients and the grants in `addons` (JSON).
fn store_with(clients: u64, addons: &str) -> MemoryStore {
    let users = format!(
        r#"{{"john": {{"name": "john", "plan": "free", "usage": {{"clients": {clients}}},
                     "addons": {addons}}}}}"#
    );
    MemoryStore::from_json(PLANS, &users).expect("the test store loads")
}

fn layer(store: &MemoryStore) -> PlanLimitLayerBuilder {
    PlanLimitLayer::builder(store.clone())
        .base("/api")
        .clock(|| NOW)
}

fn create(resource: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    request(Method::POST, &format!("/api/{resource}"), Some("john"))
}

async fn json_body<B>(response: http::Response<B>) -> Value
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    serde_json::from_str(&text(response).await).expect("a JSON body")
}

fn clients_denied(maximum: u64) -> Value {
    json!({"reason": "subscription", "plan": "free", "item": "clients", "action": "create",
           "maximum": maximum, "usage": maximum})
}

#[tokio::test]
async fn counted_usage_reserves_against_the_combined_limit() {
    let store = store_with(3, r#"[{"name": "more-clients"}]"#);
    let layer = layer(&store).count_usage(store.clone()).build().unwrap();
    // free allows 3: john, at 3, creates 10 more with the pack.
    for created in 3..13 {
        let response = send(&layer, create("clients")).await;
        assert_eq!(response.status(), StatusCode::OK, "at {created}");
        assert_eq!(
            text(response).await,
            format!(
                "free clients create usage={created} remaining=Some({})",
                13 - created
            )
        );
    }
    assert_eq!(
        store.subscriber("john").unwrap().usage.count("clients"),
        Some(13)
    );
    let response = send(&layer, create("clients")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_body(response).await, clients_denied(13));
    assert_eq!(
        store.subscriber("john").unwrap().usage.count("clients"),
        Some(13)
    );

    // The pack is revoked: back to 3, and the 13 clients are over it.
    store.revoke_addon("john", "more-clients");
    let response = send(&layer, create("clients")).await;
    assert_eq!(
        json_body(response).await,
        json!({"reason": "subscription", "plan": "free",
        "item": "clients", "action": "create", "maximum": 3, "usage": 13})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_one_below_the_combined_limit_let_exactly_one_through() {
    let store = store_with(22, r#"[{"name": "more-clients", "quantity": 2}]"#);
    let layer = layer(&store).count_usage(store.clone()).build().unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let layer = layer.clone();
            tokio::spawn(async move { send(&layer, create("clients")).await.status() })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => allowed += 1,
            StatusCode::FORBIDDEN => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(allowed, 1);
    assert_eq!(
        store.subscriber("john").unwrap().usage.count("clients"),
        Some(23)
    );
}

/// A layer whose clock counts its reads.
fn counting_clock(store: &MemoryStore, reads: &Arc<AtomicUsize>) -> PlanLimitLayer {
    let reads = Arc::clone(reads);
    PlanLimitLayer::builder(store.clone())
        .base("/api")
        .clock(move || {
            reads.fetch_add(1, Ordering::SeqCst);
            NOW
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_clock_is_read_only_when_a_grant_could_change_the_limit() {
    let timed = format!(
        r#"[{{"name": "more-projects", "expires": {}}},
            {{"name": "more-clients", "starts": {}, "expires": {}}},
            {{"name": "more-clients", "expires": {}}}]"#,
        NOW + DAY,
        NOW - DAY,
        NOW + DAY,
        NOW + DAY
    );
    for (addons, resource, reads_per_request, status) in [
        // No bounds: no clock.
        (
            r#"[{"name": "more-clients"}]"#.to_owned(),
            "clients",
            0,
            200,
        ),
        // Bounds on a grant whose add-on does not name the resource: no clock.
        (
            format!(r#"[{{"name": "more-projects", "expires": {}}}]"#, NOW - 1),
            "clients",
            0,
            403,
        ),
        // Several bounded grants that name it: one read.
        (timed.clone(), "clients", 1, 200),
        (timed, "projects", 1, 200),
    ] {
        let store = store_with(5, &addons);
        store.set_usage("john", "projects", 2);
        let reads = Arc::new(AtomicUsize::new(0));
        let layer = counting_clock(&store, &reads);
        for round in 1..=3 {
            let response = send(&layer, create(resource)).await;
            assert_eq!(response.status().as_u16(), status, "{addons} {resource}");
            assert_eq!(
                reads.load(Ordering::SeqCst),
                round * reads_per_request,
                "{addons} on {resource}"
            );
        }
    }
}

#[tokio::test]
async fn a_resource_only_an_addon_names_is_governed() {
    let store = store_with(0, r#"[{"name": "invoices"}]"#);
    store.set_plan("john", None);
    let layer = layer(&store).count_usage(store.clone()).build().unwrap();
    // Without a user: 401, so the path is governed.
    let response = send(&layer, request(Method::POST, "/api/invoices", None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // john has no plan: the add-on alone lets him create 2, named in the decision.
    for usage in 0..2 {
        let response = send(&layer, create("invoices")).await;
        assert_eq!(
            text(response).await,
            format!(
                "invoices invoices create usage={usage} remaining=Some({})",
                2 - usage
            )
        );
    }
    let response = send(&layer, create("invoices")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        json_body(response).await,
        json!({"reason": "subscription", "plan": "invoices", "item": "invoices",
               "action": "create", "maximum": 2, "usage": 2})
    );
    // What no add-on names is refused as having no plan.
    let response = send(&layer, create("clients")).await;
    assert_eq!(
        json_body(response).await,
        json!({"reason": "subscription", "plan": null, "item": "clients", "action": "create"})
    );
}

#[tokio::test]
async fn a_granted_addon_is_seen_once_the_cached_user_is_invalidated() {
    let store = store_with(3, "[]");
    let layer = layer(&store)
        .user_cache(UserCache::time_to_live(Duration::from_secs(3600), 100))
        .build()
        .unwrap();
    let response = send(&layer, create("clients")).await;
    assert_eq!(json_body(response).await, clients_denied(3));

    store
        .grant_addon("john", AddonGrant::new("more-clients"))
        .unwrap();
    // The cached record still has no add-on ...
    let response = send(&layer, create("clients")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // ... until the application says the user changed.
    layer.invalidator().user("john");
    let response = send(&layer, create("clients")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        text(response).await,
        "free clients create usage=3 remaining=Some(10)"
    );
}

#[tokio::test]
async fn a_cached_grant_ends_on_time_without_an_invalidation() {
    let now = Arc::new(AtomicU64::new(NOW));
    let store = store_with(
        3,
        &format!(r#"[{{"name": "more-clients", "expires": {}}}]"#, NOW + 1000),
    );
    let clock = Arc::clone(&now);
    let layer = PlanLimitLayer::builder(store.clone())
        .base("/api")
        .clock(move || clock.load(Ordering::SeqCst))
        .grace_period(Duration::from_millis(500))
        .user_cache(UserCache::time_to_live(Duration::from_secs(3600), 100))
        .build()
        .unwrap();
    assert_eq!(
        send(&layer, create("clients")).await.status(),
        StatusCode::OK
    );
    now.store(NOW + 1499, Ordering::SeqCst);
    assert_eq!(
        send(&layer, create("clients")).await.status(),
        StatusCode::OK,
        "within grace"
    );
    now.store(NOW + 1500, Ordering::SeqCst);
    let response = send(&layer, create("clients")).await;
    assert_eq!(json_body(response).await, clients_denied(3));
}

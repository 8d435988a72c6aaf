//! The layer on an axum 0.8 `Router`, with `.layer` and with `.route_layer`, behind an
//! authentication middleware; handlers read the decision from the extensions.

use std::sync::Arc;

use crate::support::*;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware;
use axum::routing::{get, post};
use axum::{Extension, Router};
use http::header::CONTENT_TYPE;
use http::StatusCode;
use tower::ServiceExt;
use tower_plans::{Allowed, PlanLimitLayer};

async fn create_client(Extension(allowed): Extension<Allowed>) -> String {
    format!(
        "{} plan, {} of {} clients left",
        allowed.plan,
        allowed.remaining().unwrap_or(u64::MAX),
        allowed.limit.maximum().unwrap_or(u64::MAX)
    )
}

fn routes() -> Router {
    Router::new()
        .route(
            "/clients",
            post(create_client).get(|| async { "all clients" }),
        )
        .route("/health", get(|| async { "ok" }))
}

fn with_layer(layer: PlanLimitLayer) -> Router {
    routes()
        .layer(layer)
        .layer(middleware::from_fn(authenticate))
}

fn with_route_layer(layer: PlanLimitLayer) -> Router {
    routes()
        .route_layer(layer)
        .layer(middleware::from_fn(authenticate))
}

fn call(method: &str, uri: &str, user: Option<&str>) -> Request {
    let mut request = http::Request::builder().method(method).uri(uri);
    if let Some(user) = user {
        request = request.header("x-user", user);
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn layer_on_a_router_allows_denies_and_passes() {
    let store = CountingStore::new();
    let app = with_layer(builder(&store).build().unwrap());

    let response = app
        .clone()
        .oneshot(call("POST", "/clients", Some("ann")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "free plan, 2 of 3 clients left");

    let response = app
        .clone()
        .oneshot(call("POST", "/clients", Some("bob")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(
        text(response).await,
        r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3}"#
    );

    let response = app
        .clone()
        .oneshot(call("GET", "/clients", Some("bob")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "all clients");

    let response = app
        .clone()
        .oneshot(call("GET", "/health", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let response = app
        .clone()
        .oneshot(call("POST", "/clients", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(text(response).await, r#"{"reason":"unauthenticated"}"#);
}

#[tokio::test]
async fn layer_governs_paths_the_router_does_not_know() {
    let store = CountingStore::new();
    let app = with_layer(builder(&store).build().unwrap());
    // `.layer` runs before routing: a governed path is checked even when it will be a 404.
    let response = app
        .oneshot(call("DELETE", "/clients/7", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn route_layer_keeps_404_as_404() {
    let store = CountingStore::new();
    let app = with_route_layer(builder(&store).build().unwrap());

    let response = app
        .clone()
        .oneshot(call("DELETE", "/clients/7", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(store.plans_calls(), 0);
    assert_eq!(store.user_calls(), 0);

    let response = app
        .clone()
        .oneshot(call("POST", "/clients", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = app
        .clone()
        .oneshot(call("POST", "/clients", Some("ann")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "free plan, 2 of 3 clients left");

    let response = app
        .oneshot(call("POST", "/clients", Some("bob")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
}

/// A router served by a runtime of several worker threads, as `#[tokio::main]` sets up: axum
/// clones the layered route's service for every request, on whichever worker runs it. Every
/// request is governed alike, and once the router and the runtime are gone, nothing the
/// workers kept holds on to the layer (or its store).
#[test]
fn served_by_worker_threads_the_router_governs_and_lets_its_layer_go() {
    let store = CountingStore::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = with_layer(builder(&store).build().unwrap());
    let statuses = runtime.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let app = app.clone();
                let user = if i % 2 == 0 { "ann" } else { "bob" };
                tokio::spawn(async move {
                    app.oneshot(call("POST", "/clients", Some(user)))
                        .await
                        .unwrap()
                        .status()
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        statuses
    });
    for (i, status) in statuses.into_iter().enumerate() {
        let expected = if i % 2 == 0 {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, expected, "request {i}");
    }
    drop(app);
    // Dropping the runtime joins its worker threads.
    drop(runtime);
    assert_eq!(
        Arc::strong_count(&store),
        1,
        "something the workers kept still holds the layer"
    );
}

//! The layer in a plain `tower::ServiceBuilder` stack over `service_fn`: decisions, identity and
//! the exact rejection responses.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_plans::{
    decision::PlanState, Action, Denial, PlanLimitLayer, Rejection, RequestHead, UserCache, UserId,
};

fn layer(store: &Arc<CountingStore>) -> PlanLimitLayer {
    builder(store).build().unwrap()
}

#[tokio::test]
async fn allowed_request_reaches_the_handler_with_the_decision() {
    let store = CountingStore::new();
    let response = send(
        &layer(&store),
        request(Method::POST, "/clients", Some("ann")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.body().is_rejection());
    assert_eq!(
        text(response).await,
        "free clients create usage=1 remaining=Some(2)"
    );
}

#[tokio::test]
async fn without_the_allowed_extension_the_request_passes_bare_and_limits_still_hold() {
    let store = CountingStore::new();
    let uncached = builder(&store).allowed_extension(false).build().unwrap();
    let cached = builder(&store)
        .allowed_extension(false)
        .user_cache(UserCache::time_to_live(Duration::from_secs(60), 10))
        .build()
        .unwrap();
    // The cached layer answers the second round from its cache.
    for (layer, round) in [(&uncached, 1), (&cached, 1), (&cached, 2)] {
        let response = send(layer, request(Method::POST, "/clients", Some("ann"))).await;
        assert_eq!(response.status(), StatusCode::OK, "round {round}");
        assert_eq!(text(response).await, "unchecked", "round {round}");
        let response = send(layer, request(Method::POST, "/clients", Some("bob"))).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "round {round}");
        assert!(
            response.extensions().get::<Denial>().is_some(),
            "round {round}"
        );
    }
    assert_eq!(store.user_calls(), 4);
}

#[tokio::test]
async fn limit_reached_is_403_with_the_exact_json_body() {
    let store = CountingStore::new();
    let response = send(
        &layer(&store),
        request(Method::POST, "/clients", Some("bob")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert!(response.body().is_rejection());
    assert_eq!(
        response.extensions().get::<Rejection>(),
        Some(&Rejection::Denied(Denial::LimitReached {
            plan: Arc::from("free"),
            resource: Arc::from("clients"),
            action: Action::Create,
            maximum: 3,
            usage: 3,
            window: None,
            cost: 1,
        }))
    );
    assert_eq!(
        text(response).await,
        r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3}"#
    );
}

#[tokio::test]
async fn the_denial_itself_is_in_the_response_extensions() {
    let store = CountingStore::new();
    let limit = Denial::LimitReached {
        plan: Arc::from("free"),
        resource: Arc::from("clients"),
        action: Action::Create,
        maximum: 3,
        usage: 3,
        window: None,
        cost: 1,
    };
    let response = send(
        &layer(&store),
        request(Method::POST, "/clients", Some("bob")),
    )
    .await;
    assert_eq!(response.extensions().get::<Denial>(), Some(&limit));

    // Whatever the renderer, and not for the other rejections.
    let layer = builder(&store)
        .render_rejection(|rejection: &Rejection| {
            let mut response = Response::new(Full::new(Bytes::from_static(b"no")));
            *response.status_mut() = rejection.status();
            response
        })
        .build()
        .unwrap();
    let response = send(&layer, request(Method::POST, "/clients", Some("bob"))).await;
    assert_eq!(response.extensions().get::<Denial>(), Some(&limit));
    let response = send(&layer, request(Method::POST, "/clients", None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.extensions().get::<Denial>(), None);
    let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.extensions().get::<Denial>(), None);
}

#[tokio::test]
async fn a_user_without_a_plan_is_denied_with_plan_null() {
    let store = CountingStore::new();
    let response = send(
        &layer(&store),
        request(Method::POST, "/clients", Some("cid")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(
        text(response).await,
        r#"{"reason":"subscription","plan":null,"item":"clients","action":"create"}"#
    );
}

#[tokio::test]
async fn an_unknown_user_has_no_plan() {
    let store = CountingStore::new();
    let response = send(
        &layer(&store),
        request(Method::DELETE, "/projects/9", Some("zed")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        text(response).await,
        r#"{"reason":"subscription","plan":null,"item":"projects","action":"delete"}"#
    );
    assert_eq!(store.user_calls(), 1);
}

#[tokio::test]
async fn an_expired_plan_is_denied_with_its_date() {
    let store = CountingStore::new();
    let response = send(
        &layer(&store),
        request(Method::POST, "/clients", Some("dee")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(
        text(response).await,
        r#"{"reason":"subscription","plan":"pro","expired":true,"date":1600000000000}"#
    );
}

#[tokio::test]
async fn the_default_plan_applies_to_users_without_one() {
    let store = CountingStore::new();
    let layer = builder(&store).default_plan("free").build().unwrap();
    let mut service =
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(|request: Request<Full<Bytes>>| async move {
                let allowed = request.extensions().get::<tower_plans::Allowed>().cloned();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                    "{:?}",
                    allowed.map(|allowed| (allowed.plan, allowed.state))
                )))))
            });
    let response = service
        .ready()
        .await
        .unwrap()
        .call(request(Method::POST, "/clients", Some("cid")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        text(response).await,
        format!("{:?}", Some((Arc::<str>::from("free"), PlanState::Default)))
    );
}

#[tokio::test]
async fn a_governed_request_without_a_user_is_401() {
    let store = CountingStore::new();
    let response = send(&layer(&store), request(Method::POST, "/clients", None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(
        response.extensions().get::<Rejection>(),
        Some(&Rejection::Unauthenticated)
    );
    assert_eq!(text(response).await, r#"{"reason":"unauthenticated"}"#);
    assert_eq!(store.user_calls(), 0);
}

#[tokio::test]
async fn ungoverned_requests_pass_without_a_user() {
    let store = CountingStore::new();
    let layer = layer(&store);
    for (method, uri) in [
        (Method::GET, "/health"),
        (Method::POST, "/sessions"),
        (Method::PUT, "/clients"),
        (Method::POST, "/clients/4"),
    ] {
        let response = send(&layer, request(method, uri, None)).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        assert_eq!(text(response).await, "unchecked");
    }
    assert_eq!(store.user_calls(), 0);
}

#[tokio::test]
async fn actions_without_a_limit_are_allowed_at_any_usage() {
    let store = CountingStore::new();
    let response = send(
        &layer(&store),
        request(Method::GET, "/clients", Some("bob")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        text(response).await,
        "free clients index usage=3 remaining=None"
    );
}

#[tokio::test]
async fn the_query_string_does_not_change_the_route() {
    let store = CountingStore::new();
    let response = send(
        &layer(&store),
        request(Method::POST, "/clients?as=admin&skip=plans", Some("bob")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_custom_extractor_finds_the_user_and_records_it() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .extract_user(|head: &RequestHead<'_>| {
            let account = head.headers().get("x-account")?.to_str().ok()?;
            Some(UserId::from(account))
        })
        .build()
        .unwrap();
    let service =
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(|request: Request<Full<Bytes>>| async move {
                let user = request.extensions().get::<UserId>().cloned();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("{user:?}")))))
            });

    let ann = Request::post("/clients")
        .header("x-account", "ann")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = service.clone().oneshot(ann).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, r#"Some(UserId("ann"))"#);

    let bob = Request::post("/clients")
        .header("x-account", "bob")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = service.clone().oneshot(bob).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // The extractor replaces the extension: a `UserId` extension alone is not enough.
    let response = service
        .oneshot(request(Method::POST, "/clients", Some("ann")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_custom_renderer_replaces_the_body_and_the_rejection_is_still_attached() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .render_rejection(|rejection: &Rejection| {
            let mut response = Response::new(Full::new(Bytes::from_static(b"upgrade to continue")));
            *response.status_mut() = match rejection {
                Rejection::Denied(_) => StatusCode::PAYMENT_REQUIRED,
                other => other.status(),
            };
            response
        })
        .build()
        .unwrap();
    let response = send(&layer, request(Method::POST, "/clients", Some("bob"))).await;
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    assert!(matches!(
        response.extensions().get::<Rejection>(),
        Some(Rejection::Denied(Denial::LimitReached {
            maximum: 3,
            usage: 3,
            ..
        }))
    ));
    assert_eq!(text(response).await, "upgrade to continue");

    let response = send(&layer, request(Method::POST, "/clients", None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.extensions().get::<Rejection>(),
        Some(&Rejection::Unauthenticated)
    );
}

#[tokio::test]
async fn the_base_and_explicit_paths_decide_what_is_governed() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .base("/api")
        .path("clients", "/my/clients")
        .build()
        .unwrap();
    let response = send(&layer, request(Method::POST, "/my/clients", Some("bob"))).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = send(&layer, request(Method::POST, "/api/projects", Some("cid"))).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = send(&layer, request(Method::POST, "/clients", None)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn custom_routes_are_governed() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .route(
            Method::POST,
            "/reports/{id}/export",
            "projects",
            Action::Create,
        )
        .build()
        .unwrap();
    // ann is on free, whose project limit is 1 with no usage recorded: allowed.
    let response = send(
        &layer,
        request(Method::POST, "/reports/7/export", Some("ann")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        text(response).await,
        "free projects create usage=0 remaining=Some(1)"
    );
    let response = send(&layer, request(Method::POST, "/reports/7/export", None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_service_is_cheap_to_clone_and_works_with_service_fn_directly() {
    let store = CountingStore::new();
    let service = tower::Layer::layer(&layer(&store), service_fn(echo));
    let copies: Vec<_> = (0..3).map(|_| service.clone()).collect();
    for copy in copies {
        let response = copy
            .oneshot(request(Method::POST, "/clients", Some("ann")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(store.plans_calls(), 1);
}

#[tokio::test]
async fn the_extractor_runs_only_for_governed_requests_even_before_the_catalog_is_loaded() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let store = CountingStore::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let layer = builder(&store)
        .extract_user(move |head: &RequestHead<'_>| {
            counted.fetch_add(1, Ordering::SeqCst);
            let account = head.headers().get("x-account")?.to_str().ok()?;
            Some(UserId::from(account))
        })
        .build()
        .unwrap();

    // Cold: the catalog is loaded to learn that /health is not governed.
    let response = send(&layer, request(Method::GET, "/health", None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // After an invalidation, a governed request resolves with the reloaded catalog first.
    layer.invalidator().catalog();
    let response = send(&layer, request(Method::POST, "/clients", None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(text(response).await, r#"{"reason":"unauthenticated"}"#);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!((store.plans_calls(), store.user_calls()), (2, 0));
}

//! Caching, counted at the store: one `plans()` call for concurrent cold requests, one `user()`
//! call per user with the user cache, no caching with a zero time-to-live, no store calls for
//! ungoverned requests, and refreshes on Tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use futures::future::join_all;
use http::{Method, StatusCode};
use tokio::time::{advance, Instant};
use tower::{ServiceBuilder, ServiceExt};
use tower_plans::{PlanLimitLayer, UserCache};

/// `count` concurrent requests of `user` creating a client; their statuses.
async fn concurrent(layer: &PlanLimitLayer, user: &str, count: usize) -> Vec<StatusCode> {
    let requests = (0..count).map(|_| send(layer, request(Method::POST, "/clients", Some(user))));
    join_all(requests)
        .await
        .into_iter()
        .map(|response| response.status())
        .collect()
}

/// `count` requests of `user` creating a client, each on a task of its own (on a multi-threaded
/// runtime, in parallel), let go together; their statuses. A request that hangs fails the test.
async fn concurrent_tasks(layer: &PlanLimitLayer, user: &str, count: usize) -> Vec<StatusCode> {
    let start = Arc::new(tokio::sync::Barrier::new(count));
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let layer = layer.clone();
            let start = Arc::clone(&start);
            let user = user.to_owned();
            tokio::spawn(async move {
                start.wait().await;
                send(&layer, request(Method::POST, "/clients", Some(&user)))
                    .await
                    .status()
            })
        })
        .collect();
    let mut statuses = Vec::with_capacity(count);
    for task in tasks {
        let status = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("every request is answered")
            .unwrap();
        statuses.push(status);
    }
    statuses
}

fn user_cache() -> UserCache {
    UserCache::time_to_live(Duration::from_secs(60), 1_000)
}

#[tokio::test(start_paused = true)]
async fn concurrent_cold_requests_make_one_plans_call() {
    let store = CountingStore::new();
    store.set_delay(Duration::from_millis(50));
    let layer = builder(&store).build().unwrap();

    let statuses = concurrent(&layer, "ann", 200).await;

    assert!(statuses.iter().all(|status| *status == StatusCode::OK));
    assert_eq!(store.plans_calls(), 1);
    assert_eq!(store.user_calls(), 200);
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_of_one_user_make_one_user_call_with_the_cache() {
    let store = CountingStore::new();
    store.set_delay(Duration::from_millis(50));
    let layer = builder(&store).user_cache(user_cache()).build().unwrap();

    let statuses = concurrent(&layer, "bob", 200).await;

    assert!(statuses
        .iter()
        .all(|status| *status == StatusCode::FORBIDDEN));
    assert_eq!(store.plans_calls(), 1);
    assert_eq!(store.user_calls(), 1);
}

/// The same on worker threads: the store's delay (on the real clock) only makes the requests
/// overlap; however they do, one `plans()` call serves them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cold_requests_on_worker_threads_make_one_plans_call() {
    let store = CountingStore::new();
    store.set_delay(Duration::from_millis(50));
    let layer = builder(&store).build().unwrap();

    let statuses = concurrent_tasks(&layer, "ann", 200).await;

    assert!(statuses.iter().all(|status| *status == StatusCode::OK));
    assert_eq!(store.plans_calls(), 1);
    assert_eq!(store.user_calls(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_of_one_user_on_worker_threads_make_one_user_call_with_the_cache() {
    let store = CountingStore::new();
    store.set_delay(Duration::from_millis(50));
    let layer = builder(&store).user_cache(user_cache()).build().unwrap();

    let statuses = concurrent_tasks(&layer, "bob", 200).await;

    assert!(statuses
        .iter()
        .all(|status| *status == StatusCode::FORBIDDEN));
    assert_eq!(store.plans_calls(), 1);
    assert_eq!(store.user_calls(), 1);
}

#[tokio::test]
async fn cached_users_are_decided_without_store_calls() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .user_cache(UserCache::time_to_idle(Duration::from_secs(60), 1_000))
        .build()
        .unwrap();
    for _ in 0..5 {
        let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
        assert_eq!(
            text(response).await,
            "free clients create usage=1 remaining=Some(2)"
        );
    }
    assert_eq!(store.plans_calls(), 1);
    assert_eq!(store.user_calls(), 1);
}

#[tokio::test]
async fn unknown_users_are_cached_too() {
    let store = CountingStore::new();
    let layer = builder(&store).user_cache(user_cache()).build().unwrap();
    for _ in 0..3 {
        let response = send(&layer, request(Method::POST, "/clients", Some("zed"))).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(store.user_calls(), 1);
}

#[tokio::test]
async fn without_the_user_cache_every_governed_request_asks_for_the_user() {
    let store = CountingStore::new();
    let layer = builder(&store).build().unwrap();
    for _ in 0..4 {
        send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    }
    assert_eq!(store.plans_calls(), 1);
    assert_eq!(store.user_calls(), 4);
}

#[tokio::test]
async fn a_zero_plans_ttl_fetches_the_catalog_for_every_governed_request() {
    let store = CountingStore::new();
    let layer = builder(&store).plans_ttl(Duration::ZERO).build().unwrap();
    for round in 1..=5 {
        let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(store.plans_calls(), round);
    }
    // With the base `/`, any path could be governed by the catalog the store holds now: a
    // request with a REST method fetches it to find out. Other methods cannot be governed.
    let response = send(&layer, request(Method::GET, "/health", None)).await;
    assert_eq!(text(response).await, "unchecked");
    assert_eq!(store.plans_calls(), 6);
    send(&layer, request(Method::OPTIONS, "/clients", None)).await;
    assert_eq!(store.plans_calls(), 6);

    // A change in the store is seen by the very next request.
    store.set_catalog(STRICTER_CATALOG);
    let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn with_a_zero_plans_ttl_requests_outside_the_base_make_no_store_calls() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .base("/api")
        .plans_ttl(Duration::ZERO)
        .build()
        .unwrap();
    for _ in 0..3 {
        let response = send(&layer, request(Method::GET, "/health", Some("ann"))).await;
        assert_eq!(text(response).await, "unchecked");
    }
    assert_eq!((store.plans_calls(), store.user_calls()), (0, 0));
    for round in 1..=3 {
        let response = send(&layer, request(Method::POST, "/api/clients", Some("ann"))).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!((store.plans_calls(), store.user_calls()), (round, round));
    }
}

#[tokio::test]
async fn ungoverned_requests_make_no_store_calls() {
    let store = CountingStore::new();
    let layer = builder(&store).user_cache(user_cache()).build().unwrap();

    // The first request loads the catalog (it says which paths are governed), but never a user.
    let response = send(&layer, request(Method::GET, "/health", None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!((store.plans_calls(), store.user_calls()), (1, 0));

    for (method, uri) in [
        (Method::GET, "/health"),
        (Method::GET, "/"),
        (Method::POST, "/sessions"),
        (Method::PUT, "/clients"),
        (Method::GET, "/clients/1/notes"),
    ] {
        for _ in 0..20 {
            let response = send(&layer, request(method.clone(), uri, Some("ann"))).await;
            assert_eq!(text(response).await, "unchecked", "{method} {uri}");
        }
    }
    assert_eq!((store.plans_calls(), store.user_calls()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn the_catalog_is_refetched_after_plans_ttl_without_making_a_request_wait() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .plans_ttl(Duration::from_secs(60))
        .user_cache(user_cache())
        .build()
        .unwrap();

    let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(store.plans_calls(), 1);

    store.set_catalog(STRICTER_CATALOG);
    store.set_delay(Duration::from_secs(3));

    advance(Duration::from_secs(59)).await;
    let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    tokio::task::yield_now().await;
    assert_eq!(store.plans_calls(), 1);

    // Past the time-to-live: this request starts a refresh and is decided at once with the
    // loaded catalog; the refresh takes the store's 3 s in the background.
    advance(Duration::from_secs(2)).await;
    let started = Instant::now();
    let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::ZERO);
    tokio::task::yield_now().await;
    assert_eq!(store.plans_calls(), 2);

    // Once the refresh is done, the new catalog decides.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        text(response).await,
        r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":1,"usage":1}"#
    );
    assert_eq!((store.plans_calls(), store.user_calls()), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_failing_refresh_keeps_the_last_good_catalog_until_max_stale() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .plans_ttl(Duration::from_secs(60))
        .max_stale(Duration::from_secs(3600))
        .build()
        .unwrap();
    let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(response.status(), StatusCode::OK);

    store.fail_plans(true);
    advance(Duration::from_secs(61)).await;
    for round in 0..3 {
        let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
        assert_eq!(response.status(), StatusCode::OK, "round {round}");
        assert_eq!(
            text(response).await,
            "free clients create usage=1 remaining=Some(2)"
        );
        // Let the background refresh fail.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The first request started a refresh; the next ones came before the retry interval.
    assert_eq!(store.plans_calls(), 2);

    // Past max_stale the old catalog no longer decides: requests wait for a fetch, which fails.
    advance(Duration::from_secs(3600)).await;
    let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        text(response).await,
        r#"{"reason":"plan_store_unavailable"}"#
    );

    // Once the store is back, the next request loads the catalog again.
    store.fail_plans(false);
    let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_is_retried_after_the_retry_interval() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .plans_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(store.plans_calls(), 1);

    store.fail_plans(true);
    advance(Duration::from_secs(61)).await;
    let refresh = |expected: usize| {
        let layer = layer.clone();
        let store = std::sync::Arc::clone(&store);
        async move {
            let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
            assert_eq!(response.status(), StatusCode::OK);
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert_eq!(store.plans_calls(), expected);
        }
    };
    refresh(2).await;
    // The retry interval is the time-to-live, at most 5 seconds: 5 seconds here.
    for _ in 0..4 {
        advance(Duration::from_secs(1)).await;
        refresh(2).await;
    }
    advance(Duration::from_millis(996)).await;
    refresh(3).await;
    refresh(3).await;
    advance(Duration::from_secs(5)).await;
    store.fail_plans(false);
    refresh(4).await;
    // The refresh succeeded: the catalog is fresh again.
    advance(Duration::from_secs(59)).await;
    refresh(4).await;
    assert_eq!(store.user_calls(), 10);
}

#[tokio::test(start_paused = true)]
async fn the_retry_interval_is_shorter_with_a_short_plans_ttl() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .plans_ttl(Duration::from_secs(2))
        .build()
        .unwrap();
    send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    store.fail_plans(true);
    advance(Duration::from_secs(2)).await;
    send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(store.plans_calls(), 2);
    advance(Duration::from_millis(1_990)).await;
    send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(store.plans_calls(), 2);
    advance(Duration::from_millis(10)).await;
    send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(store.plans_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn loads_that_requests_wait_for_are_not_held_back_by_a_failed_refresh() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .plans_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    store.fail_plans(true);
    advance(Duration::from_secs(61)).await;
    send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(store.plans_calls(), 2);

    // Within the retry interval, an invalidation still makes the next request load and wait.
    store.fail_plans(false);
    store.set_catalog(STRICTER_CATALOG);
    layer.invalidator().catalog();
    let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(store.plans_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn only_one_refresh_runs_at_a_time() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .plans_ttl(Duration::from_secs(60))
        .user_cache(user_cache())
        .build()
        .unwrap();
    send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(store.plans_calls(), 1);

    store.set_delay(Duration::from_secs(5));
    advance(Duration::from_secs(61)).await;
    let statuses = concurrent(&layer, "ann", 50).await;
    assert!(statuses.iter().all(|status| *status == StatusCode::OK));
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(store.plans_calls(), 2);
}

#[tokio::test]
async fn a_shared_layer_shares_its_caches() {
    let store = CountingStore::new();
    let layer = builder(&store).user_cache(user_cache()).build().unwrap();
    let first = ServiceBuilder::new().layer(layer.clone()).service_fn(echo);
    let second = ServiceBuilder::new().layer(layer).service_fn(echo);
    first
        .oneshot(request(Method::POST, "/clients", Some("ann")))
        .await
        .unwrap();
    let response = second
        .oneshot(request(Method::POST, "/clients", Some("ann")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!((store.plans_calls(), store.user_calls()), (1, 1));
}

#[tokio::test]
async fn a_cached_user_with_a_fresh_catalog_is_decided_without_waiting() {
    use futures::FutureExt;

    let store = CountingStore::new();
    let layer = builder(&store).user_cache(user_cache()).build().unwrap();
    send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    send(&layer, request(Method::POST, "/clients", Some("bob"))).await;

    // A slow store no longer matters: both decisions come from the caches, in `call` itself.
    store.set_delay(Duration::from_secs(3600));
    let allowed = send(&layer, request(Method::POST, "/clients", Some("ann")))
        .now_or_never()
        .expect("decided without waiting");
    assert_eq!(allowed.status(), StatusCode::OK);
    let denied = send(&layer, request(Method::POST, "/clients", Some("bob")))
        .now_or_never()
        .expect("decided without waiting");
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);

    // A user who is not cached waits for the store.
    assert!(send(&layer, request(Method::POST, "/clients", Some("cid")))
        .now_or_never()
        .is_none());
    assert_eq!((store.plans_calls(), store.user_calls()), (1, 3));
}

//! Cancelled requests: a request dropped while it makes the store call that others wait for (the
//! catalog load, or a user's fetch with the user cache) leaves them a call of their own; nobody
//! hangs. Every wait is bounded, so that a regression fails instead of hanging.

use std::time::Duration;

use crate::support::*;
use http::{Method, StatusCode};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tower_plans::{PlanLimitLayer, UserCache};

const ANN_ON_PRO: &str = r#"{"name": "ann", "plan": "pro", "usage": {"clients": 1}}"#;

/// Longer than any store delay below; on the paused clock it passes at once when every task is
/// stuck.
const PATIENCE: Duration = Duration::from_secs(60);

fn cached(store: &std::sync::Arc<CountingStore>) -> PlanLimitLayer {
    builder(store)
        .user_cache(UserCache::time_to_live(Duration::from_secs(3600), 100))
        .build()
        .unwrap()
}

/// ann creating a client, on a task of its own: the status.
fn spawn_create(layer: &PlanLimitLayer) -> JoinHandle<StatusCode> {
    let layer = layer.clone();
    tokio::spawn(async move {
        send(&layer, request(Method::POST, "/clients", Some("ann")))
            .await
            .status()
    })
}

/// Lets the spawned tasks run until they wait.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_catalog_load_leaves_its_waiters_a_load_of_their_own() {
    let store = CountingStore::new();
    store.set_delay(Duration::from_millis(50));
    let layer = builder(&store).build().unwrap();

    // The first request starts the cold load; two more wait for it.
    let first = started(Box::pin(send(
        &layer,
        request(Method::POST, "/clients", Some("ann")),
    )));
    assert_eq!(store.plans_calls(), 1);
    let waiting = [spawn_create(&layer), spawn_create(&layer)];
    settle().await;
    assert_eq!(store.plans_calls(), 1);

    // The client of the first request goes away.
    drop(first);
    for task in waiting {
        let status = timeout(PATIENCE, task).await.expect("no hang").unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    // One of them loaded the catalog for both.
    assert_eq!(store.plans_calls(), 2);
    assert_eq!(store.user_calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_user_fetch_leaves_its_waiters_a_fetch_of_their_own() {
    let store = CountingStore::new();
    let layer = cached(&store);
    send(&layer, request(Method::GET, "/clients", Some("bob"))).await;
    assert_eq!((store.plans_calls(), store.user_calls()), (1, 1));

    store.set_delay(Duration::from_millis(50));
    let first = started(Box::pin(send(
        &layer,
        request(Method::POST, "/clients", Some("ann")),
    )));
    assert_eq!(store.user_calls(), 2);
    let waiting = [spawn_create(&layer), spawn_create(&layer)];
    settle().await;
    assert_eq!(store.user_calls(), 2);

    drop(first);
    for task in waiting {
        let status = timeout(PATIENCE, task).await.expect("no hang").unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(store.user_calls(), 3);

    // The record one of them fetched is cached.
    let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(
        text(response).await,
        "free clients create usage=1 remaining=Some(2)"
    );
    assert_eq!(store.user_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_user_fetch_without_waiters_leaves_nothing_behind() {
    let store = CountingStore::new();
    let layer = cached(&store);
    send(&layer, request(Method::GET, "/clients", Some("bob"))).await;

    store.set_delay(Duration::from_millis(50));
    drop(started(Box::pin(send(
        &layer,
        request(Method::POST, "/clients", Some("ann")),
    ))));
    assert_eq!(store.user_calls(), 2);

    // Nothing was cached, and the next request is not stuck behind the dropped one.
    store.set_user("ann", ANN_ON_PRO);
    layer.invalidator().user("ann");
    let response = timeout(
        PATIENCE,
        send(&layer, request(Method::POST, "/clients", Some("ann"))),
    )
    .await
    .expect("no hang");
    assert_eq!(
        text(response).await,
        "pro clients create usage=1 remaining=Some(29)"
    );
    assert_eq!(store.user_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_user_fetch_is_made_again_by_the_next_request() {
    let store = CountingStore::new();
    let layer = cached(&store);
    send(&layer, request(Method::GET, "/clients", Some("bob"))).await;

    store.set_delay(Duration::from_millis(50));
    drop(started(Box::pin(send(
        &layer,
        request(Method::POST, "/clients", Some("ann")),
    ))));
    // No invalidation: the next request does not wait for the dropped call, it makes its own.
    let response = timeout(
        PATIENCE,
        send(&layer, request(Method::POST, "/clients", Some("ann"))),
    )
    .await
    .expect("no hang");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(store.user_calls(), 3);
}

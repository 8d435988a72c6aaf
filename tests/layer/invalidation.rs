//! The invalidation handle: dropping one user, all users, or the catalog makes the next request
//! see the store's current data.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use http::{Method, StatusCode};
use tokio::sync::{oneshot, Notify};
use tower_plans::store::StoreFuture;
use tower_plans::{Catalog, PlanLimitLayer, PlanStore, Subscriber, UserCache};

async fn create_client(layer: &PlanLimitLayer, user: &str) -> (StatusCode, String) {
    let response = send(layer, request(Method::POST, "/clients", Some(user))).await;
    (response.status(), text(response).await)
}

fn cached(store: &std::sync::Arc<CountingStore>) -> PlanLimitLayer {
    builder(store)
        .user_cache(UserCache::time_to_live(Duration::from_secs(3600), 100))
        .build()
        .unwrap()
}

const ANN_ON_PRO: &str = r#"{"name": "ann", "plan": "pro", "usage": {"clients": 1}}"#;

/// [`create_client`] for a request that must not wait for a held store call: it fails the test
/// if not answered in time (the held calls are never timed out by the layer).
async fn create_client_unheld(layer: &PlanLimitLayer, user: &str) -> (StatusCode, String) {
    tokio::time::timeout(Duration::from_secs(30), create_client(layer, user))
        .await
        .expect("answered without waiting for the held store call")
}

/// A layer over `store` with a user cache and a store timeout that never ends a held call.
fn held_layer(store: &Arc<HeldStore>, cache: UserCache) -> PlanLimitLayer {
    PlanLimitLayer::builder(Arc::clone(store))
        .clock(|| NOW)
        .user_cache(cache)
        .store_timeout(Duration::from_secs(24 * 60 * 60))
        .build()
        .unwrap()
}

#[tokio::test]
async fn invalidating_a_user_makes_the_next_request_see_the_new_plan() {
    let store = CountingStore::new();
    let layer = cached(&store);
    let invalidator = layer.invalidator();

    let free = "free clients create usage=1 remaining=Some(2)";
    assert_eq!(
        create_client(&layer, "ann").await,
        (StatusCode::OK, free.to_owned())
    );

    store.set_user("ann", ANN_ON_PRO);
    assert_eq!(create_client(&layer, "ann").await.1, free, "still cached");

    invalidator.user("ann");
    assert_eq!(
        create_client(&layer, "ann").await,
        (
            StatusCode::OK,
            "pro clients create usage=1 remaining=Some(29)".to_owned()
        )
    );
    assert_eq!(store.user_calls(), 2);
}

#[tokio::test]
async fn invalidating_one_user_keeps_the_others_cached() {
    let store = CountingStore::new();
    let layer = cached(&store);
    create_client(&layer, "ann").await;
    create_client(&layer, "bob").await;
    assert_eq!(store.user_calls(), 2);

    layer.invalidator().user("ann");
    create_client(&layer, "ann").await;
    create_client(&layer, "bob").await;
    assert_eq!(store.user_calls(), 3);
}

#[tokio::test]
async fn invalidating_all_users_refetches_every_user() {
    let store = CountingStore::new();
    let layer = cached(&store);
    let invalidator = layer.invalidator();
    assert_eq!(create_client(&layer, "ann").await.0, StatusCode::OK);
    assert_eq!(create_client(&layer, "bob").await.0, StatusCode::FORBIDDEN);

    store.set_user(
        "ann",
        r#"{"name": "ann", "plan": "free", "usage": {"clients": 3}}"#,
    );
    store.set_user(
        "bob",
        r#"{"name": "bob", "plan": "pro", "usage": {"clients": 3}}"#,
    );
    invalidator.clone().all_users();

    assert_eq!(create_client(&layer, "ann").await.0, StatusCode::FORBIDDEN);
    assert_eq!(create_client(&layer, "bob").await.0, StatusCode::OK);
    assert_eq!(store.user_calls(), 4);
}

#[tokio::test]
async fn invalidating_the_catalog_reloads_it_for_the_next_governed_request() {
    let store = CountingStore::new();
    let layer = cached(&store);
    assert_eq!(create_client(&layer, "ann").await.0, StatusCode::OK);

    store.set_catalog(STRICTER_CATALOG);
    assert_eq!(
        create_client(&layer, "ann").await.0,
        StatusCode::OK,
        "still cached"
    );
    assert_eq!(store.plans_calls(), 1);

    layer.invalidator().catalog();
    // A request that no catalog could govern (no route uses OPTIONS) does not reload it.
    send(&layer, request(Method::OPTIONS, "/clients", None)).await;
    assert_eq!(store.plans_calls(), 1);

    assert_eq!(
        create_client(&layer, "ann").await,
        (
            StatusCode::FORBIDDEN,
            r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":1,"usage":1}"#
                .to_owned()
        )
    );
    assert_eq!(store.plans_calls(), 2);
    create_client(&layer, "ann").await;
    assert_eq!(store.plans_calls(), 2);
}

#[tokio::test]
async fn after_invalidating_the_catalog_requests_that_could_be_governed_reload_it() {
    let store = CountingStore::new();
    let layer = builder(&store).base("/api").build().unwrap();
    let get = |uri: &'static str| {
        let layer = layer.clone();
        async move { text(send(&layer, request(Method::GET, uri, Some("ann"))).await).await }
    };
    assert_eq!(get("/api/health").await, "unchecked");
    assert_eq!(store.plans_calls(), 1);

    layer.invalidator().catalog();
    // Outside the base no catalog can govern a path: no reload.
    assert_eq!(get("/health").await, "unchecked");
    assert_eq!(store.plans_calls(), 1);
    // Below the base one could, even if the old catalog does not: the request waits for the
    // reload and is resolved with the new catalog.
    assert_eq!(get("/api/health").await, "unchecked");
    assert_eq!(store.plans_calls(), 2);
    assert_eq!(
        get("/api/clients").await,
        "free clients index usage=1 remaining=None"
    );
    assert_eq!(store.plans_calls(), 2);
}

/// A store whose first `user()` call, once armed, waits until it is released.
struct HeldStore {
    inner: Arc<CountingStore>,
    gate: Mutex<Option<oneshot::Receiver<()>>>,
    entered: Notify,
}

impl PlanStore for HeldStore {
    fn plans<'a>(&'a self) -> StoreFuture<'a, Arc<Catalog>> {
        StoreFuture::new(async move { self.inner.plans().await })
    }

    fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
        StoreFuture::new(async move {
            // Read the record before waiting: the held call returns what the store held then.
            let record = self.inner.user(id).await;
            let gate = self.gate.lock().unwrap().take();
            if let Some(gate) = gate {
                self.entered.notify_one();
                let _ = gate.await;
            }
            record
        })
    }
}

#[tokio::test]
async fn a_request_after_a_user_invalidation_does_not_join_a_fetch_that_began_before_it() {
    let counting = CountingStore::new();
    let (release, gate) = oneshot::channel();
    let store = Arc::new(HeldStore {
        inner: Arc::clone(&counting),
        gate: Mutex::new(None),
        entered: Notify::new(),
    });
    let layer = held_layer(
        &store,
        UserCache::time_to_live(Duration::from_secs(3600), 100),
    );
    // Load the catalog first, so that only the user's record is fetched below.
    assert_eq!(create_client(&layer, "bob").await.0, StatusCode::FORBIDDEN);

    // A request starts fetching ann's record (on free), and is held there.
    *store.gate.lock().unwrap() = Some(gate);
    let before = tokio::spawn({
        let layer = layer.clone();
        async move { create_client(&layer, "ann").await }
    });
    store.entered.notified().await;

    // ann moves to pro and the webhook invalidates her.
    counting.set_user("ann", ANN_ON_PRO);
    layer.invalidator().user("ann");

    // A request that starts now sees pro: it makes its own store call.
    let pro = (
        StatusCode::OK,
        "pro clients create usage=1 remaining=Some(29)".to_owned(),
    );
    assert_eq!(create_client_unheld(&layer, "ann").await, pro);

    // The held request began before the change and decides on what it read.
    release.send(()).unwrap();
    assert_eq!(
        before.await.unwrap(),
        (
            StatusCode::OK,
            "free clients create usage=1 remaining=Some(2)".to_owned()
        )
    );
    // The record it fetched was not cached over the newer one.
    assert_eq!(create_client_unheld(&layer, "ann").await, pro);
    assert_eq!(counting.user_calls(), 3);
}

#[tokio::test]
async fn a_fetch_detached_by_invalidating_all_users_is_not_cached() {
    let counting = CountingStore::new();
    let (release, gate) = oneshot::channel();
    let store = Arc::new(HeldStore {
        inner: Arc::clone(&counting),
        gate: Mutex::new(None),
        entered: Notify::new(),
    });
    let layer = held_layer(
        &store,
        UserCache::time_to_idle(Duration::from_secs(3600), 100),
    );
    assert_eq!(create_client(&layer, "bob").await.0, StatusCode::FORBIDDEN);

    *store.gate.lock().unwrap() = Some(gate);
    let before = tokio::spawn({
        let layer = layer.clone();
        async move { create_client(&layer, "ann").await }
    });
    store.entered.notified().await;
    counting.set_user("ann", ANN_ON_PRO);
    layer.invalidator().all_users();
    release.send(()).unwrap();
    assert_eq!(before.await.unwrap().0, StatusCode::OK);

    // The held fetch finished after the invalidation: the next request fetches again.
    assert_eq!(
        create_client_unheld(&layer, "ann").await.1,
        "pro clients create usage=1 remaining=Some(29)"
    );
    assert_eq!(counting.user_calls(), 3);
}

#[tokio::test]
async fn invalidation_without_a_user_cache_is_harmless() {
    let store = CountingStore::new();
    let layer = builder(&store).build().unwrap();
    let invalidator = layer.invalidator();
    invalidator.user("ann");
    invalidator.all_users();
    assert_eq!(create_client(&layer, "ann").await.0, StatusCode::OK);
    store.set_user("ann", ANN_ON_PRO);
    assert_eq!(
        create_client(&layer, "ann").await.1,
        "pro clients create usage=1 remaining=Some(29)"
    );
}

#[tokio::test]
async fn the_invalidator_can_move_to_another_task() {
    let store = CountingStore::new();
    let layer = cached(&store);
    create_client(&layer, "ann").await;
    store.set_user("ann", ANN_ON_PRO);
    let invalidator = layer.invalidator();
    tokio::spawn(async move { invalidator.user("ann") })
        .await
        .unwrap();
    assert_eq!(
        create_client(&layer, "ann").await.1,
        "pro clients create usage=1 remaining=Some(29)"
    );
}

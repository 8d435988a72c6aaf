//! Requests that could be governed: a resource the store adds to the catalog is enforced as soon
//! as a catalog that holds it is loaded, whatever the old catalog said about its path; requests
//! outside every place a resource could live never touch the store.

use std::time::Duration;

use crate::support::*;
use http::Method;
use tokio::time::advance;
use tower_plans::PlanLimitLayer;

async fn status_and_text(layer: &PlanLimitLayer, method: Method, uri: &str) -> (u16, String) {
    let response = send(layer, request(method, uri, Some("ann"))).await;
    (response.status().as_u16(), text(response).await)
}

async fn create_invoice(layer: &PlanLimitLayer) -> (u16, String) {
    status_and_text(layer, Method::POST, "/invoices").await
}

fn denied() -> (u16, String) {
    (403, NO_INVOICES.to_owned())
}

fn unchecked() -> (u16, String) {
    (200, "unchecked".to_owned())
}

#[tokio::test(start_paused = true)]
async fn past_plans_ttl_a_request_for_a_new_resource_starts_the_refresh() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .plans_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(
        status_and_text(&layer, Method::GET, "/clients").await.0,
        200
    );
    store.set_catalog(INVOICES_CATALOG);

    // Within the time-to-live, the loaded catalog does not know invoices.
    assert_eq!(create_invoice(&layer).await, unchecked());
    assert_eq!(store.plans_calls(), 1);

    // Past it, a request that only the new catalog governs starts the refresh: it is not made to
    // wait, so it passes, and the requests after the refresh are checked.
    advance(Duration::from_secs(61)).await;
    assert_eq!(create_invoice(&layer).await, unchecked());
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(store.plans_calls(), 2);
    for _ in 0..3 {
        assert_eq!(create_invoice(&layer).await, denied());
    }
    assert_eq!(store.plans_calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn hours_of_requests_for_a_new_resource_alone_are_enforced() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .plans_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(
        status_and_text(&layer, Method::GET, "/health").await,
        unchecked()
    );
    store.set_catalog(INVOICES_CATALOG);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        advance(Duration::from_secs(3600)).await;
        outcomes.push(create_invoice(&layer).await.0);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // An hour is past the time-to-live but within the default `max_stale`: the first request
    // starts the refresh and passes; once the refresh is in, the next ones are denied.
    assert_eq!(outcomes, [200, 403, 403]);
}

#[tokio::test]
async fn after_an_invalidation_a_new_resource_waits_for_the_new_catalog() {
    let store = CountingStore::new();
    let layer = builder(&store).build().unwrap();
    assert_eq!(create_invoice(&layer).await, unchecked());
    assert_eq!(store.plans_calls(), 1);

    store.set_catalog(INVOICES_CATALOG);
    layer.invalidator().catalog();
    assert_eq!(create_invoice(&layer).await, denied());
    assert_eq!(store.plans_calls(), 2);
    assert_eq!(create_invoice(&layer).await, denied());
    assert_eq!(store.plans_calls(), 2);
}

#[tokio::test]
async fn with_a_zero_plans_ttl_a_new_resource_is_enforced_at_once() {
    let store = CountingStore::new();
    let layer = builder(&store).plans_ttl(Duration::ZERO).build().unwrap();
    assert_eq!(create_invoice(&layer).await, unchecked());
    store.set_catalog(INVOICES_CATALOG);
    assert_eq!(create_invoice(&layer).await, denied());
    assert_eq!(store.plans_calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn past_max_stale_a_new_resource_waits_for_the_new_catalog() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .plans_ttl(Duration::from_secs(60))
        .max_stale(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(
        status_and_text(&layer, Method::GET, "/clients").await.0,
        200
    );
    store.set_catalog(INVOICES_CATALOG);
    advance(Duration::from_secs(121)).await;
    assert_eq!(create_invoice(&layer).await, denied());
    assert_eq!(store.plans_calls(), 2);
}

/// Resources live below `/api`, clients at `/my/clients`, and one custom route.
fn scoped(store: &std::sync::Arc<CountingStore>) -> PlanLimitLayer {
    builder(store)
        .base("/api")
        .path("clients", "/my/clients")
        .route(
            Method::POST,
            "/reports/{id}/export",
            "projects",
            tower_plans::Action::Create,
        )
        .plans_ttl(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Paths that no catalog can govern under [`scoped`].
const OUTSIDE: &[(Method, &str)] = &[
    (Method::GET, "/health"),
    (Method::POST, "/invoices"),
    (Method::GET, "/my"),
    (Method::DELETE, "/my/clients/5/notes"),
    (Method::GET, "/reports/7/export"),
    (Method::POST, "/reports/7"),
    (Method::OPTIONS, "/api/clients"),
    (Method::GET, "/apiary"),
];

#[tokio::test]
async fn requests_outside_every_scope_pass_before_the_first_load_and_with_the_store_down() {
    let store = CountingStore::new();
    store.fail_plans(true);
    let layer = scoped(&store);
    for (method, uri) in OUTSIDE {
        assert_eq!(
            status_and_text(&layer, method.clone(), uri).await,
            unchecked(),
            "{method} {uri}"
        );
    }
    assert_eq!((store.plans_calls(), store.user_calls()), (0, 0));

    // Anything that could be governed waits for the catalog, and fails closed without it.
    for (method, uri) in [
        (Method::GET, "/api"),
        (Method::GET, "/API/invoices/3/"),
        (Method::POST, "/my/clients"),
        (Method::PUT, "/my/clients/5"),
        (Method::POST, "/reports/7/export"),
    ] {
        assert_eq!(
            status_and_text(&layer, method.clone(), uri).await.0,
            503,
            "{method} {uri}"
        );
    }
    assert_eq!(store.plans_calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn only_requests_that_could_be_governed_start_a_refresh_or_a_reload() {
    let store = CountingStore::new();
    let layer = scoped(&store);
    assert_eq!(
        status_and_text(&layer, Method::GET, "/my/clients").await.0,
        200
    );
    assert_eq!(store.plans_calls(), 1);

    advance(Duration::from_secs(61)).await;
    for (method, uri) in OUTSIDE {
        send(&layer, request(method.clone(), uri, Some("ann"))).await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(store.plans_calls(), 1);
    // Not governed by the loaded catalog, but below the base.
    assert_eq!(
        status_and_text(&layer, Method::GET, "/api/invoices").await,
        unchecked()
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(store.plans_calls(), 2);

    layer.invalidator().catalog();
    for (method, uri) in OUTSIDE {
        send(&layer, request(method.clone(), uri, Some("ann"))).await;
    }
    assert_eq!(store.plans_calls(), 2);
    assert_eq!(
        status_and_text(&layer, Method::GET, "/api/invoices").await,
        unchecked()
    );
    assert_eq!(store.plans_calls(), 3);
    assert_eq!(store.user_calls(), 1);
}

/// Runs `future` on this thread, outside any Tokio runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

#[test]
fn outside_a_tokio_runtime_the_refresh_runs_in_the_request_and_resolves_it() {
    let store = CountingStore::new();
    let layer = builder(&store)
        .plans_ttl(Duration::from_millis(1))
        .build()
        .unwrap();
    assert_eq!(block_on(create_invoice(&layer)), unchecked());
    assert_eq!(store.plans_calls(), 1);

    store.set_catalog(INVOICES_CATALOG);
    // Let the time-to-live pass (the outcome does not depend on how much longer this takes).
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(block_on(create_invoice(&layer)), denied());
    assert_eq!(store.plans_calls(), 2);
}

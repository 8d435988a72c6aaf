//! Stores that answer at once and stores that wait ([`StoreFuture`]): a ready answer decides
//! the request without waiting; a store that waits is queried once per request, whatever the
//! layer does with the futures it does not poll; a store that fails at once fails closed
//! without leaking its error.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::{Method, StatusCode};
use tower_plans::store::StoreFuture;
use tower_plans::{
    subscriber::Assignment, Catalog, MemoryStore, PlanLimitLayer, PlanStore, Subscriber,
};

use crate::support::{request, send, text, CATALOG, SECRET};

/// How [`Answering`] answers `user`.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// At once.
    Ready,
    /// With a future, which finds the record when polled.
    Waits,
    /// At once, with an error.
    Fails,
}

/// A `MemoryStore`'s records, answered as `answer` says, counting the calls and the queries
/// (the futures that were polled).
struct Answering {
    records: MemoryStore,
    answer: Answer,
    calls: AtomicUsize,
    queries: AtomicUsize,
}

impl PlanStore for Answering {
    fn plans(&self) -> StoreFuture<'_, Arc<Catalog>> {
        StoreFuture::ready(Ok(self.records.catalog()))
    }

    fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.answer {
            Answer::Ready => StoreFuture::ready(Ok(self.records.subscriber(id))),
            Answer::Waits => StoreFuture::new(async move {
                self.queries.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                Ok(self.records.subscriber(id))
            }),
            Answer::Fails => StoreFuture::ready(Err(SECRET.into())),
        }
    }
}

/// `ann` with 1 client and `bob` with 3 (the limit), both on free.
fn answering(answer: Answer) -> Arc<Answering> {
    let records = MemoryStore::new(Catalog::from_json(CATALOG).unwrap());
    for (id, clients) in [("ann", 1), ("bob", 3)] {
        records.insert_user(
            id,
            Subscriber::new()
                .with_plan(Assignment::new("free"))
                .with_usage("clients", clients),
        );
    }
    Arc::new(Answering {
        records,
        answer,
        calls: AtomicUsize::new(0),
        queries: AtomicUsize::new(0),
    })
}

/// A layer over `store` whose catalog is loaded (by a governed request without a user, which
/// asks the store for no record).
async fn loaded(store: &Arc<Answering>) -> PlanLimitLayer {
    let layer = PlanLimitLayer::builder(Arc::clone(store)).build().unwrap();
    let response = send(&layer, request(Method::POST, "/clients", None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(store.calls.load(Ordering::SeqCst), 0);
    layer
}

/// ann is allowed, bob denied at the limit, cy (unknown) has no plan.
async fn decide_three(layer: &PlanLimitLayer, answer: Answer) {
    let allowed = send(layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(allowed.status(), StatusCode::OK, "{answer:?}");
    assert_eq!(
        text(allowed).await,
        "free clients create usage=1 remaining=Some(2)",
        "{answer:?}"
    );
    let denied = send(layer, request(Method::POST, "/clients", Some("bob"))).await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN, "{answer:?}");
    assert_eq!(
        text(denied).await,
        r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3}"#,
        "{answer:?}"
    );
    let unknown = send(layer, request(Method::POST, "/clients", Some("cy"))).await;
    assert_eq!(unknown.status(), StatusCode::FORBIDDEN, "{answer:?}");
    assert_eq!(
        text(unknown).await,
        r#"{"reason":"subscription","plan":null,"item":"clients","action":"create"}"#,
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_ready_answer_decides_with_one_call() {
    let store = answering(Answer::Ready);
    let layer = loaded(&store).await;
    decide_three(&layer, Answer::Ready).await;
    assert_eq!(store.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_store_that_waits_is_queried_once_per_request() {
    let store = answering(Answer::Waits);
    let layer = loaded(&store).await;
    decide_three(&layer, Answer::Waits).await;
    // The layer may ask, see a future, and ask again from its own task: the futures it did
    // not poll never queried anything.
    assert_eq!(store.queries.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_store_that_fails_at_once_fails_closed_without_its_error() {
    let store = answering(Answer::Fails);
    let layer = loaded(&store).await;

    let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        text(response).await,
        r#"{"reason":"plan_store_unavailable"}"#
    );
    assert_eq!(store.calls.load(Ordering::SeqCst), 1);
}

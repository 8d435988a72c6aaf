//! A plan store that answers without waiting (`PlanStore::with_user_now` and `user_now`): the
//! record it lends or returns decides the request; one that answers without lending a record is
//! waited for; one that fails fails closed without leaking its error.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, StatusCode};
use tower_plans::{
    subscriber::Assignment, BoxError, Catalog, MemoryStore, PlanLimitLayer, PlanStore, Subscriber,
};

use crate::support::{request, send, text, CATALOG, SECRET};

/// How [`Immediate`] answers at once.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// Only `user_now`: the default `with_user_now` lends what it returns.
    Returns,
    /// `with_user_now` lends the record.
    Lends,
    /// `with_user_now` answers `Ok` without lending anything.
    Forgets,
    /// `with_user_now` fails.
    Fails,
}

/// A `MemoryStore` answering at once as `answer` says, counting its calls.
struct Immediate {
    records: MemoryStore,
    answer: Answer,
    user_calls: AtomicUsize,
    now_calls: AtomicUsize,
    lend_calls: AtomicUsize,
}

#[async_trait]
impl PlanStore for Immediate {
    async fn plans(&self) -> Result<Arc<Catalog>, BoxError> {
        Ok(self.records.catalog())
    }

    async fn user(&self, id: &str) -> Result<Option<Arc<Subscriber>>, BoxError> {
        self.user_calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.records.subscriber(id))
    }

    fn user_now(&self, id: &str) -> Option<Result<Option<Arc<Subscriber>>, BoxError>> {
        self.now_calls.fetch_add(1, Ordering::SeqCst);
        Some(Ok(self.records.subscriber(id)))
    }

    fn with_user_now(
        &self,
        id: &str,
        lend: &mut dyn FnMut(Option<&Subscriber>),
    ) -> Option<Result<(), BoxError>> {
        self.lend_calls.fetch_add(1, Ordering::SeqCst);
        match self.answer {
            Answer::Returns => {
                let answer = self.user_now(id)?;
                Some(answer.map(|record| lend(record.as_deref())))
            }
            Answer::Lends => self.records.with_user_now(id, lend),
            Answer::Forgets => Some(Ok(())),
            Answer::Fails => Some(Err(SECRET.into())),
        }
    }
}

/// `ann` with 1 client and `bob` with 3 (the limit), both on free.
fn immediate(answer: Answer) -> Arc<Immediate> {
    let records = MemoryStore::new(Catalog::from_json(CATALOG).unwrap());
    for (id, clients) in [("ann", 1), ("bob", 3)] {
        records.insert_user(
            id,
            Subscriber::new()
                .with_plan(Assignment::new("free"))
                .with_usage("clients", clients),
        );
    }
    Arc::new(Immediate {
        records,
        answer,
        user_calls: AtomicUsize::new(0),
        now_calls: AtomicUsize::new(0),
        lend_calls: AtomicUsize::new(0),
    })
}

/// A layer over `store` whose catalog is loaded: the request that loads it waits for the store,
/// user included. The store's counts start again from 0.
async fn loaded(store: &Arc<Immediate>, count: bool) -> PlanLimitLayer {
    let builder = PlanLimitLayer::builder(Arc::clone(store));
    let builder = if count {
        builder.count_usage(store.records.clone())
    } else {
        builder
    };
    let layer = builder.build().unwrap();
    let response = send(&layer, request(Method::GET, "/clients", Some("ann"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(store.user_calls.swap(0, Ordering::SeqCst), 1);
    store.now_calls.store(0, Ordering::SeqCst);
    store.lend_calls.store(0, Ordering::SeqCst);
    layer
}

#[tokio::test]
async fn the_record_a_store_lends_at_once_decides_without_waiting() {
    for answer in [Answer::Returns, Answer::Lends] {
        let store = immediate(answer);
        let layer = loaded(&store, false).await;

        let allowed = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
        assert_eq!(allowed.status(), StatusCode::OK, "{answer:?}");
        assert_eq!(
            text(allowed).await,
            "free clients create usage=1 remaining=Some(2)",
            "{answer:?}"
        );
        let denied = send(&layer, request(Method::POST, "/clients", Some("bob"))).await;
        assert_eq!(denied.status(), StatusCode::FORBIDDEN, "{answer:?}");
        assert_eq!(
            text(denied).await,
            r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3}"#,
            "{answer:?}"
        );
        // An unknown user is lent as none: no plan.
        let unknown = send(&layer, request(Method::POST, "/clients", Some("cy"))).await;
        assert_eq!(unknown.status(), StatusCode::FORBIDDEN, "{answer:?}");
        assert_eq!(
            text(unknown).await,
            r#"{"reason":"subscription","plan":null,"item":"clients","action":"create"}"#,
            "{answer:?}"
        );

        assert_eq!(store.lend_calls.load(Ordering::SeqCst), 3, "{answer:?}");
        let returned = if matches!(answer, Answer::Returns) {
            3
        } else {
            0
        };
        assert_eq!(
            store.now_calls.load(Ordering::SeqCst),
            returned,
            "{answer:?}"
        );
        assert_eq!(store.user_calls.load(Ordering::SeqCst), 0, "{answer:?}");
    }
}

#[tokio::test]
async fn a_store_that_answers_at_once_without_lending_is_waited_for() {
    let store = immediate(Answer::Forgets);
    let layer = loaded(&store, false).await;

    let allowed = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(
        text(allowed).await,
        "free clients create usage=1 remaining=Some(2)"
    );
    let denied = send(&layer, request(Method::POST, "/clients", Some("bob"))).await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);

    assert_eq!(store.lend_calls.load(Ordering::SeqCst), 2);
    assert_eq!(store.user_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_store_that_fails_at_once_fails_closed_without_its_error() {
    let store = immediate(Answer::Fails);
    let layer = loaded(&store, false).await;

    let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        text(response).await,
        r#"{"reason":"plan_store_unavailable"}"#
    );
    assert_eq!(store.lend_calls.load(Ordering::SeqCst), 1);
    assert_eq!(store.user_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_counted_layer_takes_the_record_rather_than_borrowing_it() {
    // The usage store is the plan store: a reservation made while the record were lent under
    // the store's lock would wait for that lock.
    let store = immediate(Answer::Lends);
    let layer = loaded(&store, true).await;

    let allowed = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        store
            .records
            .subscriber("ann")
            .unwrap()
            .usage
            .count("clients"),
        Some(2)
    );
    // Asked through `user_now`, not lent.
    assert_eq!(store.now_calls.load(Ordering::SeqCst), 1);
    assert_eq!(store.lend_calls.load(Ordering::SeqCst), 0);
}

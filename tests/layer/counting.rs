//! Counted usage (`count_usage`): concurrent creates at `limit - 1` over real HTTP let exactly
//! one through; a failed, erroring or dropped request costs nothing; a delete gives one back;
//! other finite limits are counted per action; counters start from the records; an
//! application's own changes are seen; usage store failures follow the failure policy; handlers
//! read the counted usage; `commit_when` chooses what commits.
//!
//! Every wait is bounded, so that a regression fails instead of hanging.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use axum::middleware;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Barrier;
use tokio::time::timeout;
use tower::timeout::TimeoutLayer;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_plans::store::{Count, Counter};
use tower_plans::store::{Held, Hold, Seed, StoreFuture};
use tower_plans::{
    Action, BoxError, Catalog, MemoryStore, PlanLimitLayer, PlanLimitLayerBuilder, Rejection,
    ResponseBody, UsageStore, UserCache,
};

/// Free keeps 5 clients and shows 3 reports; pro keeps any number of clients.
const PLANS: &str = r#"{"plans": [
    {"name": "free", "limits": {"clients": 5, "reports": {"show": 3}}},
    {"name": "pro", "limits": {"clients": null}}
]}"#;

/// The limit on free's clients.
const LIMIT: u64 = 5;

const UNAVAILABLE: &str = r#"{"reason":"plan_store_unavailable"}"#;

/// Longer than anything below should take; on the paused clock it passes at once when every
/// task is stuck.
const PATIENCE: Duration = Duration::from_secs(60);

type Body = ResponseBody<Full<Bytes>>;

/// A store where john is on free with `clients` clients.
fn store_with(clients: u64) -> MemoryStore {
    let users = format!(
        r#"{{"john": {{"name": "john", "plan": "free", "usage": {{"clients": {clients}}}}}}}"#
    );
    MemoryStore::from_json(PLANS, &users).expect("the test store loads")
}

/// A layer over `store` (base `/api`, the test clock) counting in `store` itself.
fn counted(store: &MemoryStore) -> PlanLimitLayerBuilder {
    PlanLimitLayer::builder(store.clone())
        .base("/api")
        .clock(|| NOW)
        .count_usage(store.clone())
}

fn clients() -> Counter {
    Counter::items("john", "clients")
}

/// The counter's used and held units (a counter that does not exist yet is an error).
async fn count_of(store: &impl UsageStore, counter: &Counter) -> Count {
    UsageStore::get(store, counter)
        .await
        .expect("the usage store answers")
        .expect("the counter exists")
}

fn count(used: u64, held: u64) -> Count {
    Count { used, held }
}

fn create() -> Request<Full<Bytes>> {
    request(Method::POST, "/api/clients", Some("john"))
}

/// Sends `request` through `layer` to a handler that answers `status` with the decision it
/// found ([`describe`]).
async fn answered(
    layer: &PlanLimitLayer,
    status: StatusCode,
    request: Request<Full<Bytes>>,
) -> Response<Body> {
    let response = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(move |request: Request<Full<Bytes>>| async move {
            let mut response = Response::new(Full::new(Bytes::from(describe(&request))));
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        })
        .oneshot(request);
    timeout(PATIENCE, response)
        .await
        .expect("no hang")
        .expect("infallible")
}

/// `request` through `layer` to a handler that never answers, polled once (the reservation is
/// made, the handler called) and left pending.
fn stalled(
    layer: &PlanLimitLayer,
    request: Request<Full<Bytes>>,
) -> impl std::future::Future<Output = Result<Response<Body>, Infallible>> + Unpin {
    let service =
        ServiceBuilder::new()
            .layer(layer.clone())
            .service_fn(|_: Request<Full<Bytes>>| async {
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            });
    started(Box::pin(service.oneshot(request)))
}

/// The JSON body of a response.
async fn json_of<B>(response: Response<B>) -> Value
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    serde_json::from_str(&text(response).await).expect("a JSON body")
}

/// Checks that `response` is free's clients denial at `usage`.
async fn assert_clients_denied(response: Response<Body>, usage: u64) {
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        json_of(response).await,
        json!({"reason": "subscription", "plan": "free", "item": "clients", "action": "create",
               "maximum": LIMIT, "usage": usage})
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Concurrent creates over real HTTP.

/// Creating a client: 2 ms of work, then `201`. It does not touch usage.
async fn create_client() -> StatusCode {
    tokio::time::sleep(Duration::from_millis(2)).await;
    StatusCode::CREATED
}

/// Serves `layer` in an axum app on a loopback port, behind [`authenticate`].
async fn serve(layer: PlanLimitLayer) -> SocketAddr {
    let app = Router::new()
        .route("/api/clients", post(create_client))
        .layer(layer)
        .layer(middleware::from_fn(authenticate));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    address
}

/// 200 concurrent `POST /api/clients` by john at `LIMIT - 1`, 20 times over: each time exactly
/// one is created, the others are denied at the limit, and the count ends at the limit.
async fn race(cache: Option<UserCache>) {
    const REQUESTS: usize = 200;
    const ROUNDS: usize = 20;
    let store = store_with(LIMIT - 1);
    let mut builder = counted(&store);
    if let Some(cache) = cache {
        builder = builder.user_cache(cache);
    }
    let address = serve(builder.build().unwrap()).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let uri = format!("http://{address}/api/clients");

    for round in 0..ROUNDS {
        store.set_usage("john", "clients", LIMIT - 1);
        let start = Arc::new(Barrier::new(REQUESTS));
        let tasks: Vec<_> = (0..REQUESTS)
            .map(|_| {
                let (client, uri, start) = (client.clone(), uri.clone(), Arc::clone(&start));
                tokio::spawn(async move {
                    let request = Request::post(uri)
                        .header("x-user", "john")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    start.wait().await;
                    let response = client.request(request).await.expect("a response");
                    let status = response.status();
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    (status, body)
                })
            })
            .collect();
        let outcomes = timeout(PATIENCE, futures::future::join_all(tasks))
            .await
            .expect("no hang");
        let mut created = 0;
        for outcome in outcomes {
            let (status, body) = outcome.expect("no panic");
            match status {
                StatusCode::CREATED => created += 1,
                StatusCode::FORBIDDEN => {
                    let body: Value = serde_json::from_slice(&body).expect("a JSON body");
                    assert_eq!(body["usage"], LIMIT, "round {round}: {body}");
                    assert_eq!(body["maximum"], LIMIT, "round {round}: {body}");
                }
                other => panic!("round {round}: unexpected {other}"),
            }
        }
        assert_eq!(created, 1, "round {round}");
        // Every response was settled before it was sent: nothing is held any more.
        assert_eq!(count_of(&store, &clients()).await, count(LIMIT, 0));
        let john = store.subscriber("john").unwrap();
        assert_eq!(john.usage.count("clients"), Some(LIMIT), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_over_http_at_limit_minus_one_let_exactly_one_through() {
    race(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_over_http_let_exactly_one_through_with_the_user_cache() {
    race(Some(UserCache::time_to_live(
        Duration::from_secs(3600),
        100,
    )))
    .await;
}

// ---------------------------------------------------------------------------------------------
// 2. What fails costs nothing.

#[tokio::test]
async fn a_failed_create_releases_its_unit() {
    let store = store_with(LIMIT - 1);
    let layer = counted(&store).build().unwrap();

    let response = answered(&layer, StatusCode::INTERNAL_SERVER_ERROR, create()).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));

    // The unit it held is free: the next create takes it, and the one after is refused.
    let response = answered(&layer, StatusCode::CREATED, create()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT, 0));
    assert_clients_denied(answered(&layer, StatusCode::CREATED, create()).await, LIMIT).await;
}

#[tokio::test]
async fn an_inner_error_releases_its_unit() {
    let store = store_with(LIMIT - 1);
    let layer = counted(&store).build().unwrap();

    let failing = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|_: Request<Full<Bytes>>| async {
            Err::<Response<Full<Bytes>>, BoxError>("the database is down".into())
        }));
    let error = timeout(PATIENCE, failing.oneshot(create()))
        .await
        .expect("no hang")
        .expect_err("the inner error comes through");
    assert_eq!(error.to_string(), "the database is down");
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));

    let response = answered(&layer, StatusCode::CREATED, create()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT, 0));
}

#[tokio::test(start_paused = true)]
async fn a_request_timed_out_by_an_outer_layer_releases_its_unit() {
    let store = store_with(LIMIT - 1);
    let layer = counted(&store).build().unwrap();

    let slow = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_millis(10)))
        .layer(layer.clone())
        .service_fn(|_: Request<Full<Bytes>>| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        });
    let error = timeout(PATIENCE, slow.oneshot(create()))
        .await
        .expect("no hang")
        .expect_err("the timeout layer gives up");
    assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));

    let response = answered(&layer, StatusCode::CREATED, create()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT, 0));
}

#[tokio::test]
async fn a_response_future_dropped_after_one_poll_releases_its_unit() {
    let store = store_with(LIMIT - 1);
    let layer = counted(&store).build().unwrap();

    let pending = stalled(&layer, create());
    // The handler was called: the unit is held, and nobody else can take it.
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 1));
    assert_clients_denied(answered(&layer, StatusCode::CREATED, create()).await, LIMIT).await;

    drop(pending);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));
    let response = answered(&layer, StatusCode::CREATED, create()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT, 0));
}

#[tokio::test(start_paused = true)]
async fn with_commit_dropped_a_dropped_response_future_commits() {
    let store = store_with(LIMIT - 2);
    let layer = counted(&store).commit_dropped(true).build().unwrap();

    // Polled once, then dropped.
    drop(stalled(&layer, create()));
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));

    // Timed out by an outer layer.
    let slow = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_millis(10)))
        .layer(layer.clone())
        .service_fn(|_: Request<Full<Bytes>>| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        });
    let result = timeout(PATIENCE, slow.oneshot(create()))
        .await
        .expect("no hang");
    assert!(result.is_err(), "the timeout layer gives up");
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT, 0));

    assert_clients_denied(answered(&layer, StatusCode::CREATED, create()).await, LIMIT).await;
    // A failed response still releases.
    store.set_usage("john", "clients", LIMIT - 1);
    answered(&layer, StatusCode::INTERNAL_SERVER_ERROR, create()).await;
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));
}

// ---------------------------------------------------------------------------------------------
// 3. Deletes.

fn delete() -> Request<Full<Bytes>> {
    request(Method::DELETE, "/api/clients/7", Some("john"))
}

#[tokio::test]
async fn a_successful_delete_gives_one_back_and_a_404_nothing() {
    let store = store_with(LIMIT);
    let layer = counted(&store).build().unwrap();
    assert_clients_denied(answered(&layer, StatusCode::CREATED, create()).await, LIMIT).await;

    let response = answered(&layer, StatusCode::NO_CONTENT, delete()).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));
    // The item given back can be created again.
    let response = answered(&layer, StatusCode::CREATED, create()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT, 0));

    let response = answered(&layer, StatusCode::OK, delete()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));

    let response = answered(&layer, StatusCode::NOT_FOUND, delete()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));
    assert_eq!(
        store.subscriber("john").unwrap().usage.count("clients"),
        Some(LIMIT - 1)
    );
}

#[tokio::test]
async fn a_delete_never_takes_the_count_below_zero() {
    let store = store_with(1);
    let layer = counted(&store).build().unwrap();
    for _ in 0..3 {
        let response = answered(&layer, StatusCode::NO_CONTENT, delete()).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(count_of(&store, &clients()).await, count(0, 0));
    let response = answered(&layer, StatusCode::CREATED, create()).await;
    assert_eq!(
        text(response).await,
        "free clients create usage=0 remaining=Some(5)"
    );
    assert_eq!(count_of(&store, &clients()).await, count(1, 0));
}

// ---------------------------------------------------------------------------------------------
// 4. Other finite limits, per action.

#[tokio::test]
async fn a_finite_show_limit_is_counted_per_action() {
    let store = store_with(LIMIT - 1);
    let layer = counted(&store).build().unwrap();
    let show = || request(Method::GET, "/api/reports/1", Some("john"));

    for used in 0..3 {
        let response = answered(&layer, StatusCode::OK, show()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            text(response).await,
            format!(
                "free reports show usage={used} remaining=Some({})",
                3 - used
            )
        );
    }
    let response = answered(&layer, StatusCode::OK, show()).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        json_of(response).await,
        json!({"reason": "subscription", "plan": "free", "item": "reports", "action": "show",
               "maximum": 3, "usage": 3})
    );

    let shows = Counter::action("john", "reports", Action::Show);
    assert_eq!(count_of(&store, &shows).await, count(3, 0));
    let john = store.subscriber("john").unwrap();
    assert_eq!(john.usage.action_count("reports", &Action::Show), Some(3));

    // The unlimited index is not counted, and the clients' count is its own.
    let response = answered(
        &layer,
        StatusCode::OK,
        request(Method::GET, "/api/reports", Some("john")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let john = store.subscriber("john").unwrap();
    assert_eq!(john.usage.action_count("reports", &Action::Index), None);
    assert_eq!(john.usage.count("clients"), Some(LIMIT - 1));
}

// ---------------------------------------------------------------------------------------------
// 5. Seeds.

#[tokio::test]
async fn a_separate_usage_store_starts_from_the_record() {
    let plans = store_with(LIMIT - 1);
    let usage = MemoryStore::new(Catalog::from_json(PLANS).unwrap());
    let layer = PlanLimitLayer::builder(plans.clone())
        .base("/api")
        .clock(|| NOW)
        .count_usage(usage.clone())
        .build()
        .unwrap();
    assert_eq!(UsageStore::get(&usage, &clients()).await.unwrap(), None);

    let response = answered(&layer, StatusCode::CREATED, create()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        text(response).await,
        format!("free clients create usage={} remaining=Some(1)", LIMIT - 1)
    );
    assert_eq!(count_of(&usage, &clients()).await, count(LIMIT, 0));

    assert_clients_denied(answered(&layer, StatusCode::CREATED, create()).await, LIMIT).await;
    assert_eq!(count_of(&usage, &clients()).await, count(LIMIT, 0));

    // The counts live in the usage store: the plan store's record is left as it was, and the
    // usage store has no record of john.
    let john = plans.subscriber("john").unwrap();
    assert_eq!(john.usage.count("clients"), Some(LIMIT - 1));
    assert!(usage.subscriber("john").is_none());
}

// ---------------------------------------------------------------------------------------------
// 6. The application's own changes.

#[tokio::test]
async fn counts_changed_through_the_store_are_seen_by_the_next_request() {
    for cached in [false, true] {
        let store = store_with(LIMIT - 2);
        let mut builder = counted(&store);
        if cached {
            builder = builder.user_cache(UserCache::time_to_live(Duration::from_secs(3600), 10));
        }
        let layer = builder.build().unwrap();
        let response = answered(&layer, StatusCode::CREATED, create()).await;
        assert_eq!(response.status(), StatusCode::CREATED, "cached: {cached}");
        assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));

        UsageStore::set(&store, &clients(), LIMIT).await.unwrap();
        assert_clients_denied(answered(&layer, StatusCode::CREATED, create()).await, LIMIT).await;

        let after = UsageStore::adjust(&store, &clients(), -3, Seed::Count(0))
            .await
            .unwrap();
        assert_eq!(after, LIMIT - 3);
        let response = answered(&layer, StatusCode::CREATED, create()).await;
        assert_eq!(
            text(response).await,
            "free clients create usage=2 remaining=Some(3)",
            "cached: {cached}"
        );

        store.set_usage("john", "clients", LIMIT);
        assert_clients_denied(answered(&layer, StatusCode::CREATED, create()).await, LIMIT).await;
        assert_eq!(count_of(&store, &clients()).await, count(LIMIT, 0));
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Usage store failures.

/// A usage store over a [`MemoryStore`] whose calls can be made to fail with [`SECRET`], and
/// whose commits and releases can be made to wait (on Tokio's clock), as a remote store's would.
struct FlakyUsage {
    counts: MemoryStore,
    settle_delay: Mutex<Duration>,
    fail_reserve: AtomicBool,
    fail_commit: AtomicBool,
    fail_release: AtomicBool,
    reserves: AtomicUsize,
    commits: AtomicUsize,
}

impl FlakyUsage {
    fn over(counts: &MemoryStore) -> Arc<Self> {
        Arc::new(Self {
            counts: counts.clone(),
            settle_delay: Mutex::new(Duration::ZERO),
            fail_reserve: AtomicBool::new(false),
            fail_commit: AtomicBool::new(false),
            fail_release: AtomicBool::new(false),
            reserves: AtomicUsize::new(0),
            commits: AtomicUsize::new(0),
        })
    }

    async fn wait(&self) {
        let delay = *self.settle_delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    fn check(&self, fail: &AtomicBool) -> Result<(), BoxError> {
        if fail.load(Ordering::SeqCst) {
            return Err(SECRET.into());
        }
        Ok(())
    }
}

impl UsageStore for FlakyUsage {
    fn reserve<'a>(&'a self, hold: &'a Hold, lease: Duration) -> StoreFuture<'a, Held> {
        StoreFuture::new(async move {
            self.reserves.fetch_add(1, Ordering::SeqCst);
            self.check(&self.fail_reserve)?;
            self.counts.reserve(hold, lease).await
        })
    }

    fn commit<'a>(&'a self, hold: &'a Hold, spent: &'a [u64]) -> StoreFuture<'a, ()> {
        StoreFuture::new(async move {
            self.commits.fetch_add(1, Ordering::SeqCst);
            self.wait().await;
            self.check(&self.fail_commit)?;
            self.counts.commit(hold, spent).await
        })
    }

    fn release<'a>(&'a self, hold: &'a Hold) -> StoreFuture<'a, ()> {
        StoreFuture::new(async move {
            self.wait().await;
            self.check(&self.fail_release)?;
            self.counts.release(hold).await
        })
    }

    fn adjust<'a>(&'a self, counter: &'a Counter, delta: i64, seed: Seed) -> StoreFuture<'a, u64> {
        StoreFuture::new(self.counts.adjust(counter, delta, seed))
    }

    fn set<'a>(&'a self, counter: &'a Counter, used: u64) -> StoreFuture<'a, ()> {
        StoreFuture::new(UsageStore::set(&self.counts, counter, used))
    }

    fn get<'a>(&'a self, counter: &'a Counter) -> StoreFuture<'a, Option<Count>> {
        StoreFuture::new(UsageStore::get(&self.counts, counter))
    }
}

async fn assert_unavailable(response: Response<Body>) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(
        response.extensions().get::<Rejection>(),
        Some(&Rejection::StoreUnavailable)
    );
    let body = text(response).await;
    assert!(
        !body.contains("hunter2") && !body.contains("db-7"),
        "{body}"
    );
    assert_eq!(body, UNAVAILABLE);
}

#[tokio::test]
async fn a_failing_reserve_fails_closed_or_open_as_configured() {
    let store = store_with(LIMIT - 1);
    let usage = FlakyUsage::over(&store);
    usage.fail_reserve.store(true, Ordering::SeqCst);
    let builder = || {
        PlanLimitLayer::builder(store.clone())
            .base("/api")
            .clock(|| NOW)
            .count_usage(Arc::clone(&usage))
    };

    let closed = builder().build().unwrap();
    assert_unavailable(answered(&closed, StatusCode::CREATED, create()).await).await;
    assert_eq!(usage.reserves.load(Ordering::SeqCst), 1);

    // Failing open, the request passes unchecked, and nothing is counted.
    let open = builder().fail_open(true).build().unwrap();
    let response = answered(&open, StatusCode::CREATED, create()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(text(response).await, "unchecked");
    assert_eq!(usage.reserves.load(Ordering::SeqCst), 2);
    assert_eq!(usage.commits.load(Ordering::SeqCst), 0);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_failing_commit_or_release_keeps_the_handlers_response() {
    let store = store_with(LIMIT - 1);
    let usage = FlakyUsage::over(&store);
    let layer = PlanLimitLayer::builder(store.clone())
        .base("/api")
        .clock(|| NOW)
        .count_usage(Arc::clone(&usage))
        .lease(Duration::from_secs(30))
        .build()
        .unwrap();

    usage.fail_commit.store(true, Ordering::SeqCst);
    let response = answered(&layer, StatusCode::CREATED, create()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        text(response).await,
        format!("free clients create usage={} remaining=Some(1)", LIMIT - 1)
    );
    assert_eq!(usage.commits.load(Ordering::SeqCst), 1);
    // The unit stays held until its lease ends.
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 1));
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));

    usage.fail_commit.store(false, Ordering::SeqCst);
    usage.fail_release.store(true, Ordering::SeqCst);
    let response = answered(&layer, StatusCode::INTERNAL_SERVER_ERROR, create()).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        text(response).await,
        format!("free clients create usage={} remaining=Some(1)", LIMIT - 1)
    );
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 1));
}

/// Sends a create through an outer timeout layer that gives up while the layer settles the
/// reservation of the handler's `status` with a slow usage store.
async fn dropped_while_settling(layer: &PlanLimitLayer, status: StatusCode) {
    let service = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_millis(10)))
        .layer(layer.clone())
        .service_fn(move |_: Request<Full<Bytes>>| async move {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        });
    let result = timeout(PATIENCE, service.oneshot(create()))
        .await
        .expect("no hang");
    let error = result.expect_err("the timeout layer gives up");
    assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_response_dropped_while_it_settles_is_still_settled() {
    let store = store_with(LIMIT - 2);
    let usage = FlakyUsage::over(&store);
    *usage.settle_delay.lock().unwrap() = Duration::from_millis(50);
    let layer = PlanLimitLayer::builder(store.clone())
        .base("/api")
        .clock(|| NOW)
        .count_usage(Arc::clone(&usage))
        .build()
        .unwrap();

    // The handler created the client; its commit was under way when the future was dropped.
    dropped_while_settling(&layer, StatusCode::CREATED).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));

    // The handler failed; its release was under way. The unit is free long before the lease
    // ends.
    dropped_while_settling(&layer, StatusCode::INTERNAL_SERVER_ERROR).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));
}

// ---------------------------------------------------------------------------------------------
// 8. What the handler is told.

#[tokio::test]
async fn allowed_reports_the_used_and_held_units() {
    let store = store_with(2);
    let layer = counted(&store).build().unwrap();

    let response = answered(&layer, StatusCode::OK, create()).await;
    assert_eq!(
        text(response).await,
        "free clients create usage=2 remaining=Some(3)"
    );

    // A request in flight holds a unit: the next one is told about it.
    let pending = stalled(&layer, create());
    assert_eq!(count_of(&store, &clients()).await, count(3, 1));
    let response = answered(&layer, StatusCode::OK, create()).await;
    assert_eq!(
        text(response).await,
        "free clients create usage=4 remaining=Some(1)"
    );
    drop(pending);
    let response = answered(&layer, StatusCode::OK, create()).await;
    assert_eq!(
        text(response).await,
        "free clients create usage=4 remaining=Some(1)"
    );
    assert_eq!(count_of(&store, &clients()).await, count(5, 0));

    // On an unlimited plan creates are still counted; nothing remains to tell.
    store.set_plan(
        "john",
        Some(tower_plans::subscriber::Assignment::new("pro")),
    );
    let response = answered(&layer, StatusCode::OK, create()).await;
    assert_eq!(
        text(response).await,
        "pro clients create usage=5 remaining=None"
    );
    assert_eq!(count_of(&store, &clients()).await, count(6, 0));
}

// ---------------------------------------------------------------------------------------------
// 9. What commits.

#[tokio::test]
async fn commit_when_chooses_the_statuses_that_commit() {
    let store = store_with(LIMIT - 2);

    // By default only a 2xx commits: a redirect releases.
    let default = counted(&store).build().unwrap();
    let response = answered(&default, StatusCode::SEE_OTHER, create()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 2, 0));

    let layer = counted(&store)
        .commit_when(|status| status.is_success() || status == StatusCode::SEE_OTHER)
        .build()
        .unwrap();
    let response = answered(&layer, StatusCode::SEE_OTHER, create()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));

    let response = answered(&layer, StatusCode::UNPROCESSABLE_ENTITY, create()).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));

    let response = answered(&layer, StatusCode::CREATED, create()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT, 0));
    assert_clients_denied(
        answered(&layer, StatusCode::SEE_OTHER, create()).await,
        LIMIT,
    )
    .await;
}

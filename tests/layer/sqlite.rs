//! The SQLite example's store (`examples/sqlite/store.rs`) against real database files: through
//! the layer over HTTP (200 concurrent creates at `limit - 1` create exactly one; a 500 releases;
//! a delete gives one back), deciding as the in-memory store does on the same data, following
//! the in-memory store's counting semantics call by call, leases, migrations, the example's seed,
//! invalidation after an admin change, a failing database, a plain count beside the actions'
//! own counts row by row, the counting model of `support/counting_differential.rs`, and
//! reservations of several units on several counters: the usage store suite of
//! `support/usage_conformance.rs` (200 concurrent reservations of 5 units against a pool with 15
//! left, on one store and over three stores on one file, let exactly 3 through), credit pools
//! and grants as rows of their own, and random holds answered as the in-memory store answers;
//! metered plans in the tables (meters, plan and add-on pools and grants round-trip, the schema
//! refuses malformed ones, bad rows are errors that name them, migration 6 keeps the data) and
//! a pool with grants spent through the layer exactly as over memory.
//!
//! Every wait is bounded, so that a regression fails instead of hanging.

#[path = "../../examples/sqlite/store.rs"]
mod store;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::{authenticate, describe, NOW};
use axum::middleware;
use axum::routing::{delete, post};
use axum::Router;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Barrier;
use tokio::time::timeout;
use tower::{ServiceBuilder, ServiceExt};
use tower_plans::store::{
    Count, Counter, Held, Hold, Line, ReservationId, Reserve, Seed, Spill, StoreFuture,
    UsageStoreExt,
};
use tower_plans::subscriber::Assignment;
use tower_plans::{
    Action, Catalog, MemoryStore, PlanLimitLayer, PlanLimitLayerBuilder, PlanStore, Subscriber,
    UsageStore, UserCache, UserId,
};

use crate::counting_model as model;
use crate::usage_conformance as suite;
use store::SqliteStore;

/// Longer than anything below should take.
const PATIENCE: Duration = Duration::from_secs(60);

/// Free keeps 5 clients.
const PLANS: &str = r#"{"plans": [
    {"name": "free", "limits": {"clients": 5}},
    {"name": "pro", "limits": {"clients": 30}}
]}"#;

/// The limit on free's clients.
const LIMIT: u64 = 5;

/// A temporary folder, removed with its database when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let name = format!(
            "tower-plans-test-sqlite-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir(&dir).expect("a temporary folder");
        TempDir(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("plans.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh database file with the store's schema. Keep the folder alive while it is used.
async fn fresh() -> (TempDir, SqliteStore) {
    let dir = TempDir::new();
    let store = SqliteStore::open(dir.db())
        .await
        .expect("the database opens");
    (dir, store)
}

/// A fresh database holding `plans` and `users` (id, subscriber-format JSON).
async fn loaded(plans: &str, users: &[(&str, &str)]) -> (TempDir, SqliteStore) {
    let (dir, store) = fresh().await;
    let catalog = Catalog::from_json(plans).expect("test catalog");
    store
        .import_catalog(&catalog)
        .await
        .expect("catalog stored");
    for (id, record) in users {
        let subscriber = Subscriber::from_json(record).expect("test subscriber");
        store
            .put_subscriber(id, &subscriber)
            .await
            .expect("subscriber stored");
    }
    (dir, store)
}

/// The same data in memory.
fn in_memory(plans: &str, users: &[(&str, &str)]) -> MemoryStore {
    let users: serde_json::Map<String, Value> = users
        .iter()
        .map(|(id, record)| {
            let record: Value = serde_json::from_str(record).expect("test subscriber");
            ((*id).to_owned(), record)
        })
        .collect();
    MemoryStore::from_json(plans, &Value::Object(users).to_string()).expect("test store")
}

/// john on free with `clients` clients.
async fn john_with(clients: u64) -> (TempDir, SqliteStore) {
    let record =
        format!(r#"{{"name": "john", "plan": "free", "usage": {{"clients": {clients}}}}}"#);
    loaded(PLANS, &[("john", &record)]).await
}

/// A layer over `store` (base `/api`, the test clock) that counts in `store` too.
fn counted(store: &SqliteStore) -> PlanLimitLayerBuilder {
    PlanLimitLayer::builder(store.clone())
        .base("/api")
        .clock(|| NOW)
        .count_usage(store.clone())
}

fn clients() -> Counter {
    Counter::items("john", "clients")
}

async fn count_of(store: &SqliteStore, counter: &Counter) -> Option<Count> {
    store.get(counter).await.expect("the database answers")
}

fn count(used: u64, held: u64) -> Option<Count> {
    Some(Count { used, held })
}

/// The status a request asks the handler for (`x-status`), else `default`.
fn asked(request: &Request<axum::body::Body>, default: StatusCode) -> StatusCode {
    request
        .headers()
        .get("x-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(default)
}

/// Serves `layer` on a loopback port: `POST /api/clients` creates (2 ms of work, then `201`),
/// `DELETE /api/clients/{id}` deletes (`200`); `x-status` makes either answer another status.
async fn serve(layer: PlanLimitLayer) -> SocketAddr {
    let app = Router::new()
        .route(
            "/api/clients",
            post(|request: Request<axum::body::Body>| async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                asked(&request, StatusCode::CREATED)
            }),
        )
        .route(
            "/api/clients/{id}",
            delete(
                |request: Request<axum::body::Body>| async move { asked(&request, StatusCode::OK) },
            ),
        )
        .layer(layer)
        .layer(middleware::from_fn(authenticate));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    address
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()
}

/// `method` on `path` as john over HTTP, asking the handler for `status` if given.
async fn call(
    client: &HttpClient,
    address: SocketAddr,
    method: Method,
    path: &str,
    status: Option<u16>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"))
        .header("x-user", "john");
    if let Some(status) = status {
        request = request.header("x-status", status);
    }
    let request = request.body(Full::new(Bytes::new())).expect("a request");
    let response = timeout(PATIENCE, client.request(request))
        .await
        .expect("no hang")
        .expect("a response");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn at_limit() -> Value {
    json!({"reason": "subscription", "plan": "free", "item": "clients", "action": "create",
           "maximum": LIMIT, "usage": LIMIT})
}

// ---------------------------------------------------------------------------------------------
// 1. Through the layer, over HTTP.

/// 200 concurrent `POST /api/clients` by john at `LIMIT - 1`, 3 times over: each time exactly
/// one is created, the others are denied at the limit, and SQLite ends at the limit with nothing
/// held.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_hundred_concurrent_creates_at_limit_minus_one_create_exactly_one() {
    const REQUESTS: usize = 200;
    const ROUNDS: usize = 3;
    let (_dir, store) = john_with(LIMIT - 1).await;
    let address = serve(counted(&store).build().expect("layer")).await;
    let client = http_client();
    for round in 0..ROUNDS {
        store.set(&clients(), LIMIT - 1).await.expect("reset");
        let start = Arc::new(Barrier::new(REQUESTS));
        let tasks: Vec<_> = (0..REQUESTS)
            .map(|_| {
                let (client, start) = (client.clone(), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    call(&client, address, Method::POST, "/api/clients", None).await
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
                StatusCode::FORBIDDEN => assert_eq!(body, at_limit(), "round {round}"),
                other => panic!("round {round}: unexpected {other}: {body}"),
            }
        }
        assert_eq!(created, 1, "round {round}");
        assert_eq!(count_of(&store, &clients()).await, count(LIMIT, 0));
        assert_eq!(store.stored_reservations().await.expect("read"), 0);
        let john = store.user("john").await.expect("read").expect("john");
        assert_eq!(john.usage.count("clients"), Some(LIMIT), "round {round}");
    }
}

/// A create that answers 500 releases its unit: nothing is counted, nothing stays held, and the
/// next create takes the unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_500_releases_the_reservation() {
    let (_dir, store) = john_with(LIMIT - 1).await;
    let address = serve(counted(&store).build().expect("layer")).await;
    let client = http_client();

    let (status, _) = call(&client, address, Method::POST, "/api/clients", Some(500)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));
    assert_eq!(store.stored_reservations().await.expect("read"), 0);

    let (status, _) = call(&client, address, Method::POST, "/api/clients", None).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT, 0));
    let (status, body) = call(&client, address, Method::POST, "/api/clients", None).await;
    assert_eq!((status, body), (StatusCode::FORBIDDEN, at_limit()));
}

/// At the limit, a delete that succeeds gives one back, so a create passes again; a delete that
/// fails (404) gives nothing back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_delete_gives_one_back() {
    let (_dir, store) = john_with(LIMIT).await;
    let address = serve(counted(&store).build().expect("layer")).await;
    let client = http_client();

    let (status, body) = call(&client, address, Method::POST, "/api/clients", None).await;
    assert_eq!((status, body), (StatusCode::FORBIDDEN, at_limit()));

    let (status, _) = call(
        &client,
        address,
        Method::DELETE,
        "/api/clients/7",
        Some(404),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT, 0));

    let (status, _) = call(&client, address, Method::DELETE, "/api/clients/7", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT - 1, 0));

    let (status, _) = call(&client, address, Method::POST, "/api/clients", None).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT, 0));
    assert_eq!(store.stored_reservations().await.expect("read"), 0);
}

/// Three stores open on one file, as three instances of an application would be, each with its
/// own writer connection: 200 concurrent reservations at `LIMIT - 1`, spread over them, hold
/// exactly one unit, and none fails with `SQLITE_BUSY` (`BEGIN IMMEDIATE` and the busy timeout
/// make writers wait for the file lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_three_stores_on_one_file_hold_exactly_one_unit() {
    const TASKS: usize = 200;
    let (dir, first) = john_with(LIMIT - 1).await;
    let mut stores = vec![first];
    for _ in 0..2 {
        stores.push(SqliteStore::open(dir.db()).await.expect("opens again"));
    }
    let start = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|n| {
            let (store, start) = (stores[n % stores.len()].clone(), Arc::clone(&start));
            tokio::spawn(async move {
                let id = ReservationId::new();
                start.wait().await;
                let reserved = store
                    .reserve_unit(
                        &clients(),
                        Some(LIMIT),
                        Seed::Count(0),
                        id,
                        Duration::from_secs(60),
                    )
                    .await
                    .expect("no SQLITE_BUSY");
                if reserved.is_reserved() {
                    store.commit_unit(&clients(), id).await.expect("committed");
                }
                reserved
            })
        })
        .collect();
    let outcomes = timeout(PATIENCE, futures::future::join_all(tasks))
        .await
        .expect("no hang");
    let mut reserved = 0;
    for outcome in outcomes {
        let outcome = outcome.expect("no panic");
        assert!(outcome.usage() <= LIMIT, "{outcome:?}");
        reserved += usize::from(outcome.is_reserved());
    }
    assert_eq!(reserved, 1);
    assert_eq!(count_of(&stores[2], &clients()).await, count(LIMIT, 0));
}

// ---------------------------------------------------------------------------------------------
// 2. The same data decides the same way in SQLite and in memory.

/// Plans with a trial fallback, per-action limits, a blocked delete, an explicitly unlimited
/// `patch`, a custom action, and a resource named without limits.
const CATALOG: &str = r#"{
    "trial": {"duration": 14, "fallback": "free"},
    "actions": ["export"],
    "plans": [
        {"name": "free", "limits": {
            "clients": 3,
            "projects": {"create": 1, "delete": 0},
            "tasks": {"show": 3, "update": 2},
            "reports": {"export": 1}
        }},
        {"name": "regular", "limits": {"clients": 10, "projects": 5, "reports": {"export": 5}}},
        {"name": "pro", "limits": {
            "clients": 30,
            "projects": null,
            "tasks": {"update": 5, "patch": null},
            "reports": {"export": null}
        }}
    ]
}"#;

/// One user in each state (the clock is [`NOW`]).
const USERS: &[(&str, &str)] = &[
    // free, one client below the limit
    (
        "ann",
        r#"{"name": "ann", "plan": "free", "usage": {"clients": 2}}"#,
    ),
    // a trial of pro that began 30 days ago: back on free
    (
        "bob",
        r#"{"name": "bob", "plan": {"name": "pro", "trial": true, "join": 1697408000000},
            "usage": {"clients": 1}}"#,
    ),
    // no plan
    ("cid", r#"{"name": "cid", "clients": 1}"#),
    // regular, expired
    (
        "dee",
        r#"{"name": "dee", "plan": {"name": "regular", "expire": 1600000000000}}"#,
    ),
    // a plan the catalog does not know
    ("eve", r#"{"name": "eve", "plan": "gold"}"#),
    // a trial of pro that began 3 days ago
    (
        "fay",
        r#"{"name": "fay", "plan": {"name": "pro", "trial": true, "join": 1699740800000}}"#,
    ),
    // free, counted per action
    (
        "gus",
        r#"{"name": "gus", "plan": "free", "usage": {"tasks": {"show": 2, "update": 1}, "reports": 0}}"#,
    ),
    // pro until a date to come
    (
        "hal",
        r#"{"name": "hal", "plan": {"name": "pro", "expire": 1800000000000}, "usage": {"clients": 29}}"#,
    ),
];

/// The requests of the comparison: method, path, user, and the status the handler answers
/// (`0`: its default, `201` for a `POST`, else `200`).
const CASES: &[(&str, &str, Option<&str>, u16)] = &[
    ("POST", "/api/clients", Some("ann"), 0),
    ("POST", "/api/clients", Some("ann"), 0),
    ("GET", "/api/clients", Some("ann"), 0),
    ("DELETE", "/api/clients/1", Some("ann"), 0),
    ("DELETE", "/api/clients/9", Some("ann"), 404),
    ("POST", "/api/clients", Some("ann"), 0),
    ("POST", "/api/clients", Some("ann"), 0),
    ("POST", "/api/clients", Some("bob"), 500),
    ("POST", "/api/clients", Some("bob"), 0),
    ("POST", "/api/projects", Some("bob"), 0),
    ("POST", "/api/projects", Some("bob"), 0),
    ("DELETE", "/api/projects/1", Some("bob"), 0),
    ("POST", "/api/clients", Some("cid"), 0),
    ("GET", "/api/clients", Some("cid"), 0),
    ("POST", "/api/clients", Some("dee"), 0),
    ("POST", "/api/clients", Some("eve"), 0),
    ("POST", "/api/clients", Some("zed"), 0),
    ("GET", "/api/tasks/1", Some("gus"), 0),
    ("GET", "/api/tasks/1", Some("gus"), 0),
    ("PUT", "/api/tasks/1", Some("gus"), 0),
    ("PUT", "/api/tasks/1", Some("gus"), 0),
    ("PATCH", "/api/tasks/1", Some("gus"), 0),
    ("PATCH", "/api/tasks/1", Some("fay"), 0),
    ("PUT", "/api/tasks/1", Some("fay"), 0),
    ("GET", "/api/tasks/1", Some("fay"), 0),
    ("POST", "/api/reports/7/export", Some("gus"), 0),
    ("POST", "/api/reports/7/export", Some("gus"), 0),
    ("POST", "/api/reports/7/export", Some("hal"), 0),
    ("POST", "/api/reports/7/export", Some("dee"), 0),
    ("POST", "/api/clients", Some("hal"), 0),
    ("POST", "/api/clients", Some("hal"), 0),
    ("POST", "/api/clients", Some("fay"), 0),
    ("POST", "/api/clients", None, 0),
    ("GET", "/health", None, 0),
];

/// The comparison's layer over `store` (and counting in `usage`, if given).
fn comparison_layer<S, U>(store: S, usage: Option<U>) -> PlanLimitLayer
where
    S: PlanStore,
    U: UsageStore,
{
    let mut builder = PlanLimitLayer::builder(store)
        .base("/api")
        .route(
            Method::POST,
            "/api/reports/{id}/export",
            "reports",
            Action::custom("export"),
        )
        .clock(|| NOW);
    if let Some(usage) = usage {
        builder = builder.count_usage(usage);
    }
    builder.build().expect("layer")
}

/// Sends one case through `layer` to a handler that answers the case's status with the decision
/// it found; the status and the body.
async fn run_case(
    layer: &PlanLimitLayer,
    (method, path, user, status): (&str, &str, Option<&str>, u16),
) -> (StatusCode, String) {
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    let default = if method == Method::POST { 201 } else { 200 };
    let answer = StatusCode::from_u16(if status == 0 { default } else { status }).expect("code");
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(Bytes::new()))
        .expect("a request");
    if let Some(user) = user {
        request.extensions_mut().insert(UserId::from(user));
    }
    let response = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(move |request: Request<Full<Bytes>>| async move {
            let mut response = Response::new(Full::new(Bytes::from(describe(&request))));
            *response.status_mut() = answer;
            Ok::<_, Infallible>(response)
        })
        .oneshot(request);
    let response = timeout(PATIENCE, response)
        .await
        .expect("no hang")
        .expect("infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Every case through a layer over SQLite and one over memory, holding the same data: the same
/// statuses and bodies (403 bodies, and the decision the handler saw), with the plan store alone
/// and with each store counting its own usage; and the same records at the start and the end.
#[tokio::test]
async fn sqlite_decides_as_the_memory_store_on_the_same_data() {
    for counting in [false, true] {
        let (_dir, sqlite) = loaded(CATALOG, USERS).await;
        let memory = in_memory(CATALOG, USERS);
        assert_eq!(
            sqlite.plans().await.expect("plans"),
            memory.plans().await.expect("plans"),
            "the catalog read back from SQLite"
        );
        for (id, _) in USERS.iter().chain([&("zed", "")]) {
            assert_eq!(
                sqlite.user(id).await.expect("user"),
                memory.user(id).await.expect("user"),
                "{id}'s record read back from SQLite"
            );
        }
        let (over_sqlite, over_memory) = if counting {
            (
                comparison_layer(sqlite.clone(), Some(sqlite.clone())),
                comparison_layer(memory.clone(), Some(memory.clone())),
            )
        } else {
            (
                comparison_layer(sqlite.clone(), None::<MemoryStore>),
                comparison_layer(memory.clone(), None::<MemoryStore>),
            )
        };
        let mut statuses = Vec::new();
        for (n, case) in CASES.iter().enumerate() {
            let from_sqlite = run_case(&over_sqlite, *case).await;
            let from_memory = run_case(&over_memory, *case).await;
            assert_eq!(
                from_sqlite, from_memory,
                "case {n} {case:?} (counting: {counting})"
            );
            statuses.push(from_sqlite.0.as_u16());
        }
        for (id, _) in USERS {
            assert_eq!(
                sqlite.user(id).await.expect("user"),
                memory.user(id).await.expect("user"),
                "{id}'s record after the cases (counting: {counting})"
            );
        }
        // The table covers allowed requests, each kind of 403, a 401 and an ungoverned path.
        for expected in [200, 201, 403, 401, 404, 500] {
            assert!(statuses.contains(&expected), "{expected} in {statuses:?}");
        }
        if counting {
            assert_eq!(sqlite.stored_reservations().await.expect("read"), 0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. The usage store, call by call, against the in-memory store.

#[derive(Clone, Debug)]
enum Op {
    Reserve { id: usize, limit: Option<u64> },
    Commit(usize),
    Release(usize),
    Adjust(i64),
    Set(u64),
    Get,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..4usize, prop_oneof![Just(None), (0u64..6).prop_map(Some)])
            .prop_map(|(id, limit)| Op::Reserve { id, limit }),
        3 => (0..4usize).prop_map(Op::Commit),
        2 => (0..4usize).prop_map(Op::Release),
        1 => (-3i64..4).prop_map(Op::Adjust),
        1 => (0u64..6).prop_map(Op::Set),
        2 => Just(Op::Get),
    ]
}

/// Random sequences of calls on one counter, applied to an SQLite store and to a memory store:
/// every answer is the same. The counter is an item count or an action count; its user has no
/// record, or a record with or without the counter (so the seed is used or ignored).
#[test]
fn sqlite_usage_store_answers_as_the_memory_store() {
    const LEASE: Duration = Duration::from_secs(300);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (_dir, sqlite) = runtime.block_on(fresh());
    let case = AtomicUsize::new(0);
    let strategy = (
        0..3u8,
        any::<bool>(),
        0u64..4,
        proptest::collection::vec(op(), 1..40),
    );
    let mut runner = TestRunner::new(Config::with_cases(96));
    let outcome = runner.run(&strategy, |(start, items, seed, ops)| {
        runtime.block_on(async {
            let user = format!("user{}", case.fetch_add(1, Ordering::Relaxed));
            let counter = if items {
                Counter::items(user.as_str(), "tasks")
            } else {
                Counter::action(user.as_str(), "tasks", Action::Show)
            };
            let memory = MemoryStore::new(Catalog::from_json("[]").expect("catalog"));
            let record = match start {
                0 => None,
                1 => Some(Subscriber::new().with_usage("clients", 1)),
                _ if items => Some(Subscriber::new().with_usage("tasks", seed)),
                _ => Some(Subscriber::new().with_action_usage("tasks", &Action::Show, seed)),
            };
            if let Some(record) = record {
                memory.insert_user(user.as_str(), record.clone());
                sqlite
                    .put_subscriber(&user, &record)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            let ids: Vec<ReservationId> = (0..4).map(|_| ReservationId::new()).collect();
            for op in ops {
                let failed = |e: tower_plans::BoxError| TestCaseError::fail(e.to_string());
                match op {
                    Op::Reserve { id, limit } => {
                        let got = sqlite
                            .reserve_unit(&counter, limit, Seed::Count(seed), ids[id], LEASE)
                            .await;
                        let want = memory
                            .reserve_unit(&counter, limit, Seed::Count(seed), ids[id], LEASE)
                            .await;
                        prop_assert_eq!(got.map_err(failed)?, want.map_err(failed)?, "{:?}", op);
                    }
                    Op::Commit(id) => {
                        let got = sqlite.commit_unit(&counter, ids[id]).await;
                        let want = memory.commit_unit(&counter, ids[id]).await;
                        prop_assert_eq!(got.map_err(failed)?, want.map_err(failed)?, "{:?}", op);
                    }
                    Op::Release(id) => {
                        sqlite
                            .release_unit(&counter, ids[id])
                            .await
                            .map_err(failed)?;
                        memory
                            .release_unit(&counter, ids[id])
                            .await
                            .map_err(failed)?;
                    }
                    Op::Adjust(delta) => {
                        let got = sqlite.adjust(&counter, delta, Seed::Count(seed)).await;
                        let want = memory.adjust(&counter, delta, Seed::Count(seed)).await;
                        prop_assert_eq!(got.map_err(failed)?, want.map_err(failed)?, "{:?}", op);
                    }
                    Op::Set(used) => {
                        sqlite.set(&counter, used).await.map_err(failed)?;
                        memory.set(&counter, used).await.map_err(failed)?;
                    }
                    Op::Get => {}
                }
                let got = sqlite.get(&counter).await.map_err(failed)?;
                let want = memory.get(&counter).await.map_err(failed)?;
                prop_assert_eq!(got, want, "after {:?}", op);
            }
            let got = sqlite
                .user(&user)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let want = memory
                .user(&user)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(got, want, "the record at the end");
            Ok(())
        })
    });
    if let Err(error) = outcome {
        panic!("{error}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Reservations: idempotent by id, leases, purging.

/// The store with a clock the test moves.
async fn clocked() -> (TempDir, SqliteStore, Arc<AtomicU64>) {
    let (dir, store) = john_with(2).await;
    let clock = Arc::new(AtomicU64::new(NOW));
    let now = Arc::clone(&clock);
    let store = store.with_clock(move || now.load(Ordering::SeqCst));
    (dir, store, clock)
}

#[tokio::test]
async fn sqlite_commit_release_and_reserve_are_idempotent_by_id() {
    let (_dir, store, _clock) = clocked().await;
    let lease = Duration::from_secs(60);
    let (first, second) = (ReservationId::new(), ReservationId::new());
    let john = clients();
    let reserve = |id| store.reserve_unit(&john, Some(LIMIT), Seed::Count(0), id, lease);
    assert_eq!(
        reserve(first).await.unwrap(),
        Reserve::Reserved { used: 2, held: 0 }
    );
    // Reserving again renews; it holds nothing more.
    assert_eq!(
        reserve(first).await.unwrap(),
        Reserve::Reserved { used: 2, held: 0 }
    );
    assert_eq!(
        reserve(second).await.unwrap(),
        Reserve::Reserved { used: 2, held: 1 }
    );
    assert_eq!(count_of(&store, &clients()).await, count(2, 2));

    assert_eq!(store.commit_unit(&clients(), first).await.unwrap(), 3);
    assert_eq!(store.commit_unit(&clients(), first).await.unwrap(), 3);
    store.release_unit(&clients(), first).await.unwrap();
    assert_eq!(count_of(&store, &clients()).await, count(3, 1));

    store.release_unit(&clients(), second).await.unwrap();
    store.release_unit(&clients(), second).await.unwrap();
    assert_eq!(store.commit_unit(&clients(), second).await.unwrap(), 3);
    assert_eq!(count_of(&store, &clients()).await, count(3, 0));
    assert_eq!(store.stored_reservations().await.unwrap(), 0);
}

#[tokio::test]
async fn sqlite_expired_reservations_are_ignored_then_purged() {
    let (_dir, store, clock) = clocked().await;
    let lease = Duration::from_secs(10);
    let (first, second, third) = (
        ReservationId::new(),
        ReservationId::new(),
        ReservationId::new(),
    );
    // john has 2 of 5: three units left, and three holds take them.
    for id in [first, second, third] {
        let reserved = store
            .reserve_unit(&clients(), Some(LIMIT), Seed::Count(0), id, lease)
            .await;
        assert!(reserved.unwrap().is_reserved());
    }
    let refused = store
        .reserve_unit(
            &clients(),
            Some(LIMIT),
            Seed::Count(0),
            ReservationId::new(),
            lease,
        )
        .await;
    assert_eq!(refused.unwrap(), Reserve::Refused { used: 2, held: 3 });

    // 9.999 s later the holds still count; at 10 s they do not.
    clock.fetch_add(9_999, Ordering::SeqCst);
    assert_eq!(count_of(&store, &clients()).await, count(2, 3));
    clock.fetch_add(1, Ordering::SeqCst);
    assert_eq!(count_of(&store, &clients()).await, count(2, 0));
    assert_eq!(store.stored_reservations().await.unwrap(), 3);

    // Committing an expired hold counts nothing, and purges this counter's expired holds.
    assert_eq!(store.commit_unit(&clients(), first).await.unwrap(), 2);
    assert_eq!(store.stored_reservations().await.unwrap(), 0);

    // A new hold, then another that expires: purge_expired deletes only the expired one.
    let live = ReservationId::new();
    let reserved = store
        .reserve_unit(&clients(), Some(LIMIT), Seed::Count(0), live, lease * 10)
        .await;
    assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 2, held: 0 });
    let short = ReservationId::new();
    let reserved = store
        .reserve_unit(&clients(), Some(LIMIT), Seed::Count(0), short, lease)
        .await;
    assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 2, held: 1 });
    clock.fetch_add(lease.as_millis() as u64, Ordering::SeqCst);
    assert_eq!(store.purge_expired().await.unwrap(), 1);
    assert_eq!(store.stored_reservations().await.unwrap(), 1);
    assert_eq!(store.commit_unit(&clients(), live).await.unwrap(), 3);

    // An endless lease never expires.
    let endless = ReservationId::new();
    let reserved = store
        .reserve_unit(
            &clients(),
            Some(LIMIT),
            Seed::Count(0),
            endless,
            Duration::MAX,
        )
        .await;
    assert!(reserved.unwrap().is_reserved());
    clock.fetch_add(100 * 365 * 24 * 3_600_000, Ordering::SeqCst);
    assert_eq!(count_of(&store, &clients()).await, count(3, 1));
}

// ---------------------------------------------------------------------------------------------
// 5. Migrations, the example's seed, invalidation, failures.

#[tokio::test]
async fn sqlite_migrations_apply_once_and_keep_the_data() {
    let (dir, store) = john_with(3).await;
    store.close().await;
    let again = SqliteStore::open(dir.db()).await.expect("reopens");
    let versions: Vec<i64> = sqlx_versions(&dir).await;
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7]);
    let john = again.user("john").await.unwrap().expect("john is kept");
    assert_eq!(john.usage.count("clients"), Some(3));
}

/// Migration 4 on a database that the release before it left: a resource whose only count (its
/// quotas aside) was `items` read as a plain count and becomes a `*` row; one with `items` beside
/// action rows read per action and keeps them. Every record reads as it did, and counts on.
#[tokio::test]
async fn sqlite_migration_4_keeps_what_every_record_reads() {
    let dir = TempDir::new();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.db())
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .expect("a pool");
    store::migrate_up_to(&pool, 3)
        .await
        .expect("migrations 1 to 3");
    sqlx::raw_sql(
        "INSERT INTO plans (name) VALUES ('free');
         INSERT INTO plan_resources (plan, resource) VALUES ('free', 'clients'), ('free', 'tasks');
         INSERT INTO plan_limits (plan, resource, action, max) VALUES
             ('free', 'clients', 'update', 3), ('free', 'tasks', 'update', 3);
         INSERT INTO subscribers (id, plan) VALUES ('ann', 'free');
         INSERT INTO usage_counters (user_id, resource, counted, used) VALUES
             ('ann', 'clients', 'items', 3),
             ('ann', 'clients', 'items@2026-11', 1),
             ('ann', 'tasks', 'items', 2),
             ('ann', 'tasks', 'show', 4),
             ('zed', 'clients', 'items', 1);",
    )
    .execute(&pool)
    .await
    .expect("rows as release 3 wrote them");
    pool.close().await;

    let store = SqliteStore::open(dir.db()).await.expect("migrates");
    assert_eq!(sqlx_versions(&dir).await, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(
        counter_rows(&dir, "ann").await,
        [
            row("clients", "*", 3),
            row("clients", "items@2026-11", 1),
            row("tasks", "items", 2),
            row("tasks", "show", 4),
        ]
    );
    assert_eq!(counter_rows(&dir, "zed").await, [row("clients", "*", 1)]);
    let ann = store.user("ann").await.unwrap().expect("ann");
    let before = Subscriber::from_json(
        r#"{"plan": "free", "usage": {"clients": 3, "tasks": {"create": 2, "show": 4}}}"#,
    )
    .unwrap();
    assert_eq!(ann.usage, before.usage);
    // The plain count is the usage of the other actions; a per-action resource's are 0.
    let update = |resource| Counter::action("ann", resource, Action::Update);
    assert_eq!(count_of(&store, &update("clients")).await, count(3, 0));
    assert_eq!(count_of(&store, &update("tasks")).await, count(0, 0));
    assert_eq!(
        count_of(&store, &Counter::items("zed", "clients")).await,
        count(1, 0)
    );
}

/// The schema refuses what the JSON loaders refuse: a misspelt action, a negative limit, a trial
/// without dates, a fallback that is not a plan, a grant of an unknown add-on, a negative
/// quantity, a grant that ends before it starts.
#[tokio::test]
async fn sqlite_schema_refuses_malformed_plans_and_assignments() {
    let (_dir, store) = loaded(CATALOG, USERS).await;
    for bad in [
        "INSERT INTO plan_limits (plan, resource, action, max) VALUES ('free', 'clients', 'craete', 1)",
        "INSERT INTO plan_limits (plan, resource, action, max) VALUES ('free', 'clients', 'index', -1)",
        "INSERT INTO subscribers (id, plan, trial) VALUES ('ivy', 'pro', 1)",
        "UPDATE trial SET fallback = 'gratis'",
        "INSERT INTO plan_limits (plan, resource, action, max, per) VALUES ('free', 'clients', 'index', 5, 'fortnight')",
        "INSERT INTO plan_limits (plan, resource, action, max, per) VALUES ('free', 'clients', 'index', NULL, 'day')",
        "INSERT INTO addons (name) VALUES ('pack'); INSERT INTO addon_resources (addon, resource) VALUES ('pack', 'clients'); INSERT INTO addon_limits (addon, resource, action, max, per) VALUES ('pack', 'clients', 'index', 5, 'hour')",
        "INSERT INTO subscriber_addons (user_id, addon) VALUES ('ann', 'more-client')",
        "INSERT INTO addons (name) VALUES ('pack'); INSERT INTO subscriber_addons (user_id, addon, quantity) VALUES ('ann', 'pack', -1)",
        "INSERT INTO addons (name) VALUES ('pack'); INSERT INTO subscriber_addons (user_id, addon, starts_ms, expires_ms) VALUES ('ann', 'pack', 10, 9)",
        "INSERT INTO addons (name) VALUES ('pack'); INSERT INTO addon_resources (addon, resource) VALUES ('pack', 'clients'); INSERT INTO addon_limits (addon, resource, action, max) VALUES ('pack', 'clients', 'craete', 1)",
    ] {
        assert!(store.execute_script(bad).await.is_err(), "{bad}");
    }
    // A quota is a limit with a period, on a plan or an add-on.
    let quotas = "INSERT INTO plan_limits (plan, resource, action, max, per) VALUES ('free', 'clients', 'index', 5, 'day'); \
        INSERT INTO addons (name) VALUES ('pack'); INSERT INTO addon_resources (addon, resource) VALUES ('pack', 'clients'); \
        INSERT INTO addon_limits (addon, resource, action, max, per) VALUES ('pack', 'clients', 'index', 5, 'week')";
    store
        .execute_script(quotas)
        .await
        .expect("quotas are limits with a period");
    // A declared custom action may be limited.
    let export = "INSERT INTO plan_limits (plan, resource, action, max) VALUES ('regular', 'clients', 'export', 2)";
    store
        .execute_script(export)
        .await
        .expect("export is declared");
}

/// A quota round-trips through the tables, and its counters stay out of the record's usage.
#[tokio::test]
async fn sqlite_quotas_load_and_count_per_period() {
    use tower_plans::catalog::{Limit, Period};

    let plans = r#"{"plans": [{"name": "free", "limits": {
        "clients": 3, "reports": {"create": {"max": 2, "per": "month"}}
    }}]}"#;
    let (_dir, store) = loaded(plans, &[("john", r#"{"plan": "free", "clients": 1}"#)]).await;
    let catalog = store.plans().await.unwrap();
    let free = catalog.plan("free").unwrap();
    assert_eq!(
        free.limit("reports", &Action::Create),
        Limit::per(2, Period::Month)
    );
    assert_eq!(*catalog, *in_memory(plans, &[]).plans().await.unwrap());

    let now = 1_795_953_600_000;
    let november =
        Counter::action("john", "reports", Action::Create).in_period(Period::Month.window(now));
    let december = Counter::action("john", "reports", Action::Create)
        .in_period(Period::Month.window(Period::Month.window(now).end()));
    let id = ReservationId::new();
    let lease = Duration::from_secs(60);
    let reserved = store
        .reserve_unit(&november, Some(2), Seed::Count(0), id, lease)
        .await;
    assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 0, held: 0 });
    assert_eq!(store.commit_unit(&november, id).await.unwrap(), 1);
    assert_eq!(count_of(&store, &november).await, count(1, 0));
    assert_eq!(count_of(&store, &december).await, None);
    // The record knows nothing of the period counts.
    let john = store.user("john").await.unwrap().unwrap();
    assert_eq!(john.usage.count("reports"), None);
    assert_eq!(john.usage.action_count("reports", &Action::Create), None);
    assert_eq!(john.usage.count("clients"), Some(1));
}

/// One row of `usage_counters`: resource, counted, used.
type Row = (String, String, i64);

fn row(resource: &str, counted: &str, used: i64) -> Row {
    (resource.to_owned(), counted.to_owned(), used)
}

/// A user's rows of `usage_counters`, in order, read on a connection of its own.
async fn counter_rows(dir: &TempDir, user: &str) -> Vec<Row> {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.db());
    let mut connection = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("a connection");
    let rows = sqlx::query_as(
        "SELECT resource, counted, used FROM usage_counters WHERE user_id = ?1
          ORDER BY resource, counted",
    )
    .bind(user)
    .fetch_all(&mut connection)
    .await
    .expect("the rows");
    let _ = connection.close().await;
    rows
}

/// The versions recorded in `schema_migrations`, read on a connection of its own.
async fn sqlx_versions(dir: &TempDir) -> Vec<i64> {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.db());
    let mut connection = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("a connection");
    let versions = sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(&mut connection)
        .await
        .expect("the versions");
    let _ = connection.close().await;
    versions
}

/// The example's `seed.sql` holds the quickstart fixture's plans and users, but for the
/// business plan and its user heidi: their billing cycle, soft limit and rate have no place in
/// the example's schema, and its tour (the quickstart's `tour()`) does not use them.
#[tokio::test]
async fn sqlite_example_seed_holds_the_quickstart_fixture() {
    let mut fixture: Value =
        serde_json::from_str(include_str!("../../examples/quickstart.json")).expect("fixture");
    let plans = fixture["plans"]["plans"].as_array_mut().expect("plans");
    plans.retain(|plan| plan["name"] != "business");
    let users = fixture["users"].as_object_mut().expect("users");
    assert!(
        users.remove("heidi").is_some(),
        "heidi is on the business plan"
    );
    let memory = MemoryStore::from_values(&fixture["plans"], &fixture["users"]).expect("fixture");
    let (_dir, sqlite) = fresh().await;
    sqlite
        .execute_script(include_str!("../../examples/sqlite/seed.sql"))
        .await
        .expect("the seed runs");
    assert_eq!(sqlite.plans().await.unwrap(), memory.plans().await.unwrap());
    let users = fixture["users"].as_object().expect("users");
    assert_eq!(users.len(), 7);
    for id in users.keys() {
        assert_eq!(
            sqlite.user(id).await.unwrap(),
            memory.user(id).await.unwrap(),
            "{id}"
        );
    }
}

/// With a user cache, a plan changed in the database is seen once the layer is told.
#[tokio::test]
async fn sqlite_an_admin_plan_change_is_seen_after_invalidation() {
    let (_dir, store) = john_with(LIMIT).await;
    let layer = counted(&store)
        .user_cache(UserCache::time_to_live(Duration::from_secs(3600), 100))
        .build()
        .expect("layer");
    let create = || ("POST", "/api/clients", Some("john"), 0);
    assert_eq!(run_case(&layer, create()).await.0, StatusCode::FORBIDDEN);

    let changed = store.set_plan("john", Some(&Assignment::new("pro"))).await;
    assert!(changed.unwrap());
    // The layer still holds john's record on free.
    assert_eq!(run_case(&layer, create()).await.0, StatusCode::FORBIDDEN);
    layer.invalidator().user("john");
    assert_eq!(run_case(&layer, create()).await.0, StatusCode::CREATED);
    assert_eq!(count_of(&store, &clients()).await, count(LIMIT + 1, 0));

    // Unknown users and plans change nothing.
    assert!(!store.set_plan("nobody", None).await.unwrap());
    let gold = Assignment::new("gold");
    assert!(!store.set_plan("john", Some(&gold)).await.unwrap());
}

/// A database that fails answers 503 with the generic body; its error text stays in the logs.
#[tokio::test]
async fn sqlite_a_failing_database_answers_503_without_its_error() {
    let (_dir, store) = john_with(1).await;
    let layer = counted(&store).build().expect("layer");
    let create = ("POST", "/api/clients", Some("john"), 0);
    assert_eq!(run_case(&layer, create).await.0, StatusCode::CREATED);
    store.close().await;
    let (status, body) = run_case(&layer, create).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, r#"{"reason":"plan_store_unavailable"}"#);
    assert!(store.user("john").await.is_err(), "the pool is closed");
}

// ---------------------------------------------------------------------------------------------
// 6. A plain count and the actions' own counts, row by row.

/// john on free, where tasks allow 10 creates, 7 shows and 5 updates, any number of deletes,
/// with `usage` as his tasks' usage.
async fn tasks_with(usage: &str) -> (TempDir, SqliteStore) {
    let plans = r#"{"plans": [{"name": "free", "limits": {
        "tasks": {"create": 10, "show": 7, "update": 5, "delete": null}
    }}]}"#;
    let record = format!(r#"{{"plan": "free", "usage": {{{usage}}}}}"#);
    loaded(plans, &[("john", &record)]).await
}

/// One request of john's on tasks through `layer`: the status, and the usage a 403 reports.
async fn tasks(layer: &PlanLimitLayer, method: &str) -> (StatusCode, Option<u64>) {
    let path = if method == "POST" {
        "/api/tasks"
    } else {
        "/api/tasks/1"
    };
    let (status, body) = run_case(layer, (method, path, Some("john"), 0)).await;
    let usage = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|body| body["usage"].as_u64());
    (status, usage.filter(|_| status == StatusCode::FORBIDDEN))
}

/// A plain count is the item count and the usage of every action without a row of its own,
/// before and after an action has one: a show counted on its own row leaves the updates reading
/// the plain count, which creates and deletes move.
#[tokio::test]
async fn sqlite_a_plain_count_stays_the_usage_of_actions_without_a_row() {
    let (dir, store) = tasks_with(r#""tasks": 5"#).await;
    let layer = counted(&store).build().expect("layer");
    assert_eq!(counter_rows(&dir, "john").await, [row("tasks", "*", 5)]);

    // A show (limit 7) reads 5 and counts on a row of its own.
    assert_eq!(tasks(&layer, "GET").await, (StatusCode::OK, None));
    let rows = [row("tasks", "*", 5), row("tasks", "show", 6)];
    assert_eq!(counter_rows(&dir, "john").await, rows);
    // An update (limit 5) still reads the plain count: refused at 5.
    assert_eq!(tasks(&layer, "PUT").await, (StatusCode::FORBIDDEN, Some(5)));
    // A create raises the plain count, which the update reads.
    assert_eq!(tasks(&layer, "POST").await.0, StatusCode::CREATED);
    assert_eq!(tasks(&layer, "PUT").await, (StatusCode::FORBIDDEN, Some(6)));
    // Two deletes lower it; an update passes and gets a row of its own.
    for _ in 0..2 {
        assert_eq!(tasks(&layer, "DELETE").await.0, StatusCode::OK);
    }
    assert_eq!(tasks(&layer, "PUT").await, (StatusCode::OK, None));
    assert_eq!(
        counter_rows(&dir, "john").await,
        [
            row("tasks", "*", 4),
            row("tasks", "show", 6),
            row("tasks", "update", 5)
        ]
    );
    // The show reads its own row: one more, then refused at 7.
    assert_eq!(tasks(&layer, "GET").await, (StatusCode::OK, None));
    assert_eq!(tasks(&layer, "GET").await, (StatusCode::FORBIDDEN, Some(7)));
    let john = store.user("john").await.unwrap().expect("john");
    assert_eq!(john.usage.count("tasks"), Some(4));
    assert_eq!(john.usage.get("tasks", &Action::Index), 4);
    assert_eq!(john.usage.action_count("tasks", &Action::Show), Some(7));
    assert_eq!(john.usage.action_count("tasks", &Action::Update), Some(5));
    assert_eq!(store.stored_reservations().await.unwrap(), 0);
}

/// A refused request, and a released one, write nothing: no row for the action, no change to
/// the plain count, no hold left; so the action goes on reading the plain count.
#[tokio::test]
async fn sqlite_a_refused_or_released_request_writes_nothing() {
    let (dir, store) = tasks_with(r#""tasks": 5"#).await;
    let layer = counted(&store).build().expect("layer");
    let before = counter_rows(&dir, "john").await;
    assert_eq!(tasks(&layer, "PUT").await, (StatusCode::FORBIDDEN, Some(5)));
    let failed = run_case(&layer, ("GET", "/api/tasks/1", Some("john"), 500)).await;
    assert_eq!(failed.0, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(counter_rows(&dir, "john").await, before);

    // The same through the store: a refused reservation and a released one.
    let update = Counter::action("john", "tasks", Action::Update);
    let lease = Duration::from_secs(60);
    let refused = store
        .reserve_unit(
            &update,
            Some(5),
            Seed::Count(0),
            ReservationId::new(),
            lease,
        )
        .await;
    assert_eq!(refused.unwrap(), Reserve::Refused { used: 5, held: 0 });
    let id = ReservationId::new();
    let reserved = store
        .reserve_unit(&update, Some(6), Seed::Count(0), id, lease)
        .await;
    assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 5, held: 0 });
    store.release_unit(&update, id).await.unwrap();
    assert_eq!(counter_rows(&dir, "john").await, before);
    assert_eq!(store.stored_reservations().await.unwrap(), 0);

    // A create moves the plain count, and the update (still without a row) follows it.
    assert_eq!(tasks(&layer, "POST").await.0, StatusCode::CREATED);
    assert_eq!(count_of(&store, &update).await, count(6, 0));
}

/// A resource counted per action: an action without a row reads 0 (not another action's
/// count), and creates count on `items`, the record's `create` count.
#[tokio::test]
async fn sqlite_a_resource_counted_per_action_reads_0_for_unlisted_actions() {
    let (dir, store) = tasks_with(r#""tasks": {"show": 6}"#).await;
    let layer = counted(&store).build().expect("layer");
    assert_eq!(tasks(&layer, "PUT").await, (StatusCode::OK, None));
    assert_eq!(tasks(&layer, "POST").await.0, StatusCode::CREATED);
    assert_eq!(tasks(&layer, "GET").await, (StatusCode::OK, None));
    assert_eq!(tasks(&layer, "GET").await, (StatusCode::FORBIDDEN, Some(7)));
    assert_eq!(
        counter_rows(&dir, "john").await,
        [
            row("tasks", "items", 1),
            row("tasks", "show", 7),
            row("tasks", "update", 1)
        ]
    );
    let john = store.user("john").await.unwrap().expect("john");
    assert_eq!(john.usage.count("tasks"), None);
    assert_eq!(john.usage.action_count("tasks", &Action::Create), Some(1));
    assert_eq!(john.usage.get("tasks", &Action::Index), 0);
    // A delete takes the item back from `items`.
    assert_eq!(tasks(&layer, "DELETE").await.0, StatusCode::OK);
    assert_eq!(
        count_of(&store, &Counter::items("john", "tasks")).await,
        count(0, 0)
    );
}

/// A resource the record does not name reads as a plain count of 0: an action's first row there
/// comes with a `*` row of 0, which creates then raise and the other actions read.
#[tokio::test]
async fn sqlite_an_unnamed_resource_reads_as_a_plain_count_of_0() {
    let (dir, store) = tasks_with("").await;
    let layer = counted(&store).build().expect("layer");
    assert!(counter_rows(&dir, "john").await.is_empty());
    assert_eq!(tasks(&layer, "GET").await, (StatusCode::OK, None));
    assert_eq!(
        counter_rows(&dir, "john").await,
        [row("tasks", "*", 0), row("tasks", "show", 1)]
    );
    for _ in 0..5 {
        assert_eq!(tasks(&layer, "POST").await.0, StatusCode::CREATED);
    }
    // The update has no row: it reads the plain count, 5 of 5.
    assert_eq!(tasks(&layer, "PUT").await, (StatusCode::FORBIDDEN, Some(5)));
    assert_eq!(
        counter_rows(&dir, "john").await,
        [row("tasks", "*", 5), row("tasks", "show", 1)]
    );
    let john = store.user("john").await.unwrap().expect("john");
    assert_eq!(john.usage.count("tasks"), Some(5));
    assert_eq!(john.usage.get("tasks", &Action::Show), 1);

    // The same through `set` on a resource without rows: a plain count of 0 comes first.
    let archive = Counter::action("john", "notes", Action::custom("archive"));
    store.set(&archive, 2).await.unwrap();
    let notes: Vec<Row> = counter_rows(&dir, "john")
        .await
        .into_iter()
        .filter(|(resource, ..)| resource == "notes")
        .collect();
    assert_eq!(notes, [row("notes", "*", 0), row("notes", "archive", 2)]);
}

/// A user without a record (the store beside another plan store) has counters of their own,
/// created at their seed when first used, as in memory: a refused reservation creates it, a
/// later seed does not move it, and no counter reads another.
#[tokio::test]
async fn sqlite_a_user_without_a_record_counts_from_the_seeds() {
    let (dir, sqlite) = fresh().await;
    let memory = in_memory(PLANS, &[]);
    let lease = Duration::from_secs(60);
    let show = Counter::action("zed", "tasks", Action::Show);
    let items = Counter::items("zed", "tasks");
    let id = ReservationId::new();
    let steps: [(&Counter, Option<u64>, u64, ReservationId); 4] = [
        (&show, Some(3), 3, ReservationId::new()),
        (&show, Some(5), 0, ReservationId::new()),
        (&items, Some(5), 2, id),
        (&show, Some(4), 9, ReservationId::new()),
    ];
    for (counter, limit, seed, id) in steps {
        let got = sqlite
            .reserve_unit(counter, limit, Seed::Count(seed), id, lease)
            .await
            .unwrap();
        let want = memory
            .reserve_unit(counter, limit, Seed::Count(seed), id, lease)
            .await
            .unwrap();
        assert_eq!(got, want, "{counter} limit {limit:?} seed {seed}");
    }
    assert_eq!(sqlite.commit_unit(&items, id).await.unwrap(), 3);
    assert_eq!(memory.commit_unit(&items, id).await.unwrap(), 3);
    for counter in [&show, &items] {
        assert_eq!(
            sqlite.get(counter).await.unwrap(),
            memory.get(counter).await.unwrap()
        );
    }
    // The show: not created by the refusal, created at 0 by its first reservation, two units
    // held, a later seed of 9 unused.
    assert_eq!(count_of(&sqlite, &show).await, count(0, 2));
    assert_eq!(
        counter_rows(&dir, "zed").await,
        [row("tasks", "items", 3), row("tasks", "show", 0)]
    );
    assert_eq!(sqlite.user("zed").await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// 7. The counting model of the layer tests, over SQLite.

/// Runs `case` through a layer over the in-memory store that does not count and one over a
/// fresh SQLite database (plans, record and counts) that does, against the model.
async fn against_the_model(case: &model::Case) -> Result<(), String> {
    let (_dir, sqlite) = fresh().await;
    let catalog = Catalog::from_value(&case.catalog).map_err(|e| e.to_string())?;
    sqlite
        .import_catalog(&catalog)
        .await
        .map_err(|e| e.to_string())?;
    let record = Subscriber::from_value(&case.record).map_err(|e| e.to_string())?;
    sqlite
        .put_subscriber("u", &record)
        .await
        .map_err(|e| e.to_string())?;
    let off = model::builder(case.store())
        .build()
        .map_err(|e| e.to_string())?;
    let on = model::builder(sqlite.clone())
        .count_usage(sqlite.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let outcome = model::run(case, &off, &on).await;
    sqlite.close().await;
    outcome
}

/// The differential property of the layer tests (`support/counting_differential.rs`) with SQLite
/// as the plan store and the usage store of the layer that counts: random catalogs, records and
/// request sequences, each answer checked against the read-only decision (in memory) and the
/// model of the counters. A fresh database per case; `PROPTEST_CASES` runs more.
#[test]
fn sqlite_counts_as_the_model_says() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let config = ProptestConfig {
        cases: model::cases(64),
        // The shrunk cases it found are the regression tests below.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(case in model::case())| {
        let outcome = runtime.block_on(against_the_model(&case));
        prop_assert!(outcome.is_ok(), "{}\ncase: {:?}", outcome.unwrap_err(), case);
    });
}

/// One case of the model over SQLite, as the property runs it.
async fn model_regression(catalog: Value, record: Value, requests: &[(usize, model::Op)]) {
    let case = model::Case {
        catalog,
        record,
        requests: requests.to_vec(),
    };
    if let Err(difference) = against_the_model(&case).await {
        panic!("{difference}");
    }
}

/// A catalog of the property's shape whose plan `plan` has these limits.
fn model_catalog(plan: &str, limits: Value) -> Value {
    let mut catalog = json!({
        "trial": {"duration": 14, "fallback": "free"},
        "actions": ["archive"],
        "plans": [{"name": "free", "limits": {}}, {"name": "pro", "limits": {}}],
        "addons": [{"name": "extra", "limits": {}}],
    });
    catalog["plans"][usize::from(plan == "pro")]["limits"] = limits;
    catalog
}

// The cases of the in-memory regressions (`differential.rs`), over SQLite: a plain count stays
// the usage of the other actions after a refusal; a refused request creates no row; a resource
// the record does not name reads as a plain count of 0; a PATCH counts on the count it reads.
#[tokio::test]
async fn sqlite_model_regressions_of_the_plain_count() {
    use model::Op::{Create, Delete, List, Patch, Put, Show};

    model_regression(
        model_catalog("free", json!({"clients": {"delete": 0, "patch": 0}})),
        json!({"name": "u", "plan": "free", "usage": {"clients": 1}}),
        &[(0, Patch), (0, Delete)],
    )
    .await;
    model_regression(
        model_catalog("pro", json!({"clients": {"show": 0, "update": 0}})),
        json!({"name": "u", "plan": "pro", "usage": {}}),
        &[(0, Show), (0, Create), (0, Show)],
    )
    .await;
    model_regression(
        model_catalog("free", json!({"notes": {"index": 0}})),
        json!({"name": "u", "plan": "free", "usage": {"notes": 1}}),
        &[(2, List), (2, Create), (2, List)],
    )
    .await;
    model_regression(
        model_catalog("free", json!({"tasks": {"patch": 1, "show": 0}})),
        json!({"name": "u", "plan": "free", "usage": {}}),
        &[(1, Patch), (1, Create), (1, Show)],
    )
    .await;
    model_regression(
        model_catalog("free", json!({"tasks": {"update": 4}})),
        json!({"name": "u", "plan": "free", "usage": {"tasks": {"patch": 3}}}),
        &[(1, Patch), (1, Put), (1, Patch), (1, Put)],
    )
    .await;
}

// Found by the property over SQLite: a resource counted per action with no action listed
// (`"clients": {}`) had no rows, which read as a plain count of 0, so that a create raised what
// the shows read. It is stored as a `create` count of 0.
#[tokio::test]
async fn sqlite_model_an_empty_per_action_resource_stays_counted_per_action() {
    use model::Op::{Create, Show};

    model_regression(
        model_catalog("pro", json!({"clients": {"show": 0}})),
        json!({"name": "u", "plan": "pro", "usage": {"clients": {}}}),
        &[(0, Create), (0, Show)],
    )
    .await;
}

/// A record may hold a plain count and a `create` count together (counted usage written back
/// with `Usage::set_action`): a create reads the `create` count first, so the item count is the
/// `items` row, and the plain count stays the usage of the other actions.
#[tokio::test]
async fn sqlite_a_create_count_beside_a_plain_count_is_the_item_count() {
    let (dir, store) = fresh().await;
    let record = Subscriber::new()
        .with_plan(Assignment::new("free"))
        .with_usage("tasks", 5)
        .with_action_usage("tasks", &Action::Create, 2);
    store.put_subscriber("john", &record).await.unwrap();
    let items = Counter::items("john", "tasks");
    assert_eq!(count_of(&store, &items).await, count(2, 0));
    let id = ReservationId::new();
    let lease = Duration::from_secs(60);
    let reserved = store
        .reserve_unit(&items, Some(3), Seed::Count(0), id, lease)
        .await;
    assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 2, held: 0 });
    assert_eq!(store.commit_unit(&items, id).await.unwrap(), 3);
    assert_eq!(store.adjust(&items, -1, Seed::Count(0)).await.unwrap(), 2);
    assert_eq!(
        counter_rows(&dir, "john").await,
        [row("tasks", "*", 5), row("tasks", "items", 2)]
    );
    let update = Counter::action("john", "tasks", Action::Update);
    assert_eq!(count_of(&store, &update).await, count(5, 0));
}

// ---------------------------------------------------------------------------------------------
// 8. Reservations of several units on several counters: the usage store suite, pools and
//    grants, and the same answers as the in-memory store.

/// The usage store suite (`support/usage_conformance.rs`) against a fresh database, its users
/// without a record.
#[tokio::test]
async fn sqlite_passes_the_usage_store_suite() {
    let (_dir, store) = fresh().await;
    suite::all(&store, "sqlite").await;
}

/// 200 concurrent reservations of 5 units against a pool with 15 left: exactly 3 pass, and the
/// pool ends at its maximum with nothing held.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_costs_against_a_pool_let_exactly_what_fits_through() {
    let (_dir, store) = fresh().await;
    suite::concurrent_costs(Arc::new(store.clone()), "sqlite-costs", 1000, 15, 5, 200).await;
    assert_eq!(store.stored_reservations().await.unwrap(), 0);
}

/// Calls spread over several stores open on one file, in turn, as the instances of an
/// application would make them: a reservation may be held through one and committed through
/// another.
struct Spread {
    stores: Vec<SqliteStore>,
    next: AtomicUsize,
}

impl Spread {
    fn next(&self) -> &SqliteStore {
        let at = self.next.fetch_add(1, Ordering::Relaxed);
        &self.stores[at % self.stores.len()]
    }
}

impl UsageStore for Spread {
    fn reserve<'a>(&'a self, hold: &'a Hold, lease: Duration) -> StoreFuture<'a, Held> {
        self.next().reserve(hold, lease)
    }

    fn commit<'a>(&'a self, hold: &'a Hold, spent: &'a [u64]) -> StoreFuture<'a, ()> {
        self.next().commit(hold, spent)
    }

    fn release<'a>(&'a self, hold: &'a Hold) -> StoreFuture<'a, ()> {
        self.next().release(hold)
    }

    fn adjust<'a>(&'a self, counter: &'a Counter, delta: i64, seed: Seed) -> StoreFuture<'a, u64> {
        self.next().adjust(counter, delta, seed)
    }

    fn set<'a>(&'a self, counter: &'a Counter, used: u64) -> StoreFuture<'a, ()> {
        self.next().set(counter, used)
    }

    fn get<'a>(&'a self, counter: &'a Counter) -> StoreFuture<'a, Option<Count>> {
        self.next().get(counter)
    }

    fn mark<'a>(&'a self, counter: &'a Counter, mark: &'a str) -> StoreFuture<'a, bool> {
        self.next().mark(counter, mark)
    }
}

/// The same 200 reservations of 5 units spread over three stores open on one file, each with
/// its own writer connection: exactly 3 pass, none fails with `SQLITE_BUSY`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_costs_over_three_stores_on_one_file() {
    let (dir, first) = fresh().await;
    let mut stores = vec![first];
    for _ in 0..2 {
        stores.push(SqliteStore::open(dir.db()).await.expect("opens again"));
    }
    let spread = Arc::new(Spread {
        stores: stores.clone(),
        next: AtomicUsize::new(0),
    });
    let run = suite::concurrent_costs(spread, "sqlite-three", 1000, 15, 5, 200);
    timeout(PATIENCE, run).await.expect("no hang");
    assert_eq!(stores[1].stored_reservations().await.unwrap(), 0);
}

/// Of 200 concurrent calls marking one alert marker, spread over three stores open on one file,
/// exactly one sets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_marks_over_three_stores_on_one_file_set_each_marker_once() {
    let (dir, first) = fresh().await;
    let mut stores: Vec<Arc<dyn UsageStore>> = vec![Arc::new(first)];
    for _ in 0..2 {
        stores.push(Arc::new(
            SqliteStore::open(dir.db()).await.expect("opens again"),
        ));
    }
    let run = suite::concurrent_marks_over(&stores, "sqlite-marks", 200);
    timeout(PATIENCE, run).await.expect("no hang");
}

/// Markers of a period are kept one period after it ends, then purged with the expired
/// reservations; a lifetime counter's markers stay.
#[tokio::test]
async fn sqlite_purges_the_markers_of_periods_long_over() {
    let (_dir, store) = fresh().await;
    let clock = Arc::new(AtomicU64::new(NOW));
    let store = store.with_clock({
        let clock = Arc::clone(&clock);
        move || clock.load(Ordering::SeqCst)
    });
    let month = tower_plans::catalog::Period::Month.window(NOW);
    let monthly = Counter::action("john", "reports", Action::Create).in_period(month);
    let lifetime = Counter::action("john", "reports", Action::Create);
    assert!(store.mark(&monthly, "alert:80%").await.unwrap());
    assert!(store.mark(&lifetime, "alert:80%").await.unwrap());
    let kept_until = monthly.marks_kept_until().expect("a period counter");
    assert_eq!(kept_until, month.end() + (month.end() - month.start()));
    // Just before: both stay, and are still set.
    clock.store(kept_until - 1, Ordering::SeqCst);
    store.purge_expired().await.unwrap();
    assert_eq!(store.stored_marks().await.unwrap(), 2);
    assert!(!store.mark(&monthly, "alert:80%").await.unwrap());
    // Then the month's goes; the lifetime counter's stays.
    clock.store(kept_until, Ordering::SeqCst);
    store.purge_expired().await.unwrap();
    assert_eq!(store.stored_marks().await.unwrap(), 1);
    assert!(!store.mark(&lifetime, "alert:80%").await.unwrap());
}

/// A credit pool and its grants are rows of their own: never part of the record, kept when the
/// record is replaced, and a pool named as a resource is not read as that resource's usage.
#[tokio::test]
async fn sqlite_pools_and_grants_are_rows_of_their_own() {
    let (dir, store) = tasks_with(r#""tasks": 5"#).await;
    let lease = Duration::from_secs(60);
    let pool = Counter::credits("john", "tasks");
    let grant = Counter::grant("john", "tasks", "g1");
    let show = Counter::action("john", "tasks", Action::Show);
    let hold = Hold::new(ReservationId::new())
        .with(
            Line::new(pool.clone(), 12)
                .limit(Some(10))
                .grant(Spill::new(grant.clone(), 5)),
        )
        .with(Line::new(show.clone(), 1).limit(Some(7)));
    // The pool starts at 0; the show reads the plain count.
    let held = store.reserve(&hold, lease).await.unwrap();
    assert_eq!(
        held,
        Held::Reserved([Count { used: 0, held: 0 }, Count { used: 5, held: 0 }].into())
    );
    assert_eq!(count_of(&store, &pool).await, count(0, 10));
    assert_eq!(count_of(&store, &grant).await, count(0, 2));
    store.commit(&hold, &[]).await.unwrap();
    assert_eq!(
        counter_rows(&dir, "john").await,
        [
            row("tasks", "$credits", 10),
            row("tasks", "$grant:g1", 2),
            row("tasks", "*", 5),
            row("tasks", "show", 6),
        ]
    );
    // The record knows nothing of the pool; the other actions still read the plain count.
    let john = store.user("john").await.unwrap().expect("john");
    let expected =
        Subscriber::new()
            .with_usage("tasks", 5)
            .with_action_usage("tasks", &Action::Show, 6);
    assert_eq!(john.usage, expected.usage);
    let update = Counter::action("john", "tasks", Action::Update);
    assert_eq!(count_of(&store, &update).await, count(5, 0));

    // A pool on a resource the record does not name: an action's first row there still comes
    // with the plain count of 0 that the other actions read.
    let notes = Counter::credits("john", "notes");
    let hold = Hold::new(ReservationId::new()).with(Line::new(notes.clone(), 3).limit(Some(10)));
    assert!(store.reserve(&hold, lease).await.unwrap().is_reserved());
    store.commit(&hold, &[]).await.unwrap();
    let archive = Counter::action("john", "notes", Action::Show);
    let id = ReservationId::new();
    let reserved = store
        .reserve_unit(&archive, Some(5), Seed::Count(0), id, lease)
        .await;
    assert!(reserved.unwrap().is_reserved());
    store.commit_unit(&archive, id).await.unwrap();
    let notes_rows: Vec<Row> = counter_rows(&dir, "john")
        .await
        .into_iter()
        .filter(|(resource, ..)| resource == "notes")
        .collect();
    assert_eq!(
        notes_rows,
        [
            row("notes", "$credits", 3),
            row("notes", "*", 0),
            row("notes", "show", 1)
        ]
    );

    // Replacing the record replaces its usage; what was drawn from the pools stays.
    let record = Subscriber::from_json(r#"{"plan": "free", "usage": {"tasks": 1}}"#).unwrap();
    store.put_subscriber("john", &record).await.unwrap();
    assert_eq!(
        counter_rows(&dir, "john").await,
        [
            row("notes", "$credits", 3),
            row("tasks", "$credits", 10),
            row("tasks", "$grant:g1", 2),
            row("tasks", "*", 1),
        ]
    );
    assert_eq!(count_of(&store, &pool).await, count(10, 0));
    assert_eq!(store.stored_reservations().await.unwrap(), 0);
}

/// `items`, `*`, names starting with `$` and names holding `@` are the counters' own: a
/// catalog that declares such a custom action is refused with its name, the schema refuses it,
/// and counting it is an error, not a row read as another counter.
#[tokio::test]
async fn sqlite_custom_actions_keep_clear_of_the_counters_names() {
    let (_dir, store) = fresh().await;
    let lease = Duration::from_secs(60);
    for name in ["items", "*", "$credits", "$grant:g1", "$", "export@2026-11"] {
        let mut catalog = json!({
            "actions": [name],
            "plans": [{"name": "free", "limits": {"reports": {}}}]
        });
        catalog["plans"][0]["limits"]["reports"][name] = json!(1);
        let catalog =
            Catalog::from_value(&catalog).expect("the catalog itself allows any custom name");
        let refused = store.import_catalog(&catalog).await.unwrap_err();
        assert!(
            refused.to_string().contains(&format!("`{name}`")),
            "{name}: {refused}"
        );
        let insert = format!("INSERT INTO actions (name) VALUES ('{name}')");
        assert!(store.execute_script(&insert).await.is_err(), "{name}");
        let counter = Counter::action("john", "reports", Action::custom(name));
        let reserve = store
            .reserve_unit(
                &counter,
                Some(1),
                Seed::Count(0),
                ReservationId::new(),
                lease,
            )
            .await;
        assert!(reserve.is_err(), "{name}");
        let record = Subscriber::new().with_action_usage("reports", &Action::custom(name), 1);
        assert!(
            store.put_subscriber("john", &record).await.is_err(),
            "{name}"
        );
    }
    assert!(store.has_no_plans().await.unwrap(), "nothing imported");
    assert_eq!(store.stored_reservations().await.unwrap(), 0);
    // Names beside them are fine.
    let catalog = Catalog::from_value(&json!({
        "actions": ["credits", "grant:g1", "item"],
        "plans": [{"name": "free", "limits": {"reports": {"credits": 1}}}]
    }))
    .unwrap();
    store.import_catalog(&catalog).await.expect("imported");
    assert_eq!(*store.plans().await.unwrap(), catalog);
}

/// Migration 5 on a database that the release before it left: each reservation held one unit
/// of one counter, and still does; the store counts and commits it as before.
#[tokio::test]
async fn sqlite_migration_5_keeps_the_holds_as_single_units() {
    let dir = TempDir::new();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.db())
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .expect("a pool");
    store::migrate_up_to(&pool, 4)
        .await
        .expect("migrations 1 to 4");
    let (first, second) = (ReservationId::new(), ReservationId::new());
    let holds = format!(
        "INSERT INTO subscribers (id) VALUES ('john');
         INSERT INTO usage_counters (user_id, resource, counted, used) VALUES
             ('john', 'clients', '*', 2);
         INSERT INTO reservations (id, user_id, resource, counted, expires_ms) VALUES
             ('{first}', 'john', 'clients', 'items', {live}),
             ('{second}', 'john', 'clients', 'items', {live}),
             ('{expired}', 'john', 'clients', 'items', 1);",
        live = NOW + 60_000,
        expired = ReservationId::new(),
    );
    sqlx::raw_sql(&holds)
        .execute(&pool)
        .await
        .expect("rows as release 4 wrote them");
    pool.close().await;

    let store = SqliteStore::open(dir.db())
        .await
        .expect("migrates")
        .with_clock(|| NOW);
    assert_eq!(sqlx_versions(&dir).await, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(count_of(&store, &clients()).await, count(2, 2));
    assert_eq!(store.stored_reservations().await.unwrap(), 3);
    assert_eq!(store.commit_unit(&clients(), first).await.unwrap(), 3);
    store.release_unit(&clients(), second).await.unwrap();
    assert_eq!(count_of(&store, &clients()).await, count(3, 0));
    assert_eq!(store.stored_reservations().await.unwrap(), 0);
    // The schema now holds several units per row, never none.
    let bad = format!(
        "INSERT INTO reservations (id, user_id, resource, counted, units, expires_ms)
         VALUES ('{}', 'john', 'clients', 'items', 0, {})",
        ReservationId::new(),
        NOW + 60_000
    );
    assert!(store.execute_script(&bad).await.is_err());
}

#[derive(Clone, Debug)]
enum HoldOp {
    /// Reserve for `id`: `units` of the pool (which spills over to its two grants) and, with
    /// `action`, one create of images.
    Reserve {
        id: usize,
        units: u64,
        action: bool,
    },
    /// Commit `id`, each line having spent `spent` (`None`: what it held).
    Commit {
        id: usize,
        spent: Option<u64>,
    },
    Release(usize),
    /// Adjust the pool's used count.
    Adjust(i64),
}

fn hold_op() -> impl Strategy<Value = HoldOp> {
    prop_oneof![
        5 => (0..4usize, 0u64..9, any::<bool>())
            .prop_map(|(id, units, action)| HoldOp::Reserve { id, units, action }),
        3 => (0..4usize, prop_oneof![Just(None), (0u64..14).prop_map(Some)])
            .prop_map(|(id, spent)| HoldOp::Commit { id, spent }),
        2 => (0..4usize).prop_map(HoldOp::Release),
        1 => (-4i64..5).prop_map(HoldOp::Adjust),
    ]
}

/// Random sequences of reservations of several units, on a pool with two grants and an
/// action's count, applied to an SQLite store and to a memory store: every answer and every
/// count is the same. The pool may be unlimited; the user has a record or not.
/// `PROPTEST_CASES` runs more.
#[test]
fn sqlite_holds_answer_as_the_memory_store() {
    const LEASE: Duration = Duration::from_secs(300);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (_dir, sqlite) = runtime.block_on(fresh());
    let case = AtomicUsize::new(0);
    let strategy = (
        any::<bool>(),
        prop_oneof![Just(None), (0u64..12).prop_map(Some)],
        (0u64..6, 0u64..6),
        (0u64..4, 0u64..4),
        proptest::collection::vec(hold_op(), 1..30),
    );
    let mut runner = TestRunner::new(Config::with_cases(model::cases(96)));
    let outcome = runner.run(
        &strategy,
        |(recorded, pool_limit, (first, second), (images_limit, seed), ops)| {
            runtime.block_on(async {
                let failed = |e: tower_plans::BoxError| TestCaseError::fail(e.to_string());
                let user = format!("holder{}", case.fetch_add(1, Ordering::Relaxed));
                let memory = MemoryStore::new(Catalog::from_json("[]").expect("catalog"));
                if recorded {
                    let record = Subscriber::new().with_usage("images", seed);
                    memory.insert_user(user.as_str(), record.clone());
                    sqlite
                        .put_subscriber(&user, &record)
                        .await
                        .map_err(failed)?;
                }
                let pool = Counter::credits(user.as_str(), "ai");
                let grants = [
                    Spill::new(Counter::grant(user.as_str(), "ai", "soon"), first),
                    Spill::new(Counter::grant(user.as_str(), "ai", "late"), second),
                ];
                let images = Counter::action(user.as_str(), "images", Action::Create);
                let ids: Vec<ReservationId> = (0..4).map(|_| ReservationId::new()).collect();
                // The hold each id reserved last, committed and released as it was.
                let mut holds: Vec<Option<Hold>> = vec![None; ids.len()];
                for op in ops {
                    match &op {
                        HoldOp::Reserve { id, units, action } => {
                            let mut line = Line::new(pool.clone(), *units).limit(pool_limit);
                            for grant in &grants {
                                line = line.grant(grant.clone());
                            }
                            let mut hold = Hold::new(ids[*id]).with(line);
                            if *action {
                                hold.push(
                                    Line::new(images.clone(), 1)
                                        .limit(Some(images_limit))
                                        .seed(Seed::Count(seed)),
                                );
                            }
                            let got = sqlite.reserve(&hold, LEASE).await.map_err(failed)?;
                            let want = memory.reserve(&hold, LEASE).await.map_err(failed)?;
                            prop_assert_eq!(got, want, "{:?}", op);
                            holds[*id] = Some(hold);
                        }
                        HoldOp::Commit { id, spent } => {
                            let hold = holds[*id].clone().unwrap_or_else(|| Hold::new(ids[*id]));
                            let spent: Vec<u64> = spent
                                .map(|spent| vec![spent; hold.lines().len()])
                                .unwrap_or_default();
                            sqlite.commit(&hold, &spent).await.map_err(failed)?;
                            memory.commit(&hold, &spent).await.map_err(failed)?;
                        }
                        HoldOp::Release(id) => {
                            let hold = holds[*id].clone().unwrap_or_else(|| Hold::new(ids[*id]));
                            sqlite.release(&hold).await.map_err(failed)?;
                            memory.release(&hold).await.map_err(failed)?;
                        }
                        HoldOp::Adjust(delta) => {
                            let got = sqlite.adjust(&pool, *delta, Seed::Count(0)).await;
                            let want = memory.adjust(&pool, *delta, Seed::Count(0)).await;
                            prop_assert_eq!(got.map_err(failed)?, want.map_err(failed)?);
                        }
                    }
                    let counters = [&pool, grants[0].counter(), grants[1].counter(), &images];
                    for counter in counters {
                        let got = sqlite.get(counter).await.map_err(failed)?;
                        let want = memory.get(counter).await.map_err(failed)?;
                        prop_assert_eq!(got, want, "{} after {:?}", counter, op);
                    }
                }
                let got = sqlite.user(&user).await.map_err(failed)?;
                let want = memory.user(&user).await.map_err(failed)?;
                prop_assert_eq!(got, want, "the record at the end");
                Ok(())
            })
        },
    );
    if let Err(error) = outcome {
        panic!("{error}");
    }
}

/// Counts are exact up to `u64::MAX`, in the record too: the row keeps the 64 bits (it reads
/// -1 for `u64::MAX`). Past `i64::MAX` the guard, which computes on SQLite integers, refuses a
/// limited reservation rather than guess; an unlimited one still holds, and commits saturate.
#[tokio::test]
async fn sqlite_counts_are_exact_up_to_u64_max() {
    let (dir, store) = john_with(0).await;
    let lease = Duration::from_secs(60);
    store.set(&clients(), u64::MAX - 1).await.unwrap();
    assert_eq!(count_of(&store, &clients()).await, count(u64::MAX - 1, 0));
    let john = store.user("john").await.unwrap().expect("john");
    assert_eq!(john.usage.count("clients"), Some(u64::MAX - 1));
    assert_eq!(counter_rows(&dir, "john").await, [row("clients", "*", -2)]);

    let limited = store
        .reserve_unit(
            &clients(),
            Some(u64::MAX),
            Seed::Count(0),
            ReservationId::new(),
            lease,
        )
        .await;
    assert_eq!(
        limited.unwrap(),
        Reserve::Refused {
            used: u64::MAX - 1,
            held: 0
        }
    );
    assert_eq!(store.stored_reservations().await.unwrap(), 0);
    let id = ReservationId::new();
    let unlimited = store
        .reserve_unit(&clients(), None, Seed::Count(0), id, lease)
        .await;
    assert!(unlimited.unwrap().is_reserved());
    let hold = Hold::unit(clients(), None, Seed::Count(0), id);
    store.commit(&hold, &[3]).await.unwrap();
    assert_eq!(count_of(&store, &clients()).await, count(u64::MAX, 0));
    assert_eq!(counter_rows(&dir, "john").await, [row("clients", "*", -1)]);
    assert_eq!(
        store.adjust(&clients(), -1, Seed::Count(0)).await.unwrap(),
        u64::MAX - 1
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Metered plans: meters, credit pools and grants in the catalog and the records.

/// A catalog with every form of meter and pool: fixed costs from a pool and from the action's
/// own limit (on a custom action), reported meters with and without an estimate, a metered
/// resource that no plan names; monthly, weekly, lifetime and unlimited pools on plans, and
/// add-ons that raise pools (one only that, one with limits beside).
const METERED: &str = r#"{
    "trial": {"duration": 14, "fallback": "free"},
    "actions": ["export"],
    "plans": [
        {"name": "free", "limits": {"clients": 3}, "credits": {"ai": {"max": 8, "per": "month"}}},
        {"name": "team", "limits": {"clients": 10},
         "credits": {"ai": {"max": 50, "per": "week"}, "img": 100}},
        {"name": "pro", "limits": {"images": {"create": 30}, "reports": {"export": 10}},
         "credits": {"ai": {"max": 10, "per": "month"}, "img": null}}
    ],
    "addons": [
        {"name": "ai-pack", "credits": {"ai": 50}},
        {"name": "day-pack", "limits": {"clients": 1},
         "credits": {"ai": {"max": 20, "per": "day"}}},
        {"name": "all-images", "credits": {"img": null}}
    ],
    "meters": {
        "images": {"create": {"cost": 5, "credits": "ai"}, "update": {"credits": "img"}},
        "chat": {"create": {"credits": "ai", "report": true, "estimate": 20}},
        "summaries": {"create": {"report": true}},
        "reports": {"export": {"cost": 3}},
        "videos": {"destroy": {"cost": 2}}
    }
}"#;

/// 2023-12-01T00:00:00Z: the end of [`NOW`]'s month.
const DECEMBER: u64 = 1_701_388_800_000;

/// A day in milliseconds.
const DAY_MS: u64 = 86_400_000;

/// Records with grants of credits: john's listed latest-expiring first, with one not started
/// yet; kim's add-on raises her pool until December; lou's plan has no pool of its own.
fn metered_users() -> Vec<(&'static str, String)> {
    vec![
        (
            "john",
            format!(
                r#"{{"name": "john", "plan": "pro", "grants": [
                    {{"id": "g-late", "credits": "ai", "amount": 20, "expires": {late}}},
                    {{"id": "g-soon", "credits": "ai", "amount": 20, "expires": {soon}}},
                    {{"id": "g-next", "credits": "ai", "amount": 10, "starts": {soon}}},
                    {{"id": "g-img", "credits": "img", "amount": 0, "starts": 0, "expires": 0}}
                ]}}"#,
                late = DECEMBER + 365 * DAY_MS,
                soon = DECEMBER + 31 * DAY_MS,
            ),
        ),
        (
            "kim",
            format!(
                r#"{{"name": "kim", "plan": "pro",
                    "addons": [{{"name": "ai-pack", "starts": 0, "expires": {DECEMBER}}}]}}"#
            ),
        ),
        (
            "lou",
            r#"{"name": "lou", "plan": {"name": "team", "expire": 1800000000000},
                "grants": [{"id": "lone", "credits": "video", "amount": 7}]}"#
                .to_owned(),
        ),
    ]
}

/// [`metered_users`] as `loaded` and `in_memory` take them.
fn metered_records<'a>(users: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    users
        .iter()
        .map(|(id, record)| (*id, record.as_str()))
        .collect()
}

/// One row of `meters`: resource, action, cost, report, estimate, pool.
type MeterRow = (
    String,
    String,
    Option<i64>,
    bool,
    Option<i64>,
    Option<String>,
);

/// The rows of `meters`, in order, read on a connection of its own.
async fn meter_rows(dir: &TempDir) -> Vec<MeterRow> {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.db());
    let mut connection = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("a connection");
    let rows = sqlx::query_as(
        "SELECT resource, action, cost, report, estimate, pool FROM meters
          ORDER BY resource, action",
    )
    .fetch_all(&mut connection)
    .await
    .expect("the rows");
    let _ = connection.close().await;
    rows
}

fn meter_row(
    resource: &str,
    action: &str,
    cost: Option<i64>,
    estimate: Option<i64>,
    pool: Option<&str>,
) -> MeterRow {
    (
        resource.to_owned(),
        action.to_owned(),
        cost,
        estimate.is_some(),
        estimate,
        pool.map(str::to_owned),
    )
}

/// Runs `sql` on a connection of its own that ignores the CHECK constraints: rows that the
/// schema refuses, as a tool that bypassed it would leave them.
async fn write_unchecked(dir: &TempDir, sql: &str) {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.db());
    let mut connection = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("a connection");
    sqlx::raw_sql("PRAGMA ignore_check_constraints = ON")
        .execute(&mut connection)
        .await
        .expect("checks off");
    sqlx::raw_sql(sql)
        .execute(&mut connection)
        .await
        .expect("the rows written");
    let _ = connection.close().await;
}

/// Meters, plan and add-on pools and grants of credits round-trip through the tables: the
/// catalog and the records read back are those of the JSON, and equal what the in-memory store
/// holds. A meter keeps its cost, or its estimate when reported (`NULL` for what it does not
/// have); grants keep the record's order. A new catalog replaces meters and pools; a new
/// record replaces grants.
#[tokio::test]
async fn sqlite_meters_pools_and_grants_round_trip() {
    let users = metered_users();
    let records = metered_records(&users);
    let (dir, store) = loaded(METERED, &records).await;
    let memory = in_memory(METERED, &records);
    let catalog = store.plans().await.expect("the catalog reads back");
    assert_eq!(*catalog, Catalog::from_json(METERED).unwrap());
    assert_eq!(catalog, memory.plans().await.unwrap());
    let pro = catalog.plan("pro").expect("pro");
    assert_eq!(
        pro.credits("ai"),
        Some(tower_plans::catalog::Limit::per(
            10,
            tower_plans::catalog::Period::Month
        ))
    );
    assert_eq!(
        pro.credits("img"),
        Some(tower_plans::catalog::Limit::Unlimited)
    );
    let chat = catalog
        .cost("chat", &Action::Create)
        .expect("chat is metered");
    assert_eq!(
        (chat.units(), chat.pool(), chat.is_reported()),
        (20, Some("ai"), true)
    );
    assert!(
        catalog.is_governed("videos"),
        "a metered resource is governed"
    );
    for (id, record) in &records {
        let read = store.user(id).await.unwrap().expect("a record");
        assert_eq!(*read, Subscriber::from_json(record).unwrap(), "{id}");
        assert_eq!(Some(read), memory.user(id).await.unwrap(), "{id}");
    }
    let john = store.user("john").await.unwrap().unwrap();
    let order: Vec<&str> = john.grants.iter().map(|grant| &*grant.id).collect();
    assert_eq!(order, ["g-late", "g-soon", "g-next", "g-img"]);
    assert_eq!(
        meter_rows(&dir).await,
        [
            meter_row("chat", "create", None, Some(20), Some("ai")),
            meter_row("images", "create", Some(5), None, Some("ai")),
            meter_row("images", "update", Some(1), None, Some("img")),
            meter_row("reports", "export", Some(3), None, None),
            meter_row("summaries", "create", None, Some(1), None),
            meter_row("videos", "delete", Some(2), None, None),
        ]
    );

    // A catalog without meters or pools replaces them (kim's add-on stays: she holds it).
    let plain = r#"{"plans": [{"name": "pro", "limits": {"clients": 3}}],
        "addons": [{"name": "ai-pack", "limits": {"clients": 1}}]}"#;
    store
        .import_catalog(&Catalog::from_json(plain).unwrap())
        .await
        .expect("replaced");
    assert_eq!(
        *store.plans().await.unwrap(),
        Catalog::from_json(plain).unwrap()
    );
    assert_eq!(meter_rows(&dir).await, []);
    // And back.
    store
        .import_catalog(&Catalog::from_json(METERED).unwrap())
        .await
        .expect("replaced again");
    assert_eq!(
        *store.plans().await.unwrap(),
        Catalog::from_json(METERED).unwrap()
    );

    // A new record replaces the grants; a user without a record has none to read.
    let fewer = Subscriber::from_json(
        r#"{"plan": "pro", "grants": [{"id": "g-soon", "credits": "ai", "amount": 5}]}"#,
    )
    .unwrap();
    store.put_subscriber("john", &fewer).await.unwrap();
    assert_eq!(*store.user("john").await.unwrap().unwrap(), fewer);
    assert_eq!(store.user("zed").await.unwrap(), None);
}

/// The schema refuses what the catalog and record readers refuse: a cost or an estimate below
/// 1, an estimate on a meter that is not reported and a cost on one that is, an unknown action,
/// an empty resource, a pool that no plan or add-on declares (also by dropping or renaming the
/// last declaration of a pool a meter draws from, or deleting its plan), a negative allowance,
/// a period without a maximum or an unknown one, pools of unknown plans and add-ons; grants of
/// unknown users, with a negative amount, an empty id or pool, a duplicate id, or that expire
/// before they start.
#[tokio::test]
async fn sqlite_schema_refuses_malformed_meters_pools_and_grants() {
    let users = metered_users();
    let (_dir, store) = loaded(METERED, &metered_records(&users)).await;
    for bad in [
        "INSERT INTO meters (resource, action, cost) VALUES ('maps', 'create', 0)",
        "INSERT INTO meters (resource, action, cost) VALUES ('maps', 'create', -5)",
        "INSERT INTO meters (resource, action, report, estimate) VALUES ('maps', 'create', 1, 0)",
        "INSERT INTO meters (resource, action, estimate) VALUES ('maps', 'create', 5)",
        "INSERT INTO meters (resource, action, report, cost) VALUES ('maps', 'create', 1, 5)",
        "INSERT INTO meters (resource, action, report) VALUES ('maps', 'create', 2)",
        "INSERT INTO meters (resource, action) VALUES ('maps', 'craete')",
        "INSERT INTO meters (resource, action) VALUES ('', 'create')",
        "INSERT INTO meters (resource, action, pool) VALUES ('maps', 'create', 'a1')",
        "INSERT INTO meters (resource, action, pool) VALUES ('maps', 'create', '')",
        "INSERT INTO meters (resource, action) VALUES ('images', 'create')",
        "UPDATE meters SET pool = 'a1' WHERE resource = 'images'",
        "DELETE FROM addon_credits WHERE pool = 'img'; DELETE FROM plan_credits WHERE pool = 'img'",
        "DELETE FROM addon_credits WHERE pool = 'img'; UPDATE plan_credits SET pool = 'image' WHERE pool = 'img'",
        "DELETE FROM plan_credits WHERE pool = 'img'; UPDATE addon_credits SET pool = 'image' WHERE pool = 'img'",
        "DELETE FROM addon_credits WHERE pool = 'img'; DELETE FROM plan_credits WHERE pool = 'img' AND plan <> 'pro'; DELETE FROM plans WHERE name = 'pro'",
        "INSERT INTO plan_credits (plan, pool, max) VALUES ('free', 'img', -1)",
        "INSERT INTO plan_credits (plan, pool, max, per) VALUES ('free', 'img', NULL, 'month')",
        "INSERT INTO plan_credits (plan, pool, max, per) VALUES ('free', 'img', 5, 'hour')",
        "INSERT INTO plan_credits (plan, pool, max) VALUES ('gold', 'img', 5)",
        "INSERT INTO plan_credits (plan, pool, max) VALUES ('free', '', 5)",
        "INSERT INTO plan_credits (plan, pool, max) VALUES ('free', 'ai', 5)",
        "INSERT INTO addon_credits (addon, pool, max) VALUES ('gold-pack', 'img', 5)",
        "INSERT INTO addon_credits (addon, pool, max, per) VALUES ('ai-pack', 'img', 5, 'fortnight')",
        "INSERT INTO subscriber_grants (user_id, id, pool, amount) VALUES ('nobody', 'g1', 'ai', 5)",
        "INSERT INTO subscriber_grants (user_id, id, pool, amount) VALUES ('kim', 'g1', 'ai', -1)",
        "INSERT INTO subscriber_grants (user_id, id, pool, amount) VALUES ('kim', '', 'ai', 5)",
        "INSERT INTO subscriber_grants (user_id, id, pool, amount) VALUES ('kim', 'g1', '', 5)",
        "INSERT INTO subscriber_grants (user_id, id, pool, amount) VALUES ('john', 'g-soon', 'ai', 5)",
        "INSERT INTO subscriber_grants (user_id, id, pool, amount, starts_ms, expires_ms) VALUES ('kim', 'g1', 'ai', 5, 10, 9)",
        "INSERT INTO subscriber_grants (user_id, id, pool, amount, starts_ms) VALUES ('kim', 'g1', 'ai', 5, -1)",
    ] {
        assert!(store.execute_script(bad).await.is_err(), "{bad}");
    }
    // Nothing of it was kept.
    assert_eq!(
        *store.plans().await.unwrap(),
        Catalog::from_json(METERED).unwrap()
    );
    // What the readers allow: a meter on a custom action or a resource no plan names, from the
    // action's own limit; dropping one of two declarations of a pool; a grant of a pool that
    // no plan declares, and of one that starts and ends at once.
    for good in [
        "INSERT INTO meters (resource, action) VALUES ('maps', 'export')",
        "INSERT INTO meters (resource, action, report, pool) VALUES ('maps', 'create', 1, 'img')",
        "DELETE FROM addon_credits WHERE pool = 'img'",
        "INSERT INTO subscriber_grants (user_id, id, pool, amount, starts_ms, expires_ms) VALUES ('kim', 'g1', 'gold', 5, 9, 9)",
    ] {
        store.execute_script(good).await.expect(good);
    }
    let catalog = store.plans().await.expect("still a catalog");
    let maps = catalog.cost("maps", &Action::Create).expect("metered");
    assert_eq!(
        (maps.units(), maps.pool(), maps.is_reported()),
        (1, Some("img"), true)
    );
    assert_eq!(store.user("kim").await.unwrap().unwrap().grants.len(), 1);
}

/// Rows that slipped past the schema (written with its checks off) are errors that name the
/// meter, the pool or the grant, never a catalog or a record that says something else.
#[tokio::test]
async fn sqlite_bad_meter_pool_and_grant_rows_are_errors_that_name_them() {
    let users = metered_users();
    let records = metered_records(&users);
    let catalog_cases: &[(&str, &[&str])] = &[
        (
            "UPDATE meters SET cost = 0 WHERE resource = 'images' AND action = 'create'",
            &["meters.images.create.cost"],
        ),
        (
            "UPDATE meters SET cost = 5 WHERE resource = 'chat'",
            &["the meter of `chat.create`", "fixed cost (5)"],
        ),
        (
            "UPDATE meters SET estimate = 5 WHERE resource = 'reports'",
            &["the meter of `reports.export`", "estimate (5)"],
        ),
        (
            "UPDATE meters SET estimate = -3 WHERE resource = 'chat'",
            &["the meter of `chat.create`", "negative"],
        ),
        (
            "DROP TRIGGER meters_draw_from_declared_pools_on_update;
             UPDATE meters SET pool = 'a1' WHERE resource = 'images' AND action = 'create'",
            &["meters.images.create.credits", "`a1`"],
        ),
        (
            "UPDATE plan_credits SET per = 'fortnight' WHERE plan = 'pro' AND pool = 'ai'",
            &["plan `pro`, credit pool `ai`", "fortnight"],
        ),
        (
            "UPDATE addon_credits SET max = -1 WHERE addon = 'ai-pack'",
            &["add-on `ai-pack`, credit pool `ai`", "negative"],
        ),
    ];
    for (sql, named) in catalog_cases {
        let (dir, store) = loaded(METERED, &records).await;
        write_unchecked(&dir, sql).await;
        let error = store.plans().await.expect_err(sql).to_string();
        for name in *named {
            assert!(error.contains(name), "{sql}: {error}");
        }
        // The records still read.
        assert!(store.user("john").await.is_ok(), "{sql}");
    }
    let grant_cases: &[(&str, &[&str])] = &[
        (
            "UPDATE subscriber_grants SET amount = -1 WHERE id = 'g-soon'",
            &["the grant `g-soon` of `john`", "negative"],
        ),
        (
            "UPDATE subscriber_grants SET starts_ms = 10, expires_ms = 9 WHERE id = 'g-late'",
            &["the grant `g-late` of `john`", "before it starts"],
        ),
        (
            "UPDATE subscriber_grants SET expires_ms = -2 WHERE id = 'g-late'",
            &["the grant `g-late` of `john`", "negative"],
        ),
        (
            "UPDATE subscriber_grants SET pool = '' WHERE id = 'g-next'",
            &["the grant `g-next` of `john`", "without an id or a pool"],
        ),
    ];
    for (sql, named) in grant_cases {
        let (dir, store) = loaded(METERED, &records).await;
        write_unchecked(&dir, sql).await;
        let error = store.user("john").await.expect_err(sql).to_string();
        for name in *named {
            assert!(error.contains(name), "{sql}: {error}");
        }
        assert!(store.plans().await.is_ok(), "{sql}");
        assert!(store.user("kim").await.is_ok(), "{sql}");
    }
}

/// What does not fit the tables is refused with its name, and nothing is written: a pool's
/// allowance or a meter's units past `i64::MAX`, a grant's amount too, and two grants with one
/// id in a record built in Rust (the JSON reader refuses them itself).
#[tokio::test]
async fn sqlite_imports_name_what_does_not_fit() {
    use tower_plans::catalog::{Cost, Limit, Plan};
    use tower_plans::subscriber::CreditGrant;

    let (_dir, store) = fresh().await;
    let huge_pool = Catalog::builder()
        .plan(Plan::new("pro").with_credits("ai", Limit::Limited(u64::MAX)))
        .build()
        .unwrap();
    let error = store.import_catalog(&huge_pool).await.unwrap_err();
    assert!(
        error.to_string().contains("plan `pro`, credit pool `ai`"),
        "{error}"
    );
    let huge_meter = Catalog::builder()
        .plan(Plan::new("pro").with_credits("ai", Limit::Limited(10)))
        .meter(
            "images",
            Action::Create,
            Cost::fixed(u64::MAX).from_pool("ai"),
        )
        .build()
        .unwrap();
    let error = store.import_catalog(&huge_meter).await.unwrap_err();
    assert!(
        error.to_string().contains("the meter of `images.create`"),
        "{error}"
    );
    assert!(store.has_no_plans().await.unwrap(), "nothing imported");

    let record = Subscriber::new()
        .with_plan(Assignment::new("pro"))
        .with_grant(CreditGrant::new("g1", "ai", 5));
    store.put_subscriber("john", &record).await.unwrap();
    for bad in [
        record.clone().with_grant(CreditGrant::new("g1", "ai", 7)),
        record
            .clone()
            .with_grant(CreditGrant::new("g2", "ai", u64::MAX)),
        record
            .clone()
            .with_grant(CreditGrant::new("g2", "ai", 1).expires_at(u64::MAX)),
    ] {
        let error = store.put_subscriber("john", &bad).await.unwrap_err();
        let id = &bad.grants[1].id;
        assert!(
            error
                .to_string()
                .contains(&format!("the grant `{id}` of `john`")),
            "{error}"
        );
        assert_eq!(*store.user("john").await.unwrap().unwrap(), record);
    }
}

/// Migration 6 on a database that release 5 left, with its counters of pools and grants, and a
/// hold on several counters: everything reads and counts as before, the new tables start empty,
/// and a metered catalog and grants can then be stored beside what was counted.
#[tokio::test]
async fn sqlite_migration_6_keeps_the_data() {
    let dir = TempDir::new();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.db())
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .expect("a pool");
    store::migrate_up_to(&pool, 5)
        .await
        .expect("migrations 1 to 5");
    let held = ReservationId::new();
    let rows = format!(
        "INSERT INTO plans (name, position) VALUES ('free', 0), ('pro', 1);
         INSERT INTO plan_resources (plan, resource) VALUES ('free', 'clients'), ('pro', 'images');
         INSERT INTO plan_limits (plan, resource, action, max) VALUES
             ('free', 'clients', 'create', 3), ('pro', 'images', 'create', 30);
         INSERT INTO addons (name) VALUES ('more-clients');
         INSERT INTO addon_resources (addon, resource) VALUES ('more-clients', 'clients');
         INSERT INTO addon_limits (addon, resource, action, max) VALUES
             ('more-clients', 'clients', 'create', 10);
         INSERT INTO subscribers (id, name, plan) VALUES ('john', 'john', 'pro');
         INSERT INTO subscriber_addons (user_id, addon, quantity)
             VALUES ('john', 'more-clients', 2);
         INSERT INTO usage_counters (user_id, resource, counted, used) VALUES
             ('john', 'clients', '*', 2),
             ('john', 'ai', '$credits@2023-11', 7),
             ('john', 'ai', '$grant:g1', 4);
         INSERT INTO reservations (id, user_id, resource, counted, units, expires_ms) VALUES
             ('{held}', 'john', 'ai', '$credits@2023-11', 3, {live}),
             ('{held}', 'john', 'ai', '$grant:g1', 2, {live});",
        live = NOW + 60_000,
    );
    sqlx::raw_sql(&rows)
        .execute(&pool)
        .await
        .expect("rows as release 5 wrote them");
    pool.close().await;

    let store = SqliteStore::open(dir.db())
        .await
        .expect("migrates")
        .with_clock(|| NOW);
    assert_eq!(sqlx_versions(&dir).await, (1..=7).collect::<Vec<i64>>());
    let before = r#"{"plans": [
        {"name": "free", "limits": {"clients": 3}},
        {"name": "pro", "limits": {"images": {"create": 30}}}
    ], "addons": [{"name": "more-clients", "limits": {"clients": 10}}]}"#;
    assert_eq!(
        *store.plans().await.unwrap(),
        Catalog::from_json(before).unwrap()
    );
    let john = r#"{"name": "john", "plan": "pro", "usage": {"clients": 2},
        "addons": [{"name": "more-clients", "quantity": 2}]}"#;
    assert_eq!(
        *store.user("john").await.unwrap().unwrap(),
        Subscriber::from_json(john).unwrap()
    );
    let november =
        Counter::credits("john", "ai").in_period(tower_plans::catalog::Period::Month.window(NOW));
    let grant = Counter::grant("john", "ai", "g1");
    assert_eq!(count_of(&store, &november).await, count(7, 3));
    assert_eq!(count_of(&store, &grant).await, count(4, 2));
    assert_eq!(meter_rows(&dir).await, []);

    // The hold commits as before.
    let hold = Hold::new(held).with(
        Line::new(november.clone(), 5)
            .limit(Some(10))
            .grant(Spill::new(grant.clone(), 20)),
    );
    store.commit(&hold, &[]).await.unwrap();
    assert_eq!(count_of(&store, &november).await, count(10, 0));
    assert_eq!(count_of(&store, &grant).await, count(6, 0));

    // Metering now: the pool and the grant that the counters were kept for.
    let metered = r#"{"plans": [
        {"name": "free", "limits": {"clients": 3}},
        {"name": "pro", "limits": {"images": {"create": 30}},
         "credits": {"ai": {"max": 10, "per": "month"}}}
    ], "addons": [{"name": "more-clients", "limits": {"clients": 10}}],
       "meters": {"images": {"create": {"cost": 5, "credits": "ai"}}}}"#;
    store
        .import_catalog(&Catalog::from_json(metered).unwrap())
        .await
        .unwrap();
    let topped = r#"{"name": "john", "plan": "pro", "usage": {"clients": 2},
        "addons": [{"name": "more-clients", "quantity": 2}],
        "grants": [{"id": "g1", "credits": "ai", "amount": 20}]}"#;
    store
        .put_subscriber("john", &Subscriber::from_json(topped).unwrap())
        .await
        .unwrap();
    assert_eq!(
        *store.plans().await.unwrap(),
        Catalog::from_json(metered).unwrap()
    );
    assert_eq!(
        *store.user("john").await.unwrap().unwrap(),
        Subscriber::from_json(topped).unwrap()
    );
    assert_eq!(count_of(&store, &grant).await, count(6, 0));
}

/// One step of the metered comparison: when, who, what, and what the handler does (reports
/// `report` units on the request's meter; answers `status`, 0 for its default).
struct MeteredStep {
    at: u64,
    user: &'static str,
    method: &'static str,
    path: &'static str,
    report: Option<u64>,
    status: u16,
}

/// What answered a metered step: the status, the rate-limit headers and the body.
type MeteredAnswer = (StatusCode, Vec<(String, String)>, String);

/// Sends `step` through `layer` to a handler that reports on the request's meter and answers
/// the decision it found, as JSON.
async fn metered_call(layer: &PlanLimitLayer, step: &MeteredStep) -> MeteredAnswer {
    let method = Method::from_bytes(step.method.as_bytes()).expect("a method");
    let default = if method == Method::POST { 201 } else { 200 };
    let status = if step.status == 0 {
        default
    } else {
        step.status
    };
    let answer = StatusCode::from_u16(status).expect("a status");
    let report = step.report;
    let mut request = Request::builder()
        .method(method)
        .uri(step.path)
        .body(Full::new(Bytes::new()))
        .expect("a request");
    request.extensions_mut().insert(UserId::from(step.user));
    let response = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(move |request: Request<Full<Bytes>>| async move {
            if let (Some(meter), Some(units)) =
                (request.extensions().get::<tower_plans::Meter>(), report)
            {
                meter.report(units);
            }
            let allowed = request.extensions().get::<tower_plans::Allowed>();
            let body = serde_json::to_string(&allowed).expect("JSON");
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = answer;
            Ok::<_, Infallible>(response)
        })
        .oneshot(request);
    let response = timeout(PATIENCE, response)
        .await
        .expect("no hang")
        .expect("infallible");
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("ratelimit") || *name == "retry-after")
        .map(|(name, value)| {
            let value = value.to_str().expect("a text header").to_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    // The body's end settles a metered request.
    let body = timeout(PATIENCE, response.into_body().collect())
        .await
        .expect("no hang")
        .expect("a body")
        .to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// The layer of the metered comparison over `store`, counting in `usage`, on `clock`.
fn metered_layer<S, U>(store: S, usage: U, clock: &Arc<AtomicU64>) -> PlanLimitLayer
where
    S: PlanStore,
    U: UsageStore,
{
    let clock = Arc::clone(clock);
    PlanLimitLayer::builder(store)
        .base("/api")
        .route(
            Method::POST,
            "/api/reports/{id}/export",
            "reports",
            Action::custom("export"),
        )
        .clock(move || clock.load(Ordering::Relaxed))
        .count_usage(usage)
        .rate_limit_headers(true)
        .build()
        .expect("layer")
}

/// The allowance's `used` and each active grant's `remaining`, as the entitlements list the
/// `ai` pool.
fn ai_balances(
    entitlements: &tower_plans::entitlements::Entitlements,
) -> (u64, Vec<(String, u64)>) {
    let ai = entitlements
        .credits
        .iter()
        .find(|pool| &*pool.pool == "ai")
        .expect("an ai pool");
    let grants = ai
        .grants
        .iter()
        .map(|grant| (grant.id.to_string(), grant.remaining))
        .collect();
    (ai.used, grants)
}

fn balances(used: u64, grants: &[(&str, u64)]) -> (u64, Vec<(String, u64)>) {
    let grants = grants
        .iter()
        .map(|(id, remaining)| ((*id).to_owned(), *remaining))
        .collect();
    (used, grants)
}

/// A pool with grants, through the real layer over SQLite and over memory holding the same
/// data: every status, `RateLimit` header and body, and every user's entitlements after each
/// step, are the same. On the way: the allowance is spent first, then the grants soonest-
/// expiring first (john's grants are listed latest first); a reported chat's estimate splits
/// across two grants and commits what it reported on the parts it held first; a failed request
/// gives its units back; a cost on an action's own limit fits whole or not at all; an add-on
/// raises a pool while it lasts; a plan without the pool is refused; a new month brings the
/// allowance back but not what grants spent; an expired grant is gone and one that starts
/// later comes in.
#[tokio::test]
async fn sqlite_a_pool_with_grants_spends_as_in_memory_through_the_layer() {
    let users = metered_users();
    let records = metered_records(&users);
    let (_dir, sqlite) = loaded(METERED, &records).await;
    let memory = in_memory(METERED, &records);
    let clock = Arc::new(AtomicU64::new(NOW));
    let over_sqlite = metered_layer(sqlite.clone(), sqlite.clone(), &clock);
    let over_memory = metered_layer(memory.clone(), memory.clone(), &clock);
    let january = DECEMBER + 31 * DAY_MS;
    let step = |at, user, method, path, report, status| MeteredStep {
        at,
        user,
        method,
        path,
        report,
        status,
    };
    let image = |at, user| step(at, user, "POST", "/api/images", None, 0);
    let steps = [
        // November: john's allowance of 10, two images.
        image(NOW, "john"),
        image(NOW, "john"),
        // Then g-soon (expires at the end of December) before g-late (in a year).
        image(NOW, "john"),
        // A chat reserves its estimate of 20: the last 15 of g-soon and 5 of g-late; it
        // reports 17, counted on g-soon's 15 then 2 of g-late.
        step(NOW, "john", "POST", "/api/chat", Some(17), 0),
        // A failed image takes nothing.
        step(NOW, "john", "POST", "/api/images", None, 500),
        // Exports cost 3 of their own limit of 10: 3 fit, the fourth does not.
        step(NOW, "john", "POST", "/api/reports/1/export", None, 0),
        step(NOW, "john", "POST", "/api/reports/1/export", None, 0),
        step(NOW, "john", "POST", "/api/reports/1/export", None, 0),
        step(NOW, "john", "POST", "/api/reports/1/export", None, 0),
        // kim's add-on raises her pool to 60 in November: a chat that reports 46 (more than
        // its estimate: counted in full), two images, then 403.
        step(NOW, "kim", "POST", "/api/chat", Some(46), 0),
        image(NOW, "kim"),
        image(NOW, "kim"),
        image(NOW, "kim"),
        // lou's plan has an ai pool; a reported summary draws from its own (unlimited) limit.
        step(NOW, "lou", "POST", "/api/summaries", Some(9), 0),
        // December: the allowance is back, the grants' spending is not; kim's add-on is over.
        image(DECEMBER, "john"),
        image(DECEMBER, "kim"),
        image(DECEMBER, "kim"),
        image(DECEMBER, "kim"),
        // January: g-soon expired with nothing left; g-next started. 10 of the allowance, then
        // g-late's 18 (it expires before g-next, which never does), one image split across
        // both, then g-next's 8 until 3 are left.
        image(january, "john"),
        image(january, "john"),
        image(january, "john"),
        image(january, "john"),
        image(january, "john"),
        image(january, "john"),
        image(january, "john"),
        image(january, "john"),
    ];
    let mut statuses = Vec::new();
    let mut john_balances = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        clock.store(step.at, Ordering::Relaxed);
        let from_sqlite = metered_call(&over_sqlite, step).await;
        let from_memory = metered_call(&over_memory, step).await;
        assert_eq!(
            from_sqlite, from_memory,
            "step {n}: {} {} by {}",
            step.method, step.path, step.user
        );
        statuses.push(from_sqlite.0.as_u16());
        for user in ["john", "kim", "lou"] {
            let from_sqlite = over_sqlite.entitlements(user).await.expect("entitlements");
            let from_memory = over_memory.entitlements(user).await.expect("entitlements");
            assert_eq!(
                from_sqlite, from_memory,
                "{user}'s entitlements after step {n}"
            );
        }
        let john = over_sqlite
            .entitlements("john")
            .await
            .expect("entitlements");
        john_balances.push(ai_balances(&john));
    }
    assert_eq!(
        statuses,
        [
            201, 201, 201, 201, 500, 201, 201, 201, 403, 201, 201, 201, 403, 201, 201, 201, 201,
            403, 201, 201, 201, 201, 201, 201, 201, 403
        ]
    );
    let soon_late = |used, soon, late| balances(used, &[("g-soon", soon), ("g-late", late)]);
    assert_eq!(
        john_balances[1],
        soon_late(10, 20, 20),
        "the allowance first"
    );
    assert_eq!(
        john_balances[2],
        soon_late(10, 15, 20),
        "then the soonest grant"
    );
    assert_eq!(
        john_balances[3],
        soon_late(10, 0, 18),
        "a chat across two grants"
    );
    assert_eq!(
        john_balances[4],
        soon_late(10, 0, 18),
        "a failure takes nothing"
    );
    assert_eq!(john_balances[14], soon_late(5, 0, 18), "December");
    let late_next = |used, late, next| balances(used, &[("g-late", late), ("g-next", next)]);
    assert_eq!(
        john_balances[19],
        late_next(10, 18, 10),
        "January's allowance"
    );
    assert_eq!(john_balances[22], late_next(10, 3, 10), "g-late first");
    assert_eq!(
        john_balances[23],
        late_next(10, 0, 8),
        "split across g-late and g-next"
    );
    assert_eq!(john_balances[25], late_next(10, 0, 3), "3 left: refused");
    // What the grants spent is in SQLite, on counters that never reset.
    for (id, spent) in [("g-soon", 20), ("g-late", 20), ("g-next", 7)] {
        let counter = Counter::grant("john", "ai", id);
        assert_eq!(count_of(&sqlite, &counter).await, count(spent, 0), "{id}");
        assert_eq!(
            memory.get(&counter).await.unwrap(),
            count(spent, 0),
            "{id} in memory"
        );
    }
    assert_eq!(sqlite.stored_reservations().await.unwrap(), 0);
}

//! The SQLite example's store (`examples/sqlite/store.rs`) against real database files: through
//! the layer over HTTP (200 concurrent creates at `limit - 1` create exactly one; a 500 releases;
//! a delete gives one back), deciding as the in-memory store does on the same data, following
//! the in-memory store's counting semantics call by call, leases, migrations, the example's seed,
//! invalidation after an admin change, and a failing database.
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
use tower_plans::store::{Count, Counter, ReservationId, Reserve};
use tower_plans::subscriber::Assignment;
use tower_plans::{
    Action, Catalog, MemoryStore, PlanLimitLayer, PlanLimitLayerBuilder, PlanStore, Subscriber,
    UsageStore, UserCache, UserId,
};

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
                    .reserve(&clients(), Some(LIMIT), 0, id, Duration::from_secs(60))
                    .await
                    .expect("no SQLITE_BUSY");
                if reserved.is_reserved() {
                    store.commit(&clients(), id).await.expect("committed");
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
                        let got = sqlite.reserve(&counter, limit, seed, ids[id], LEASE).await;
                        let want = memory.reserve(&counter, limit, seed, ids[id], LEASE).await;
                        prop_assert_eq!(got.map_err(failed)?, want.map_err(failed)?, "{:?}", op);
                    }
                    Op::Commit(id) => {
                        let got = sqlite.commit(&counter, ids[id]).await;
                        let want = memory.commit(&counter, ids[id]).await;
                        prop_assert_eq!(got.map_err(failed)?, want.map_err(failed)?, "{:?}", op);
                    }
                    Op::Release(id) => {
                        sqlite.release(&counter, ids[id]).await.map_err(failed)?;
                        memory.release(&counter, ids[id]).await.map_err(failed)?;
                    }
                    Op::Adjust(delta) => {
                        let got = sqlite.adjust(&counter, delta, seed).await;
                        let want = memory.adjust(&counter, delta, seed).await;
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
    let reserve = |id| store.reserve(&john, Some(LIMIT), 0, id, lease);
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

    assert_eq!(store.commit(&clients(), first).await.unwrap(), 3);
    assert_eq!(store.commit(&clients(), first).await.unwrap(), 3);
    store.release(&clients(), first).await.unwrap();
    assert_eq!(count_of(&store, &clients()).await, count(3, 1));

    store.release(&clients(), second).await.unwrap();
    store.release(&clients(), second).await.unwrap();
    assert_eq!(store.commit(&clients(), second).await.unwrap(), 3);
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
        let reserved = store.reserve(&clients(), Some(LIMIT), 0, id, lease).await;
        assert!(reserved.unwrap().is_reserved());
    }
    let refused = store
        .reserve(&clients(), Some(LIMIT), 0, ReservationId::new(), lease)
        .await;
    assert_eq!(refused.unwrap(), Reserve::Refused { used: 2, held: 3 });

    // 9.999 s later the holds still count; at 10 s they do not.
    clock.fetch_add(9_999, Ordering::SeqCst);
    assert_eq!(count_of(&store, &clients()).await, count(2, 3));
    clock.fetch_add(1, Ordering::SeqCst);
    assert_eq!(count_of(&store, &clients()).await, count(2, 0));
    assert_eq!(store.stored_reservations().await.unwrap(), 3);

    // Committing an expired hold counts nothing, and purges this counter's expired holds.
    assert_eq!(store.commit(&clients(), first).await.unwrap(), 2);
    assert_eq!(store.stored_reservations().await.unwrap(), 0);

    // A new hold, then another that expires: purge_expired deletes only the expired one.
    let live = ReservationId::new();
    let reserved = store
        .reserve(&clients(), Some(LIMIT), 0, live, lease * 10)
        .await;
    assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 2, held: 0 });
    let short = ReservationId::new();
    let reserved = store
        .reserve(&clients(), Some(LIMIT), 0, short, lease)
        .await;
    assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 2, held: 1 });
    clock.fetch_add(lease.as_millis() as u64, Ordering::SeqCst);
    assert_eq!(store.purge_expired().await.unwrap(), 1);
    assert_eq!(store.stored_reservations().await.unwrap(), 1);
    assert_eq!(store.commit(&clients(), live).await.unwrap(), 3);

    // An endless lease never expires.
    let endless = ReservationId::new();
    let reserved = store
        .reserve(&clients(), Some(LIMIT), 0, endless, Duration::MAX)
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
    assert_eq!(versions, [1, 2, 3, 4]);
    let john = again.user("john").await.unwrap().expect("john is kept");
    assert_eq!(john.usage.count("clients"), Some(3));
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
        "INSERT INTO usage_counters (user_id, resource, counted, used) VALUES ('ivy', 'clients', 'items', -1)",
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
    let reserved = store.reserve(&november, Some(2), 0, id, lease).await;
    assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 0, held: 0 });
    assert_eq!(store.commit(&november, id).await.unwrap(), 1);
    assert_eq!(count_of(&store, &november).await, count(1, 0));
    assert_eq!(count_of(&store, &december).await, None);
    // The record knows nothing of the period counts.
    let john = store.user("john").await.unwrap().unwrap();
    assert_eq!(john.usage.count("reports"), None);
    assert_eq!(john.usage.action_count("reports", &Action::Create), None);
    assert_eq!(john.usage.count("clients"), Some(1));
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

/// The example's `seed.sql` holds the quickstart fixture's plans and users.
#[tokio::test]
async fn sqlite_example_seed_holds_the_quickstart_fixture() {
    let fixture: Value =
        serde_json::from_str(include_str!("../../examples/quickstart.json")).expect("fixture");
    let memory = MemoryStore::from_values(&fixture["plans"], &fixture["users"]).expect("fixture");
    let (_dir, sqlite) = fresh().await;
    sqlite
        .execute_script(include_str!("../../examples/sqlite/seed.sql"))
        .await
        .expect("the seed runs");
    assert_eq!(sqlite.plans().await.unwrap(), memory.plans().await.unwrap());
    let users = fixture["users"].as_object().expect("users");
    assert_eq!(users.len(), 5);
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

//! tower-plans over a local Postgres, against one plain round trip in the same run.
//!
//! The benchmark starts its own Postgres on a Unix socket (as the tests do: `initdb` in a
//! temporary directory, `fsync` and `synchronous_commit` off) and measures, in group `postgres`:
//!
//! - `select_round_trip`: one `SELECT 1` through the store's pool, the floor of any
//!   Postgres-backed call;
//! - `reserve_commit`: a one-unit reservation and its commit through `PostgresStore` (two
//!   function calls), what a counted create adds to a request;
//! - `reserve_commit/pool_and_action`: the same for a hold of two lines (five credits of a pool
//!   and one unit of an action's limit);
//! - `layer/bare` and `layer/counted_create/cached`: the inner service alone, and
//!   `POST /api/clients` through a counting layer with a user cache (reserve and commit in
//!   Postgres);
//! - `throughput/reserve_commit/<tasks>`: loopback throughput, `tasks` concurrent tasks on a
//!   two-worker runtime each reserving and committing on a counter of its own, through one pool
//!   of 16 connections (elements per second is reservations committed per second).

#[path = "../tests/support/postgres_server.rs"]
mod postgres_server;

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Empty;
use tokio::runtime::{Builder, Runtime};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_plans::postgres::driver::postgres::PgPoolOptions;
use tower_plans::postgres::PostgresStore;
use tower_plans::store::{Counter, Hold, Line, ReservationId, Seed};
use tower_plans::{Action, PlanLimitLayer, UsageStore, UserCache, UserId};

use postgres_server::PostgresServer;

const PLANS: &str = r#"[{"name": "pro", "limits": {"clients": null, "tasks": 100}}]"#;
const USERS: &str = r#"{"ann": {"plan": "pro", "usage": {"clients": 1}}}"#;
const LEASE: Duration = Duration::from_secs(300);

async fn bare(_: Request<()>) -> Result<Response<Empty<Bytes>>, Infallible> {
    Ok(Response::new(Empty::new()))
}

fn request() -> Request<()> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/api/clients")
        .body(())
        .expect("a request");
    request.extensions_mut().insert(UserId::from("ann"));
    request
}

/// One reservation of `hold`'s lines under a fresh id, and its commit.
async fn reserve_commit(store: &PostgresStore, hold: &Hold) {
    let hold = hold
        .lines()
        .iter()
        .fold(Hold::new(ReservationId::new()), |hold, line| {
            hold.with(line.clone())
        });
    let held = store.reserve(&hold, LEASE).await.expect("reserve");
    assert!(held.is_reserved());
    store.commit(&hold, &[]).await.expect("commit");
}

fn bench(c: &mut Criterion) {
    let server = PostgresServer::start();
    let url = server.url();
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let store = rt.block_on(async {
        let store = PostgresStore::connect(&url).await.expect("connect");
        store.load_json(PLANS, USERS).await.expect("seed the plans");
        store
    });
    let counting = PlanLimitLayer::builder(store.clone())
        .base("/api")
        .user_cache(UserCache::time_to_live(Duration::from_secs(3600), 100))
        .count_usage(store.clone())
        .build()
        .expect("a layer");
    rt.block_on(async {
        let response = counting
            .layer(service_fn(bare))
            .oneshot(request())
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    });
    let one = Hold::unit(
        Counter::items("bob", "clients"),
        None,
        Seed::Count(0),
        ReservationId::new(),
    );
    let two = Hold::new(ReservationId::new())
        .with(Line::new(Counter::credits("bob", "ai"), 5).limit(Some(u64::MAX)))
        .with(Line::new(Counter::action("bob", "images", Action::Create), 1).limit(Some(u64::MAX)));

    let mut group = c.benchmark_group("postgres");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("select_round_trip", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let one: i32 = tower_plans::postgres::driver::query_scalar("SELECT 1")
                        .fetch_one(store.pool())
                        .await
                        .expect("SELECT 1");
                    black_box(one);
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("reserve_commit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    reserve_commit(&store, &one).await;
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("reserve_commit/pool_and_action", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    reserve_commit(&store, &two).await;
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("layer/bare", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut service = service_fn(bare);
                let start = Instant::now();
                for _ in 0..iters {
                    let ready = service.ready().await.expect("ready");
                    black_box(ready.call(request()).await.expect("infallible"));
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("layer/counted_create/cached", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut service = counting.layer(service_fn(bare));
                let start = Instant::now();
                for _ in 0..iters {
                    let ready = service.ready().await.expect("ready");
                    let response = ready.call(request()).await.expect("infallible");
                    debug_assert_eq!(response.status(), StatusCode::OK);
                    black_box(response);
                }
                start.elapsed()
            })
        })
    });
    group.finish();

    // Loopback throughput: concurrent tasks over one pool on a two-worker runtime.
    let multi: Runtime = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let pooled = multi.block_on(async {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .test_before_acquire(false)
            .connect(&url)
            .await
            .expect("connect");
        Arc::new(PostgresStore::with_pool(pool).await.expect("migrated"))
    });
    let mut group = c.benchmark_group("postgres/throughput");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    for tasks in [1u64, 16, 64] {
        group.bench_function(format!("reserve_commit/{tasks}"), |b| {
            b.iter_custom(|iters| {
                let store = Arc::clone(&pooled);
                multi.block_on(async move {
                    let start = Instant::now();
                    let handles: Vec<_> = (0..tasks)
                        .map(|task| {
                            let store = Arc::clone(&store);
                            let share = iters / tasks + u64::from(task < iters % tasks);
                            tokio::spawn(async move {
                                let hold = Hold::unit(
                                    Counter::items(format!("user-{task}"), "clients"),
                                    None,
                                    Seed::Count(0),
                                    ReservationId::new(),
                                );
                                for _ in 0..share {
                                    reserve_commit(&store, &hold).await;
                                }
                            })
                        })
                        .collect();
                    for handle in handles {
                        handle.await.expect("no panic");
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);

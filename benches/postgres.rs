//! tower-plans over a local Postgres and a local Redis side by side, each against one plain round
//! trip of its own, all in the same run.
//!
//! The benchmark starts its own Postgres on a Unix socket (as the tests do: `initdb` in a
//! temporary directory, `fsync` and `synchronous_commit` off) and its own `redis-server` on a
//! Unix socket (no persistence), both before anything is measured: when either cannot start,
//! the bench panics saying why, and measures nothing. It measures, in group `latency`, one call
//! after the other on a current-thread runtime:
//!
//! - `postgres/select_round_trip` and `redis/get_round_trip`: one `SELECT 1` through the
//!   `PostgresStore`'s pool, one plain `GET` through the `RedisConnection`'s connection manager:
//!   the floor of any call to that store;
//! - `postgres/reserve_commit` and `redis/reserve_commit`: a one-unit reservation and its commit
//!   through `PostgresStore` (two function calls) and `RedisUsageStore` (two scripts), what a
//!   counted create adds to a request;
//! - `<store>/reserve_commit/pool_and_action`: the same for a hold of two lines (five credits
//!   of a pool and one unit of an action's limit);
//! - `layer/bare`: the inner service alone;
//! - `<store>/layer/counted_create/cached`: `POST /api/clients` through a counting layer with a
//!   user cache, over `PostgresStore` or over `RedisPlanStore` and `RedisUsageStore` (reserve
//!   and commit in the store).
//!
//! and, in group `throughput`, `<store>/reserve_commit/<tasks>`: loopback throughput, `tasks`
//! (1, 16, 64) concurrent tasks on a two-worker runtime, each reserving and committing on a
//! counter of its own (elements per second is reservations committed per second). Each store
//! is set up as an instance would use it: Postgres through one pool of 16 connections (a task
//! waits for a free one), Redis through one `RedisConnection`, whose connection manager
//! multiplexes (pipelines) every task's calls over one connection.
//!
//! Warm-up and measurement default to 1 and 3 seconds; `--warm-up-time` and
//! `--measurement-time` on the command line replace them.

#[path = "../tests/support/postgres_server.rs"]
mod postgres_server;
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

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
use tower_plans::redis::{driver as redis, RedisConnection};
use tower_plans::store::{Counter, Hold, Line, ReservationId, Seed};
use tower_plans::{Action, PlanLimitLayer, UsageStore, UserCache, UserId};

use postgres_server::PostgresServer;
use redis_server::RedisServer;

const PLANS: &str = r#"[{"name": "pro", "limits": {"clients": null, "tasks": 100}}]"#;
const USERS: &str = r#"{"ann": {"plan": "pro", "usage": {"clients": 1}}}"#;
const LEASE: Duration = Duration::from_secs(300);
/// The Redis key prefix of every Redis case.
const PREFIX: &str = "bench";
/// The connections of the Postgres pool of the throughput cases.
const POOL: u32 = 16;

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
async fn reserve_commit<S: UsageStore>(store: &S, hold: &Hold) {
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

/// Times `iters` sequential reservations and commits of `hold` in `store`.
fn time_reserve_commit<S: UsageStore>(
    rt: &Runtime,
    store: &S,
    hold: &Hold,
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            reserve_commit(store, hold).await;
        }
        start.elapsed()
    })
}

/// Times `iters` sequential counted creates through `layer`.
fn time_counted(rt: &Runtime, layer: &PlanLimitLayer, iters: u64) -> Duration {
    rt.block_on(async {
        let mut service = layer.layer(service_fn(bare));
        let start = Instant::now();
        for _ in 0..iters {
            let ready = service.ready().await.expect("ready");
            let response = ready.call(request()).await.expect("infallible");
            debug_assert_eq!(response.status(), StatusCode::OK);
            black_box(response);
        }
        start.elapsed()
    })
}

/// Times `iters` reservations and commits shared out among `tasks` concurrent tasks on `multi`,
/// each on a counter of its own.
fn time_tasks<S: UsageStore>(multi: &Runtime, store: &Arc<S>, tasks: u64, iters: u64) -> Duration {
    let store = Arc::clone(store);
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
                        reserve_commit(&*store, &hold).await;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("no panic");
        }
        start.elapsed()
    })
}

/// A counting layer with a user cache over `plans`, counting in `usage`, checked once.
fn counting_layer<P, U>(rt: &Runtime, plans: P, usage: U) -> PlanLimitLayer
where
    P: tower_plans::PlanStore,
    U: UsageStore,
{
    let layer = PlanLimitLayer::builder(plans)
        .base("/api")
        .user_cache(UserCache::time_to_live(Duration::from_secs(3600), 100))
        .count_usage(usage)
        .build()
        .expect("a layer");
    rt.block_on(async {
        let response = layer
            .layer(service_fn(bare))
            .oneshot(request())
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    });
    layer
}

fn bench(c: &mut Criterion) {
    // Both servers before anything else: either one that cannot start panics here.
    let postgres_server = PostgresServer::start();
    let redis_server = RedisServer::start();
    let postgres_url = postgres_server.url();
    let redis_url = redis_server.url();

    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let postgres = rt.block_on(async {
        let store = PostgresStore::connect(&postgres_url)
            .await
            .expect("connect to the benchmark's Postgres");
        store.load_json(PLANS, USERS).await.expect("seed the plans");
        store
    });
    let conn = rt.block_on(async {
        let conn = RedisConnection::open(&redis_url)
            .await
            .expect("connect to the benchmark's redis-server")
            .key_prefix(PREFIX);
        conn.plan_store()
            .load_json(PLANS, USERS)
            .await
            .expect("seed the plans");
        conn
    });
    let redis = conn.usage_store();
    let postgres_counting = counting_layer(&rt, postgres.clone(), postgres.clone());
    let redis_counting = counting_layer(&rt, conn.plan_store(), conn.usage_store());
    let one = Hold::unit(
        Counter::items("bob", "clients"),
        None,
        Seed::Count(0),
        ReservationId::new(),
    );
    let two = Hold::new(ReservationId::new())
        .with(Line::new(Counter::credits("bob", "ai"), 5).limit(Some(u64::MAX)))
        .with(Line::new(Counter::action("bob", "images", Action::Create), 1).limit(Some(u64::MAX)));

    let mut group = c.benchmark_group("latency");
    group.sample_size(30);
    group.bench_function("postgres/select_round_trip", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let one: i32 = tower_plans::postgres::driver::query_scalar("SELECT 1")
                        .fetch_one(postgres.pool())
                        .await
                        .expect("SELECT 1");
                    black_box(one);
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("redis/get_round_trip", |b| {
        b.iter_custom(|iters| {
            let mut manager = conn.manager().expect("one redis-server").clone();
            rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let value: Option<String> = redis::cmd("GET")
                        .arg("bench:{ann}:user")
                        .query_async(&mut manager)
                        .await
                        .expect("GET");
                    black_box(value);
                }
                start.elapsed()
            })
        })
    });
    for (name, hold) in [
        ("reserve_commit", &one),
        ("reserve_commit/pool_and_action", &two),
    ] {
        group.bench_function(format!("postgres/{name}"), |b| {
            b.iter_custom(|iters| time_reserve_commit(&rt, &postgres, hold, iters))
        });
        group.bench_function(format!("redis/{name}"), |b| {
            b.iter_custom(|iters| time_reserve_commit(&rt, &redis, hold, iters))
        });
    }
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
    group.bench_function("postgres/layer/counted_create/cached", |b| {
        b.iter_custom(|iters| time_counted(&rt, &postgres_counting, iters))
    });
    group.bench_function("redis/layer/counted_create/cached", |b| {
        b.iter_custom(|iters| time_counted(&rt, &redis_counting, iters))
    });
    group.finish();

    // Loopback throughput: concurrent tasks on a two-worker runtime, over a pool of 16 Postgres
    // connections and over one multiplexed Redis connection. Both are made on this runtime, so
    // that its workers drive them.
    let multi: Runtime = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let pooled = multi.block_on(async {
        let pool = PgPoolOptions::new()
            .max_connections(POOL)
            .test_before_acquire(false)
            .connect(&postgres_url)
            .await
            .expect("connect to the benchmark's Postgres");
        Arc::new(PostgresStore::with_pool(pool).await.expect("migrated"))
    });
    let multiplexed = multi.block_on(async {
        let conn = RedisConnection::open(&redis_url)
            .await
            .expect("connect to the benchmark's redis-server")
            .key_prefix(PREFIX);
        Arc::new(conn.usage_store())
    });
    let mut group = c.benchmark_group("throughput");
    group.sample_size(10).throughput(Throughput::Elements(1));
    for tasks in [1u64, 16, 64] {
        group.bench_function(format!("postgres/reserve_commit/{tasks}"), |b| {
            b.iter_custom(|iters| time_tasks(&multi, &pooled, tasks, iters))
        });
        group.bench_function(format!("redis/reserve_commit/{tasks}"), |b| {
            b.iter_custom(|iters| time_tasks(&multi, &multiplexed, tasks, iters))
        });
    }
    group.finish();
    drop(multi);
    drop(redis_server);
    drop(postgres_server);
}

/// One second of warm-up and three of measurement unless the command line says otherwise.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);

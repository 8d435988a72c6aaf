//! tower-plans over a local Redis, against one plain Redis round trip in the same run.
//!
//! The benchmark starts its own `redis-server` on a Unix socket (as the tests do) and measures,
//! in group `redis`:
//!
//! - `get_round_trip`: one plain `GET` through the same connection manager, the floor of any
//!   Redis-backed call;
//! - `counted_create`: a reservation of one unit and its commit through `RedisUsageStore` (two
//!   script calls), what a counted create adds to a request;
//! - `rate_acquire`: one request of a rate taken through `RedisRates` (one script call that
//!   reads and advances the key's TAT), what a rate adds to a request;
//! - `metered_create`: the same for a hold of two lines, a credit pool with two grants and an
//!   action (four counters in each script), what a metered request adds;
//! - `layer/bare`: the inner service alone;
//! - `layer/uncounted_allowed/uncached`: an allowed `GET /api/clients` through the layer over
//!   `RedisPlanStore` (the catalog cached, the record read and parsed on every request);
//! - `layer/uncounted_allowed/cached`: the same with a user cache (no Redis call);
//! - `layer/counted_create/cached`: `POST /api/clients` through a counting layer with a user cache
//!   (reserve and commit in Redis).
//!
//! Every case runs its requests one after the other on a current-thread runtime.

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Empty;
use tokio::runtime::{Builder, Runtime};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_plans::rate::{Gcra, RateKey, RateStore};
use tower_plans::redis::{driver as redis, RedisConnection};
use tower_plans::store::{Counter, Hold, Line, ReservationId, Seed, Spill};
use tower_plans::{PlanLimitLayer, UsageStore, UserCache, UserId};

use redis_server::RedisServer;

const PLANS: &str = r#"[{"name": "pro", "limits": {"clients": null, "tasks": 100}}]"#;
/// The lease of the reservations measured alone.
const LEASE: Duration = Duration::from_secs(300);
const USERS: &str = r#"{"ann": {"plan": "pro", "usage": {"clients": 1}}}"#;

fn runtime() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

async fn bare(_: Request<()>) -> Result<Response<Empty<Bytes>>, Infallible> {
    Ok(Response::new(Empty::new()))
}

fn request(method: Method) -> Request<()> {
    let mut request = Request::builder()
        .method(method)
        .uri("/api/clients")
        .body(())
        .expect("a request");
    request.extensions_mut().insert(UserId::from("ann"));
    request
}

/// Times `iters` sequential requests through `layer` (or the bare service without one).
fn time_layer(
    rt: &Runtime,
    layer: Option<&PlanLimitLayer>,
    method: &Method,
    expected: StatusCode,
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        match layer {
            Some(layer) => {
                let mut service = layer.layer(service_fn(bare));
                for _ in 0..iters {
                    let ready = service.ready().await.expect("ready");
                    let response = ready
                        .call(request(method.clone()))
                        .await
                        .expect("infallible");
                    debug_assert_eq!(response.status(), expected);
                    black_box(response);
                }
            }
            None => {
                let mut service = service_fn(bare);
                for _ in 0..iters {
                    let ready = service.ready().await.expect("ready");
                    black_box(
                        ready
                            .call(request(method.clone()))
                            .await
                            .expect("infallible"),
                    );
                }
            }
        }
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let server = RedisServer::start();
    let rt = runtime();
    let conn = rt.block_on(async {
        let conn = RedisConnection::open(&server.url())
            .await
            .expect("connect to the benchmark's redis-server")
            .key_prefix("bench");
        conn.plan_store()
            .load_json(PLANS, USERS)
            .await
            .expect("seed the plans");
        conn
    });
    let usage = conn.usage_store();
    let rates = conn.rate_store();
    let uncached = PlanLimitLayer::builder(conn.plan_store())
        .base("/api")
        .build()
        .expect("a layer");
    let cached = PlanLimitLayer::builder(conn.plan_store())
        .base("/api")
        .user_cache(UserCache::time_to_live(Duration::from_secs(3600), 100))
        .build()
        .expect("a layer");
    let counting = PlanLimitLayer::builder(conn.plan_store())
        .base("/api")
        .user_cache(UserCache::time_to_live(Duration::from_secs(3600), 100))
        .count_usage(conn.usage_store())
        .build()
        .expect("a layer");
    // Check every case once, and warm the caches.
    for (layer, method, status) in [
        (&uncached, Method::GET, StatusCode::OK),
        (&cached, Method::GET, StatusCode::OK),
        (&counting, Method::POST, StatusCode::OK),
    ] {
        rt.block_on(async {
            let response = layer
                .layer(service_fn(bare))
                .oneshot(request(method))
                .await
                .expect("infallible");
            assert_eq!(response.status(), status);
        });
    }

    let mut group = c.benchmark_group("redis");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.bench_function("get_round_trip", |b| {
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
    group.bench_function("counted_create", |b| {
        let counter = Counter::items("bob", "clients");
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let hold =
                        Hold::unit(counter.clone(), None, Seed::Count(0), ReservationId::new());
                    let reserved = usage.reserve(&hold, LEASE).await;
                    black_box(reserved.expect("reserve"));
                    usage.commit(&hold, &[]).await.expect("commit");
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("rate_acquire", |b| {
        // A million a second on the wall clock: every acquire is let through and stores its TAT.
        let rate = Gcra::new(1_000_000, Duration::from_secs(1), 1_000_000).expect("a valid rate");
        let key = RateKey::action("bob", "clients", tower_plans::Action::Index);
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let now_ms = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |since| since.as_millis() as u64);
                    let decision = rates.acquire(&key, rate, now_ms).await;
                    debug_assert!(decision.as_ref().is_ok_and(|d| d.is_allowed()));
                    black_box(decision.expect("acquire"));
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("metered_create", |b| {
        // A pool (unlimited, so that it never runs out) spilling over to two grants, and the
        // action's own limit: four counters in each script.
        let pool = Counter::credits("bob", "ai");
        let images = Counter::action("bob", "images", tower_plans::Action::Create);
        let line = Line::new(pool, 5)
            .grant(Spill::new(Counter::grant("bob", "ai", "g1"), 500))
            .grant(Spill::new(Counter::grant("bob", "ai", "g2"), 500));
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let hold = Hold::new(ReservationId::new())
                        .with(line.clone())
                        .with(Line::new(images.clone(), 1));
                    let reserved = usage.reserve(&hold, LEASE).await;
                    black_box(reserved.expect("reserve"));
                    usage.commit(&hold, &[7, 1]).await.expect("commit");
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("layer/bare", |b| {
        b.iter_custom(|iters| time_layer(&rt, None, &Method::GET, StatusCode::OK, iters))
    });
    group.bench_function("layer/uncounted_allowed/uncached", |b| {
        b.iter_custom(|iters| time_layer(&rt, Some(&uncached), &Method::GET, StatusCode::OK, iters))
    });
    group.bench_function("layer/uncounted_allowed/cached", |b| {
        b.iter_custom(|iters| time_layer(&rt, Some(&cached), &Method::GET, StatusCode::OK, iters))
    });
    group.bench_function("layer/counted_create/cached", |b| {
        b.iter_custom(|iters| {
            time_layer(&rt, Some(&counting), &Method::POST, StatusCode::OK, iters)
        })
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);

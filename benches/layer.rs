//! The full `PlanLimit<S>` call against the bare inner service, measured in the same group.
//!
//! Groups `full_call/1k`, `full_call/100k` and `full_call/1M` hold a `MemoryStore` of that many
//! subscribers. In each, `bare` is the inner service alone (an always-ready `service_fn`
//! answering an empty `200`); the other entries put the layer in front of it:
//!
//! - `allowed`: `POST /api/clients` by a subscriber below the limit;
//! - `denied`: the same by a subscriber at the limit, answered with the rendered JSON `403`;
//! - `ungoverned`: `GET /api/health`;
//!
//! each `uncached` (the subscriber is fetched from the store on every request) and `cached` (a
//! user cache holding every subscriber of the store). Allowed requests are also measured with
//! the `Allowed` request extension turned off (`uncached_noext`, `cached_noext`). Requests name subscribers drawn at random
//! among all of the store's; the `active` entries draw them among 1 thousand subscribers of the
//! store only. Every request is built the same way for the bare service and the layer (the
//! method, a static URI, the user id in the extensions) and goes through `ready` then `call` on
//! one service value; the response is dropped inside the measurement.
//!
//! `floor` (in every `full_call` group, and `floor/1` and `floor/2` in `threads/1k`) is not the
//! layer: it is the least a plan check can do (`common::floor`), a service that matches the
//! path with `matchit`, reads the user's record under one of 16 `RwLock`s of maps and compares
//! one count with one limit, for creates only, and does none of the rest of the layer's work.
//! It allows and denies the same requests as the layer; measured on the `allowed` requests,
//! its cost over `bare` is what reading a record and comparing a count costs on the machine.
//! `floor_unlocked/1` and `floor_unlocked/2` read the same records out of their locks (no store
//! could be changed that way): beside `floor`, what the read lock costs two workers.
//!
//! Group `threads/1k` shares one service between 1 and 2 worker threads (`<case>/1`,
//! `<case>/2`), each with its own current-thread runtime, a clone of the service and requests of
//! its own, and reports the time per request (total time over all requests). The store is the
//! `counted/1k` one (below): `bare`, `uncached` and `cached` allowed creates, and `counted`
//! (uncached, a reservation and its commit per create in the same `MemoryStore`). Each layered
//! case is also run `_apart` (`uncached_apart/2`, ...): each worker with a store and a layer of
//! its own, sharing nothing; their scaling is what the machine gives this work on two cores,
//! the ceiling for the shared cases. `bare_cloned` and `cached_cloned` send each request through
//! a clone of the worker's service made for it and dropped after it, as axum's router calls the
//! service of a route.
//!
//! Group `counted/1k` measures counted usage: a store of 1 thousand subscribers whose
//! even-numbered ones are on a plan with a finite clients limit that no run reaches
//! (`common::METERED_CLIENTS`), so that every create checks the limit and is allowed. Beside
//! `bare`, `allowed` is their `POST /api/clients` through a layer without counting (usage read
//! from the record), and `allowed_counted` the same through a layer that counts in the same
//! `MemoryStore`: one reservation before the inner service and its commit after the `200`,
//! each `uncached` and `cached`. `metered_counted` is a metered request through the counting
//! layer: `POST /api/images` costs 5 credits of a pool and one image of the action's own
//! limit, both reserved in one hold and committed after the `200`. The counts grow through the
//! run; the limit checks are the ones a subscriber below real limits gets.
//!
//! Group `parts/1k` measures parts of a request alone: a read of a `moka` cache set up as the
//! layer's user cache, the monotonic clock, and one `MemoryRates::acquire` of a user's
//! plan-wide rate (`rate_acquire`, every call let through).
//!
//! Group `metrics/1k` measures what the metrics cost: `allowed` and `denied`, `uncached` and
//! `cached`, beside `bare`, with no recorder installed (`no_recorder/...`), and, when built with
//! the `metrics` feature, with `metrics::NoopRecorder` (`noop_recorder/...`: each metric is
//! registered, nothing is stored) and with a Prometheus recorder (`prometheus/...`) set for the
//! bench's thread. A cargo feature is chosen at build time, so the figure without the feature
//! comes from a second run of the same group, built without it:
//! `cargo bench --bench layer -- metrics/` and
//! `cargo bench --bench layer --features metrics -- metrics/`.
//!
//! `BENCH_SUBSCRIBERS=1000,100000` limits the store sizes (to profile one case, say).

mod common;

use std::fmt;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{Request, Response};
use tokio::runtime::{Builder, Runtime};
use tower::{Layer, Service};
use tower_plans::rate::{Gcra, MemoryRates, RateKey, RateStore};
use tower_plans::store::Counter;
use tower_plans::{MemoryStore, Subscriber, UsageStore, UserId};

use common::{bare, size_name, sizes, Case, Fixture, Governed, Requests, Setup, SEQUENCE};

fn current_thread() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Sends `iters` requests one after the other through one clone of `service`.
fn time_serial<S, B>(rt: &Runtime, service: &S, requests: &Requests, iters: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<B>> + Clone,
    S::Error: fmt::Debug,
{
    let mut service = service.clone();
    rt.block_on(async move {
        let start = Instant::now();
        common::send(&mut service, requests, 0, iters).await;
        start.elapsed()
    })
}

/// Sends `iters` requests through `workers` clones of the services, worker `w` cloning
/// `services[w % services.len()]`, each on a thread of its own with its own current-thread
/// runtime and its own requests (`requests[w]`), as a server with one runtime per core would:
/// the time from the first worker's start, once every worker is ready, to the last one's end.
/// With `cloned`, each request goes through a clone of the worker's service made for it, as
/// axum's router calls a route's service.
fn time_workers<S, B>(
    services: &[S],
    requests: &[Arc<Requests>],
    workers: usize,
    iters: u64,
    cloned: bool,
) -> Duration
where
    S: Service<Request<()>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: fmt::Debug,
{
    let start = std::sync::Barrier::new(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let mut service = services[w % services.len()].clone();
                let requests = Arc::clone(&requests[w]);
                let share = iters / workers as u64 + u64::from((w as u64) < iters % workers as u64);
                let first = w as u64 * (SEQUENCE as u64 / workers as u64);
                let start = &start;
                scope.spawn(move || {
                    let rt = current_thread();
                    start.wait();
                    let began = Instant::now();
                    let to = first + share;
                    if cloned {
                        rt.block_on(common::send_cloned(&service, &requests, first, to));
                    } else {
                        rt.block_on(common::send(&mut service, &requests, first, to));
                    }
                    (began, Instant::now())
                })
            })
            .collect();
        let spans: Vec<(Instant, Instant)> = handles
            .into_iter()
            .map(|handle| handle.join().expect("a bench worker"))
            .collect();
        let began = spans.iter().map(|span| span.0).min();
        let ended = spans.iter().map(|span| span.1).max();
        match (began, ended) {
            (Some(began), Some(ended)) => ended.duration_since(began),
            _ => Duration::ZERO,
        }
    })
}

fn full_call(c: &mut Criterion) {
    let rt = current_thread();
    for n in sizes() {
        let fixture = rt.block_on(Fixture::new(n));
        let mut cases: Vec<(String, Case, Requests, &[Setup])> = Case::ALL
            .into_iter()
            .map(|case| {
                let name = case.name().to_owned();
                (name, case, Requests::new(case, n), Setup::of(case))
            })
            .collect();
        if n > common::ACTIVE {
            cases.push((
                "allowed_active".to_owned(),
                Case::Allowed,
                Requests::active(Case::Allowed, n),
                &Setup::BOTH,
            ));
        }
        // Every service answers each case as expected before anything is measured.
        for (_, case, requests, setups) in &cases {
            for &setup in *setups {
                let mut service = fixture.service(setup).clone();
                rt.block_on(common::warm(&mut service, requests, *case));
            }
        }

        // The least a plan check can do (`common::floor`), on the same subscribers: it allows
        // and denies what the layer does.
        let floor = common::floor(n, false).layer(bare());
        for (_, case, requests, _) in &cases[..2] {
            rt.block_on(common::warm(&mut floor.clone(), requests, *case));
        }

        let mut group = c.benchmark_group(format!("full_call/{}", size_name(n)));
        let bare = bare();
        group.bench_function("bare", |b| {
            b.iter_custom(|iters| time_serial(&rt, &bare, &cases[0].2, iters))
        });
        group.bench_function("floor", |b| {
            b.iter_custom(|iters| time_serial(&rt, &floor, &cases[0].2, iters))
        });
        for (name, _, requests, setups) in &cases {
            for &setup in *setups {
                let service = fixture.service(setup);
                group.bench_function(format!("{name}/{}", setup.name()), |b| {
                    b.iter_custom(|iters| time_serial(&rt, service, requests, iters))
                });
            }
        }
        group.finish();
    }
}

fn threads(c: &mut Criterion) {
    let n = 1_000;
    let rt = current_thread();
    // Each worker has requests of its own (the same users, each id allocated apart), as
    // requests on different connections would.
    let requests: Vec<Arc<Requests>> = (0..2)
        .map(|_| Arc::new(Requests::new(Case::Allowed, n)))
        .collect();
    let cases = [
        ("uncached", Setup::UNCACHED, false),
        ("cached", Setup::CACHED, false),
        ("counted", Setup::UNCACHED, true),
    ];
    // `<case>`: one store and one layer, shared by the workers. `<case>_apart`: a store and a
    // layer per worker, so that the workers share nothing but the process and the machine;
    // its scaling is what two cores give this work here, the ceiling of the shared case's.
    let store = common::metered_store(n);
    let apart: Vec<MemoryStore> = (0..2).map(|_| common::metered_store(n)).collect();
    let mut services: Vec<(String, Vec<Governed>)> = Vec::new();
    for (name, setup, counted) in cases {
        let shared = std::slice::from_ref(&store);
        for (name, stores) in [
            (name.to_owned(), shared),
            (format!("{name}_apart"), &apart[..]),
        ] {
            let mut layered = Vec::new();
            for store in stores {
                let layer = if counted {
                    common::counted_layer(store, n, setup)
                } else {
                    common::layer(store, n, setup)
                };
                let mut service = layer.layer(bare());
                if setup.cached {
                    rt.block_on(common::fill_cache(&mut service, n));
                }
                rt.block_on(common::warm(
                    &mut service.clone(),
                    &requests[0],
                    Case::Allowed,
                ));
                layered.push(service);
            }
            services.push((name, layered));
        }
    }

    // The least a plan check can do (`common::floor`), shared by the workers as the layer is;
    // and the same with its records out of their locks.
    let floor = [common::floor(n, true).layer(bare())];
    let floor_unlocked = [common::floor_unlocked(n, true).layer(bare())];
    for floor in [&floor[0], &floor_unlocked[0]] {
        rt.block_on(common::warm(
            &mut floor.clone(),
            &requests[0],
            Case::Allowed,
        ));
    }

    let mut group = c.benchmark_group(format!("threads/{}", size_name(n)));
    group.throughput(Throughput::Elements(1));
    let bare = [bare()];
    for workers in [1, 2] {
        for (name, cloned) in [("bare", false), ("bare_cloned", true)] {
            group.bench_function(format!("{name}/{workers}"), |b| {
                b.iter_custom(|iters| time_workers(&bare, &requests, workers, iters, cloned))
            });
        }
        for (name, floor) in [("floor", &floor), ("floor_unlocked", &floor_unlocked)] {
            group.bench_function(format!("{name}/{workers}"), |b| {
                b.iter_custom(|iters| time_workers(floor, &requests, workers, iters, false))
            });
        }
        for (name, layered) in &services {
            group.bench_function(format!("{name}/{workers}"), |b| {
                b.iter_custom(|iters| time_workers(layered, &requests, workers, iters, false))
            });
        }
        // The shared cached layer, each request through a clone made for it (as axum's router
        // calls a route's service): the clone and its drop are the layer's to pay.
        let cached = services
            .iter()
            .find(|(name, _)| name == "cached")
            .map(|(_, layered)| layered);
        if let Some(cached) = cached {
            group.bench_function(format!("cached_cloned/{workers}"), |b| {
                b.iter_custom(|iters| time_workers(cached, &requests, workers, iters, true))
            });
        }
    }
    group.finish();
}

fn counted(c: &mut Criterion) {
    let n = 1_000;
    let rt = current_thread();
    let store = common::metered_store(n);
    let creates = Requests::new(Case::Allowed, n);
    let images = Requests::new(Case::Metered, n);
    let mut services: Vec<(String, Governed, &Requests, Case)> = Vec::new();
    for setup in Setup::BOTH {
        let counting = [
            (
                "allowed",
                common::layer(&store, n, setup),
                &creates,
                Case::Allowed,
            ),
            (
                "allowed_counted",
                common::counted_layer(&store, n, setup),
                &creates,
                Case::Allowed,
            ),
            (
                "metered_counted",
                common::counted_layer(&store, n, setup),
                &images,
                Case::Metered,
            ),
        ];
        for (name, layer, requests, case) in counting {
            let mut service = layer.layer(bare());
            if setup.cached {
                rt.block_on(common::fill_cache(&mut service, n));
            }
            services.push((format!("{name}/{}", setup.name()), service, requests, case));
        }
    }
    // Every service allows every request; a counted create is counted once, a metered image
    // takes 5 credits and one image.
    let counts = |rt: &Runtime| -> (u64, u64, u64) {
        rt.block_on(async {
            let mut total = (0, 0, 0);
            for i in (0..n).step_by(2) {
                let user = format!("u{i}");
                let store = &store;
                let used = |counter: Counter| async move {
                    let count = store.get(&counter).await.expect("the store answers");
                    count.map_or(0, |count| count.used)
                };
                total.0 += used(Counter::items(user.as_str(), "clients")).await;
                total.1 += used(Counter::items(user.as_str(), "images")).await;
                total.2 += used(Counter::credits(user.as_str(), "ai")).await;
            }
            total
        })
    };
    for (name, service, requests, case) in &services {
        let before = counts(&rt);
        let mut service = service.clone();
        rt.block_on(common::warm(&mut service, requests, *case));
        let sequence = SEQUENCE as u64;
        let expected = if name.starts_with("allowed_counted") {
            (before.0 + sequence, before.1, before.2)
        } else if name.starts_with("metered_counted") {
            (before.0, before.1 + sequence, before.2 + 5 * sequence)
        } else {
            before
        };
        assert_eq!(counts(&rt), expected, "{name}");
    }

    let mut group = c.benchmark_group(format!("counted/{}", size_name(n)));
    let bare = bare();
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| time_serial(&rt, &bare, &creates, iters))
    });
    for (name, service, requests, _) in &services {
        group.bench_function(name.as_str(), |b| {
            b.iter_custom(|iters| time_serial(&rt, service, requests, iters))
        });
    }
    group.finish();
}

/// Sets a recorder for the current thread until the returned guard is dropped.
type Install = Box<dyn Fn() -> Box<dyn std::any::Any>>;

/// The cost of the metrics (see the module docs): no recorder, then (with the feature) a no-op
/// recorder and a Prometheus recorder, each set for this thread only while it is measured.
fn metrics(c: &mut Criterion) {
    let rt = current_thread();
    let n = 1_000;
    let fixture = rt.block_on(Fixture::new(n));
    let cases: Vec<(Case, Requests)> = [Case::Allowed, Case::Denied]
        .into_iter()
        .map(|case| (case, Requests::new(case, n)))
        .collect();
    for (case, requests) in &cases {
        for setup in Setup::BOTH {
            let mut service = fixture.service(setup).clone();
            rt.block_on(common::warm(&mut service, requests, *case));
        }
    }
    #[allow(unused_mut)]
    let mut recorders: Vec<(&str, Option<Install>)> = vec![("no_recorder", None)];
    #[cfg(feature = "metrics")]
    {
        // The recorder is leaked so that a thread-local guard can borrow it for the run.
        let noop: &'static metrics::NoopRecorder = Box::leak(Box::new(metrics::NoopRecorder));
        recorders.push((
            "noop_recorder",
            Some(Box::new(move || {
                Box::new(metrics::set_default_local_recorder(noop)) as Box<dyn std::any::Any>
            })),
        ));
        let prometheus: &'static metrics_exporter_prometheus::PrometheusRecorder = Box::leak(
            Box::new(metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder()),
        );
        recorders.push((
            "prometheus",
            Some(Box::new(move || {
                Box::new(metrics::set_default_local_recorder(prometheus)) as Box<dyn std::any::Any>
            })),
        ));
    }

    let mut group = c.benchmark_group(format!("metrics/{}", size_name(n)));
    let bare = bare();
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| time_serial(&rt, &bare, &cases[0].1, iters))
    });
    for (recorder, install) in &recorders {
        for (case, requests) in &cases {
            for setup in Setup::BOTH {
                let service = fixture.service(setup);
                let name = format!("{recorder}/{}/{}", case.name(), setup.name());
                group.bench_function(name, |b| {
                    b.iter_custom(|iters| {
                        let _guard = install.as_ref().map(|install| install());
                        time_serial(&rt, service, requests, iters)
                    })
                });
            }
        }
    }
    group.finish();
}

/// What some parts of a cached request cost alone, as a floor for the full call: a read of a
/// `moka` cache set up as the layer's user cache (same builder settings and hasher, every
/// subscriber in it, the same random ids), the monotonic clock the layer reads once per
/// request, and one acquire of the in-memory rates.
fn parts(c: &mut Criterion) {
    let n = 1_000;
    let requests = Requests::new(Case::Allowed, n);
    let cache: moka::sync::Cache<UserId, Option<Arc<Subscriber>>, foldhash::fast::RandomState> =
        moka::sync::Cache::builder()
            .max_capacity(common::user_cache_capacity(n))
            .time_to_live(Duration::from_secs(3600))
            .build_with_hasher(foldhash::fast::RandomState::default());
    for i in 0..n {
        cache.insert(common::user_id(i), Some(Arc::new(common::subscriber(i))));
    }
    let mut group = c.benchmark_group(format!("parts/{}", size_name(n)));
    let mut i = 0u64;
    group.bench_function("user_cache_get", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(cache.get(requests.id(i)))
        })
    });
    group.bench_function("monotonic_clock", |b| {
        b.iter(|| black_box(tokio::time::Instant::now()))
    });
    // The plan-wide rate of the same random users: 1000 a second, a burst of 1000, on a clock
    // that moves a millisecond every 64 calls: a user comes about once in 16 ms, well within
    // the rate, so every call is let through.
    let rates = MemoryRates::new();
    let rate = Gcra::new(1000, Duration::from_secs(1), 1000).expect("a valid rate");
    let keys: Vec<RateKey> = (0..common::SEQUENCE as u64)
        .map(|i| RateKey::plan(requests.id(i).as_arc().clone()))
        .collect();
    let start_ms = 1_780_000_000_000;
    let first = rates.acquire(&keys[0], rate, start_ms).into_ready();
    assert!(
        matches!(first, Ok(Ok(d)) if d.is_allowed()),
        "answers at once, allowed"
    );
    let mut i = 0u64;
    group.bench_function("rate_acquire", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let key = &keys[(i as usize) & (common::SEQUENCE - 1)];
            let decision = rates.acquire(key, rate, start_ms + i / 64).into_ready();
            black_box(
                decision
                    .map(|answer| answer.is_ok_and(|d| d.is_allowed()))
                    .ok(),
            )
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .without_plots()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = full_call, counted, threads, parts, metrics
}
criterion_main!(benches);

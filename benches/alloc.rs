//! Allocations per request for every full-call case, and memory per subscriber.
//!
//! It counts with a global allocator, so it is a plain binary (`harness = false`) printing
//! Markdown tables rather than a criterion benchmark: counting would disturb the timings of the
//! other benchmarks. The cases are those of `benches/layer.rs`, built by the same code; each is
//! counted over 65536 requests after one pass that settles the caches.
//!
//! Memory per subscriber is the growth of live heap bytes while `N` subscribers are inserted
//! into a `MemoryStore`, and while a layer's user cache is filled with them (through requests
//! carrying freshly allocated ids, as an authentication layer would). The cache shares the
//! store's records (`Arc<Subscriber>`), so its figure is the cache's own cost per entry.
//!
//! Last, it counts how often a request to a layer whose user cache holds every subscriber still
//! reaches the store.
//!
//! `BENCH_SUBSCRIBERS=1000,100000` limits the store sizes.

mod common;

// Installs the counting allocator.
#[path = "../tests/support/alloc.rs"]
mod counting;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use http::{Request, Response};
use tokio::runtime::{Builder, Runtime};
use tower::{Layer, Service};
use tower_plans::store::StoreFuture;
use tower_plans::{Catalog, MemoryStore, PlanLimitLayer, PlanStore, Subscriber};

use common::{bare, size_name, sizes, workers, Case, Fixture, Requests, Setup, SEQUENCE};
use counting::snapshot;

/// Requests counted per case.
const REQUESTS: u64 = SEQUENCE as u64;

/// Allocations and allocated bytes per request, per `REQUESTS` requests from `run`.
fn per_request(mut run: impl FnMut()) -> (f64, f64) {
    run();
    let before = snapshot();
    run();
    let after = snapshot();
    (
        (after.allocations - before.allocations) as f64 / REQUESTS as f64,
        (after.allocated - before.allocated) as f64 / REQUESTS as f64,
    )
}

/// Counts over `REQUESTS` requests sent one after the other.
fn serial<S, B>(rt: &Runtime, service: &S, requests: &Requests) -> (f64, f64)
where
    S: Service<Request<()>, Response = Response<B>> + Clone,
    S::Error: fmt::Debug,
{
    let mut service = service.clone();
    per_request(|| rt.block_on(common::send(&mut service, requests, 0, REQUESTS)))
}

/// Counts over `REQUESTS` requests sent from one task per element of `requests` on a
/// multi-threaded runtime.
fn parallel<S, B>(rt: &Runtime, service: &S, requests: &[Arc<Requests>]) -> (f64, f64)
where
    S: Service<Request<()>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: fmt::Debug + Send,
    B: Send + 'static,
{
    per_request(|| {
        rt.block_on(async {
            let tasks = requests.len() as u64;
            let handles: Vec<_> = (0..tasks)
                .map(|t| {
                    let mut service = service.clone();
                    let requests = Arc::clone(&requests[t as usize]);
                    let first = t * (SEQUENCE as u64 / tasks);
                    tokio::spawn(async move {
                        common::send(&mut service, &requests, first, first + REQUESTS / tasks)
                            .await;
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("a task");
            }
        })
    })
}

fn current_thread() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn row(label: &str, (allocations, bytes): (f64, f64), (bare_allocations, bare_bytes): (f64, f64)) {
    println!(
        "| {label} | {allocations:.2} | {bytes:.0} | {:+.2} | {:+.0} |",
        allocations - bare_allocations,
        bytes - bare_bytes
    );
}

fn allocations_per_request() {
    let rt = current_thread();
    println!("Allocations per request (added = over `bare`, which counts the request's own):\n");
    println!("| case | allocations | bytes | added allocations | added bytes |");
    println!("|---|---:|---:|---:|---:|");
    for n in sizes() {
        let size = size_name(n);
        let fixture = rt.block_on(Fixture::new(n));
        let baseline = serial(&rt, &bare(), &Requests::new(Case::Allowed, n));
        row(&format!("{size} bare"), baseline, baseline);
        for case in Case::ALL {
            let requests = Requests::new(case, n);
            for &setup in Setup::of(case) {
                let counts = serial(&rt, fixture.service(setup), &requests);
                row(
                    &format!("{size} {}/{}", case.name(), setup.name()),
                    counts,
                    baseline,
                );
            }
        }
    }

    let workers = workers();
    let tasks = 2 * workers as u64;
    let rt = Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a runtime");
    let fixture = rt.block_on(Fixture::new(1_000));
    let requests: Vec<Arc<Requests>> = (0..tasks)
        .map(|_| Arc::new(Requests::new(Case::Allowed, 1_000)))
        .collect();
    let suffix = format!("{workers}workers_{tasks}tasks");
    let baseline = parallel(&rt, &bare(), &requests);
    row(&format!("1k bare/{suffix}"), baseline, baseline);
    for setup in Setup::ALL {
        let counts = parallel(&rt, fixture.service(setup), &requests);
        row(
            &format!("1k allowed/{}/{suffix}", setup.name()),
            counts,
            baseline,
        );
    }
    println!();
}

fn memory_per_subscriber() {
    let rt = current_thread();
    println!("Memory per subscriber (growth of live heap bytes / N):\n");
    println!("| N | MemoryStore (record and key) | user cache entry |");
    println!("|---|---:|---:|");
    for n in sizes() {
        let before = snapshot();
        let store = common::store(n);
        let store_bytes = snapshot().live - before.live;

        let mut service = common::layer(&store, n, Setup::CACHED).layer(bare());
        let before = snapshot();
        rt.block_on(common::fill_cache(&mut service, n));
        let cache_bytes = snapshot().live - before.live;
        println!(
            "| {} | {:.0} B | {:.0} B |",
            size_name(n),
            store_bytes as f64 / n as f64,
            cache_bytes as f64 / n as f64
        );
    }
    println!();
}

/// A `MemoryStore` that counts the subscribers asked for.
#[derive(Clone)]
struct CountingStore {
    inner: MemoryStore,
    users: Arc<AtomicU64>,
}

impl PlanStore for CountingStore {
    fn plans<'a>(&'a self) -> StoreFuture<'a, Arc<Catalog>> {
        StoreFuture::new(async move { self.inner.plans().await })
    }

    fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
        StoreFuture::new(async move {
            self.users.fetch_add(1, Relaxed);
            self.inner.user(id).await
        })
    }
}

fn store_calls_with_cache() {
    let rt = current_thread();
    println!("Store calls with a user cache holding every subscriber:\n");
    println!("| N | requests | store calls | per 1000 requests |");
    println!("|---|---:|---:|---:|");
    for n in sizes() {
        let store = CountingStore {
            inner: common::store(n),
            users: Arc::default(),
        };
        let layer = PlanLimitLayer::builder(store.clone())
            .base("/api")
            .user_cache(common::user_cache(n))
            .build()
            .expect("the layer builds");
        let mut service = layer.layer(bare());
        let requests = Requests::new(Case::Allowed, n);
        rt.block_on(async {
            common::fill_cache(&mut service, n).await;
            common::send(&mut service, &requests, 0, REQUESTS).await;
        });
        let before = store.users.load(Relaxed);
        rt.block_on(common::send(&mut service, &requests, 0, REQUESTS));
        let calls = store.users.load(Relaxed) - before;
        println!(
            "| {} | {REQUESTS} | {calls} | {:.2} |",
            size_name(n),
            calls as f64 * 1000.0 / REQUESTS as f64
        );
    }
    println!();
}

fn main() {
    // `cargo bench` passes `--bench` and any filter; this binary always runs everything.
    allocations_per_request();
    memory_per_subscriber();
    store_calls_with_cache();
}

//! The in-memory store passes the usage store suite (`support/usage_conformance.rs`), 200
//! concurrent reservations of 5 units against a pool with 15 left let exactly 3 through, and of
//! 200 concurrent calls marking one alert marker exactly one sets it; the same with block leases
//! over it (`lease::Leased`).

use std::sync::Arc;

use tower_plans::lease::Leased;
use tower_plans::{Catalog, MemoryStore, UsageStore};

use crate::usage_conformance as suite;

#[tokio::test]
async fn the_memory_store_passes_the_usage_store_suite() {
    let store = MemoryStore::new(Catalog::default());
    suite::all(&store, "mem").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_costs_against_a_pool_let_exactly_what_fits_through() {
    let store: Arc<dyn UsageStore> = Arc::new(MemoryStore::new(Catalog::default()));
    suite::concurrent_costs(store, "mem-concurrent", 1000, 15, 5, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_marks_set_each_marker_once() {
    // Clones share their counters and markers, as handles of one store.
    let store = MemoryStore::new(Catalog::default());
    let stores: Vec<Arc<dyn UsageStore>> = vec![Arc::new(store.clone()), Arc::new(store)];
    suite::concurrent_marks_over(&stores, "mem-marks", 200).await;
}

#[tokio::test]
async fn the_memory_store_with_block_leases_passes_the_usage_store_suite() {
    let store = Leased::builder(MemoryStore::new(Catalog::default()))
        .instances(4)
        .build();
    suite::all(&store, "leased").await;
    suite::all(
        &Leased::new(MemoryStore::new(Catalog::default())),
        "leased-one",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_costs_through_block_leases_let_exactly_what_fits_through() {
    let store: Arc<dyn UsageStore> = Arc::new(Leased::new(MemoryStore::new(Catalog::default())));
    suite::concurrent_costs(Arc::clone(&store), "leased-concurrent", 1000, 15, 5, 200).await;
    suite::concurrent_costs(store, "leased-remainder", 1000, 4, 3, 200).await;
}

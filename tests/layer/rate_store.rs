//! The in-memory rates pass the rate store suite (`support/rate_conformance.rs`), also through
//! the pointers the layer holds them by, and 100 concurrent tasks on a fresh 60 a minute let
//! exactly 60 through.

use std::sync::Arc;

use tower_plans::rate::{MemoryRates, RateStore};

use crate::rate_conformance as suite;

#[tokio::test]
async fn memory_rates_pass_the_rate_store_suite() {
    let rates = MemoryRates::new();
    suite::all(&rates, "mem").await;
    let boxed: Box<dyn RateStore> = Box::new(rates.clone());
    suite::all(&boxed, "boxed").await;
    let shared: Arc<MemoryRates> = Arc::new(rates);
    suite::all(&shared, "shared").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_tasks_let_exactly_sixty_through() {
    let rates: Arc<dyn RateStore> = Arc::new(MemoryRates::new());
    suite::concurrent_acquires(rates, "mem-concurrent", 100).await;
}

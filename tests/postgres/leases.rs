//! Block leases over Postgres (`tower_plans::lease::Leased`): the usage store suite, and four
//! instances on one database that never overshoot (200 concurrent creates at `limit - 1`; a
//! high-volume quota driven to exactly its maximum, mostly served from blocks).

use std::sync::Arc;
use std::time::Duration;

use tower_plans::lease::Leased;
use tower_plans::UsageStore;

use crate::common::*;
use crate::instances::{counting, two_hundred_concurrent_creates_let_exactly_one_through};
use crate::lease_quota::*;
use crate::usage_conformance as suite;

#[tokio::test]
async fn postgres_leased_store_passes_the_usage_store_suite() {
    let url = PostgresServer::shared().database();
    let leased = Leased::builder(connect(&url).await).instances(4).build();
    suite::all(&leased, "leased").await;
    // The suite's reservations run from blocks as well as on the store.
    suite::all(&Leased::new(connect(&url).await), "leased-one").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leased_concurrent_costs_let_exactly_what_fits_through() {
    let url = PostgresServer::shared().database();
    let leased: Arc<dyn UsageStore> = Arc::new(Leased::new(connect(&url).await));
    suite::concurrent_costs(Arc::clone(&leased), "leased-concurrent", 1000, 15, 5, 200).await;
    suite::concurrent_costs(leased, "leased-remainder", 1000, 4, 3, 200).await;
    let background: Arc<dyn UsageStore> = Arc::new(
        Leased::builder(connect(&url).await)
            .commit_in_background(true)
            .build(),
    );
    suite::concurrent_costs(background, "leased-background", 1000, 15, 5, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_hundred_concurrent_creates_over_four_leased_instances_let_exactly_one_through(
) {
    let url = PostgresServer::shared().database();
    let mut instances = Vec::new();
    for n in 0..4 {
        // Four stores on one database, each with a pool of its own, each wrapped.
        let store = pooled(&url, 10).await;
        let leased = Leased::builder(store.clone()).instances(4).build();
        let configure = counting(n);
        let instance =
            Instance::on(store, move |builder| configure(builder).count_usage(leased)).await;
        instances.push(Arc::new(instance));
    }
    let users: Vec<String> = (0..5).map(|round| format!("leased-{round}")).collect();
    two_hundred_concurrent_creates_let_exactly_one_through(&instances, &users).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_high_volume_quota_over_four_leased_instances_ends_at_exactly_its_maximum() {
    let url = PostgresServer::shared().database();
    let store = connect(&url).await;
    store
        .load_json(
            BULK,
            r#"{"ann": {"plan": "bulk", "usage": {"calls": 100}}}"#,
        )
        .await
        .unwrap();
    let mut instances = Vec::new();
    for _ in 0..4 {
        let store = pooled(&url, 10).await;
        instances.push(Arc::new(Leaser::new(
            store.clone(),
            store,
            Duration::from_secs(60),
        )));
    }
    a_high_volume_quota_ends_at_exactly_its_maximum(&instances, store, "ann", 100, 8).await;
}

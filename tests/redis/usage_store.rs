//! The Redis usage store passes the usage store suite (`support/usage_conformance.rs`), on one
//! Redis and on a cluster, and 200 concurrent reservations of 5 credits against a pool with 15
//! left, spread over four connections (four instances' worth), let exactly 3 through; of 200
//! concurrent calls marking one alert marker over those connections, exactly one sets it.

use std::sync::Arc;

use tower_plans::UsageStore;

use crate::common::*;
use crate::usage_conformance as suite;

/// A user id that every key of the layout escapes.
const TRICKY_USER: &str = "zo:ë {x}";

#[tokio::test]
async fn redis_usage_store_passes_the_usage_store_suite() {
    let server = RedisServer::start();
    let store = connect(&server).await.usage_store();
    suite::all(&store, "redis").await;
    suite::all(&store, TRICKY_USER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_concurrent_costs_over_four_connections_let_exactly_what_fits_through() {
    let server = RedisServer::start();
    let mut stores: Vec<Arc<dyn UsageStore>> = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(connect(&server).await.usage_store()));
    }
    suite::concurrent_costs_over(&stores, "redis-concurrent", 1000, 15, 5, 200).await;
    // Again at a cost that leaves a remainder: 3 of 4 credits fit once.
    suite::concurrent_costs_over(&stores, "redis-remainder", 1000, 4, 3, 200).await;
    suite::concurrent_marks_over(&stores, "redis-marks", 200).await;
    suite::concurrent_marks_over(&stores, TRICKY_USER, 200).await;
}

#[cfg(feature = "redis-cluster")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_usage_store_passes_the_usage_store_suite_and_counts_concurrent_costs() {
    use crate::cluster::{connect_cluster, RedisCluster};

    let cluster = RedisCluster::start();
    let mut stores: Vec<Arc<dyn UsageStore>> = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(connect_cluster(&cluster).await.usage_store()));
    }
    suite::all(stores[0].as_ref(), "cluster").await;
    suite::all(stores[1].as_ref(), TRICKY_USER).await;
    suite::concurrent_costs_over(&stores, "cluster-concurrent", 1000, 15, 5, 200).await;
    suite::concurrent_marks_over(&stores, "cluster-concurrent-marks", 200).await;
}

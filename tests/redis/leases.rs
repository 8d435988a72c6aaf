//! Block leases over Redis (`tower_plans::lease::Leased`): the usage store suite, four
//! instances' layers that never overshoot (200 concurrent creates at `limit - 1`; a
//! high-volume quota driven to exactly its maximum), and an instance killed with `kill -9`
//! while it holds a block, whose lost units stay within the documented bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tower_plans::lease::Leased;
use tower_plans::redis::{RedisConnection, RedisUsageStore};
use tower_plans::UsageStore;

use crate::common::*;
use crate::instances::{counting, two_hundred_concurrent_creates_let_exactly_one_through};
use crate::lease_quota::*;
use crate::usage_conformance as suite;

/// One instance of the quota tests over `conn`, its blocks leased for `lease`.
fn leaser(conn: &RedisConnection, lease: Duration) -> Leaser<RedisUsageStore> {
    Leaser::new(conn.plan_store(), conn.usage_store(), lease)
}

#[tokio::test]
async fn redis_leased_store_passes_the_usage_store_suite() {
    let server = RedisServer::start();
    let leased = Leased::builder(connect(&server).await.usage_store())
        .instances(4)
        .build();
    suite::all(&leased, "leased").await;
    // The suite's reservations run from blocks as well as on the store.
    suite::all(
        &Leased::new(connect(&server).await.usage_store()),
        "leased-one",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_leased_concurrent_costs_let_exactly_what_fits_through() {
    let server = RedisServer::start();
    let leased: Arc<dyn UsageStore> = Arc::new(Leased::new(connect(&server).await.usage_store()));
    suite::concurrent_costs(Arc::clone(&leased), "leased-concurrent", 1000, 15, 5, 200).await;
    suite::concurrent_costs(leased, "leased-remainder", 1000, 4, 3, 200).await;
    let background: Arc<dyn UsageStore> = Arc::new(
        Leased::builder(connect(&server).await.usage_store())
            .commit_in_background(true)
            .build(),
    );
    suite::concurrent_costs(background, "leased-background", 1000, 15, 5, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_hundred_concurrent_creates_over_four_leased_instances_let_exactly_one_through() {
    let server = RedisServer::start();
    let mut instances = Vec::new();
    for n in 0..4 {
        let conn = connect(&server).await;
        let leased = Leased::builder(conn.usage_store()).instances(4).build();
        let configure = counting(n);
        let instance =
            Instance::on(conn, move |builder| configure(builder).count_usage(leased)).await;
        instances.push(Arc::new(instance));
    }
    let users: Vec<String> = (0..5).map(|round| format!("leased-{round}")).collect();
    two_hundred_concurrent_creates_let_exactly_one_through(&instances, &users).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_high_volume_quota_over_four_leased_instances_ends_at_exactly_its_maximum() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    conn.plan_store()
        .load_json(
            BULK,
            r#"{"ann": {"plan": "bulk", "usage": {"calls": 100}}}"#,
        )
        .await
        .unwrap();
    let mut instances = Vec::new();
    for _ in 0..4 {
        let conn = connect(&server).await;
        instances.push(Arc::new(leaser(&conn, Duration::from_secs(60))));
    }
    a_high_volume_quota_ends_at_exactly_its_maximum(&instances, conn.usage_store(), "ann", 100, 8)
        .await;
}

/// The environment variable that makes [`lease_holder_process`] run: the Redis URL.
const HOLDER: &str = "TOWER_PLANS_LEASE_HOLDER";

/// Not a test of its own: the instance that `redis_an_instance_killed_while_holding_a_block…`
/// runs in a process of its own and kills ([`hold_a_block_until_killed`]).
#[tokio::test]
#[ignore = "the process that the kill -9 test starts and kills"]
async fn lease_holder_process() {
    let url = std::env::var(HOLDER).expect("started by the kill -9 test, with the Redis URL");
    let conn = RedisConnection::open(&url)
        .await
        .expect("redis")
        .key_prefix("test");
    hold_a_block_until_killed(conn.plan_store(), conn.usage_store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_an_instance_killed_while_holding_a_block_loses_at_most_the_block() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    conn.plan_store()
        .load_json(
            BULK,
            r#"{"bob": {"plan": "bulk", "usage": {"calls": 2700}}}"#,
        )
        .await
        .unwrap();
    let spawned_at = Instant::now();
    let holder = start_holder("leases::lease_holder_process", HOLDER, &server.url()).await;
    // Three instances drive the quota once the holder is killed.
    let mut instances = Vec::new();
    for _ in 0..3 {
        let conn = connect(&server).await;
        instances.push(Arc::new(leaser(&conn, Duration::from_secs(60))));
    }
    a_killed_holder_loses_at_most_its_block(holder, spawned_at, conn.usage_store(), &instances)
        .await;
}

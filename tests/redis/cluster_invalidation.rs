//! The invalidation subscription on a cluster follows the cluster: a node that the other nodes
//! forget still runs and answers its health checks, but no longer hears the cluster's messages;
//! the listening task leaves it for another node.

use std::time::Duration;

use tower_plans::redis::driver as redis;
use tower_plans::redis::RedisInvalidator;

use crate::cluster::*;
use crate::common::*;
use crate::instances::a_plan_change_is_seen_by_every_instance;

const CHANNEL: &str = "test:invalidate";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_the_invalidator_leaves_a_node_that_the_cluster_forgot() {
    let mut cluster = RedisCluster::start();
    let conn = connect_cluster(&cluster).await;
    let layer = builder(&conn)
        .user_cache(tower_plans::UserCache::time_to_live(
            Duration::from_secs(3600),
            1000,
        ))
        .build()
        .unwrap();
    let start = || {
        RedisInvalidator::builder(&conn)
            .health_check(Duration::from_millis(100))
            .backoff(Duration::from_millis(20), Duration::from_millis(200))
            .start(layer.invalidator())
            .unwrap()
    };
    // An invalidator that listens on a replica: every other node may forget a replica (a
    // replica refuses to forget its master).
    let replicas: Vec<u16> = cluster
        .masters()
        .into_iter()
        .map(|master| cluster.replica_of(master))
        .collect();
    let mut found = None;
    for _ in 0..30 {
        let invalidator = start();
        within(Duration::from_secs(5), invalidator.subscribed()).await;
        let on = listening(&cluster);
        assert_eq!(on.len(), 1, "one subscription: {on:?}");
        if replicas.contains(&on[0]) {
            found = Some((invalidator, on[0]));
            break;
        }
        drop(invalidator);
        let gone = eventually(Duration::from_secs(2), || async {
            listening(&cluster).is_empty()
        })
        .await;
        assert!(gone.is_some(), "a dropped invalidator still listens");
    }
    let (invalidator, node) = found.expect("an invalidator on a replica in 30 tries");

    // Every other node forgets it.
    let id = cluster
        .view_from(node)
        .into_iter()
        .find(|line| line.flags.iter().any(|flag| flag == "myself"))
        .expect("the node's own line")
        .id;
    for port in cluster
        .running()
        .filter(|&port| port != node)
        .collect::<Vec<_>>()
    {
        let _: () = query(port, redis::cmd("CLUSTER").arg("FORGET").arg(&id));
    }
    // The invalidator leaves it at a health check, and listens on a node of the cluster.
    let moved = eventually(Duration::from_secs(5), || async {
        let on = listening(&cluster);
        invalidator.is_subscribed() && on.len() == 1 && on[0] != node
    })
    .await;
    assert!(
        moved.is_some(),
        "still on {node}: {:?}",
        listening(&cluster)
    );

    // Messages reach it again (the forgotten node gone, so that no one else picks it).
    cluster.kill(node);
    let first = Instance {
        conn: conn.clone(),
        layer: layer.clone(),
        invalidator,
    };
    let second = Instance::on(connect_cluster(&cluster).await, |b| {
        b.user_cache(tower_plans::UserCache::time_to_live(
            Duration::from_secs(3600),
            1000,
        ))
    })
    .await;
    a_plan_change_is_seen_by_every_instance(&[first, second], "ann").await;
}

/// The running nodes on which someone listens to the invalidations.
fn listening(cluster: &RedisCluster) -> Vec<u16> {
    cluster
        .subscribers(CHANNEL)
        .into_iter()
        .filter(|&(_, count)| count > 0)
        .map(|(port, _)| port)
        .collect()
}

//! The multi-instance tests on a Redis Cluster, with users on all three masters: concurrent
//! creates that never overshoot, and plan changes that reach every instance, also after the node
//! an instance listened on died.

use std::sync::Arc;
use std::time::Duration;

use tower_plans::redis::driver as redis;

use crate::cluster::*;
use crate::common::*;
use crate::instances::{
    a_plan_change_is_seen_by_every_instance, counting,
    two_hundred_concurrent_creates_let_exactly_one_through,
};
use crate::keys::hash_tag;

const CHANNEL: &str = "test:invalidate";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_two_hundred_concurrent_creates_over_four_instances_let_exactly_one_through_on_every_master(
) {
    let cluster = RedisCluster::start();
    let spread = users_on_each_master(&cluster, "user", 2);
    let mut instances = Vec::new();
    for n in 0..4 {
        let conn = connect_cluster(&cluster).await;
        instances.push(Arc::new(Instance::on(conn, counting(n)).await));
    }
    // One round per user, the masters in turn.
    let users: Vec<String> = (0..2)
        .flat_map(|n| spread.values().map(move |users| users[n].clone()))
        .collect();
    two_hundred_concurrent_creates_let_exactly_one_through(&instances, &users).await;

    // Each master holds the records and the counts of its users, and of no other.
    for (&master, users) in &spread {
        let keys: Vec<String> = query(master, redis::cmd("KEYS").arg("test:{*"));
        let mut tags: Vec<&str> = keys.iter().map(|key| hash_tag(key)).collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(
            tags, *users,
            "the users on the master on {master}: {keys:?}"
        );
        for user in users {
            let exists: i64 = query(
                master,
                redis::cmd("EXISTS")
                    .arg(user_key(user))
                    .arg(format!("test:{{{user}}}:used")),
            );
            assert_eq!(exists, 2, "{user}'s record and counts on {master}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_a_plan_change_is_seen_by_every_instance_also_after_the_node_they_listen_on_died(
) {
    let mut cluster = RedisCluster::start();
    let spread = users_on_each_master(&cluster, "ann", 1);
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(Instance::on(connect_cluster(&cluster).await, cached).await);
    }
    for user in spread.values().flatten() {
        a_plan_change_is_seen_by_every_instance(&instances, user).await;
    }

    // Each instance listens on one node.
    let subscribers = cluster.subscribers(CHANNEL);
    let total: i64 = subscribers.iter().map(|(_, count)| count).sum();
    assert_eq!(total, 4, "{subscribers:?}");
    // The node most of them listen on dies (a replica when one has listeners: no failover).
    let replicas: Vec<u16> = spread
        .keys()
        .map(|&master| cluster.replica_of(master))
        .collect();
    let (victim, listeners) = subscribers
        .iter()
        .copied()
        .filter(|(_, count)| *count > 0)
        .max_by_key(|&(port, count)| (replicas.contains(&port), count))
        .expect("a node with listeners");
    let master = spread.contains_key(&victim);
    let slot = master.then(|| cluster.keyslot(&user_key(&spread[&victim][0])));
    cluster.kill(victim);

    // Its listeners notice, drop their caches and listen on another node.
    let moved = eventually(Duration::from_secs(10), || async {
        instances
            .iter()
            .all(|instance| instance.invalidator.is_subscribed())
            && cluster
                .subscribers(CHANNEL)
                .iter()
                .map(|(_, count)| count)
                .sum::<i64>()
                == 4
    })
    .await;
    assert!(
        moved.is_some(),
        "the {listeners} listeners on {victim} did not move: {:?}",
        cluster.subscribers(CHANNEL)
    );
    if let Some(slot) = slot {
        cluster.wait_for_failover(victim, slot);
    }
    // Changes reach every instance again, for users on every master.
    for user in spread.values().flatten() {
        a_plan_change_is_seen_by_every_instance(&instances, user).await;
    }
}

/// An instance's layer with a one-hour user cache.
fn cached(builder: tower_plans::PlanLimitLayerBuilder) -> tower_plans::PlanLimitLayerBuilder {
    builder.user_cache(tower_plans::UserCache::time_to_live(
        Duration::from_secs(3600),
        1000,
    ))
}

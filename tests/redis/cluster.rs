//! What the cluster tests share: a cluster, connections to it, and users spread over its
//! masters.

use std::collections::BTreeMap;

use tower_plans::redis::RedisConnection;

pub use crate::redis_cluster::{query, RedisCluster};

/// A connection to `cluster` under the tests' prefix.
pub async fn connect_cluster(cluster: &RedisCluster) -> RedisConnection {
    let conn = RedisConnection::open_cluster(cluster.urls())
        .await
        .expect("connect to the test cluster")
        .key_prefix("test");
    assert!(conn.is_cluster());
    conn
}

/// The key of `user`'s record under the tests' prefix (`user` needs no escaping).
pub fn user_key(user: &str) -> String {
    assert!(
        user.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "{user:?} would be escaped"
    );
    format!("test:{{{user}}}:user")
}

/// `per_master` user ids (`{prefix}-{n}`, the first that fill every master) on each of the
/// three masters, by the master's port.
pub fn users_on_each_master(
    cluster: &RedisCluster,
    prefix: &str,
    per_master: usize,
) -> BTreeMap<u16, Vec<String>> {
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "three masters: {masters:?}");
    let mut spread: BTreeMap<u16, Vec<String>> =
        masters.iter().map(|&port| (port, Vec::new())).collect();
    for n in 0..1000 {
        if spread.values().all(|users| users.len() == per_master) {
            return spread;
        }
        let user = format!("{prefix}-{n}");
        let master = cluster.master_of(&user_key(&user));
        let users = spread
            .get_mut(&master)
            .unwrap_or_else(|| panic!("{user} is on {master}, not a master of {masters:?}"));
        if users.len() < per_master {
            users.push(user);
        }
    }
    panic!("could not find {per_master} users for each master: {spread:?}");
}

#[tokio::test]
async fn redis_cluster_bad_nodes_are_errors_not_panics() {
    use tower_plans::redis::Error;

    let none: [&str; 0] = [];
    let error = RedisConnection::open_cluster(none).await.unwrap_err();
    assert!(error.to_string().contains("empty"), "{error}");
    let error = RedisConnection::open_cluster(["not a url"])
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Redis(_)), "{error}");
    // A port nothing listens on: refused at once.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://127.0.0.1:{}/", free.local_addr().unwrap().port());
    drop(free);
    let started = std::time::Instant::now();
    let error = RedisConnection::open_cluster([url]).await.unwrap_err();
    assert!(matches!(error, Error::Redis(_)), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

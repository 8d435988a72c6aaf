//! A master of the cluster killed mid-run: the users of the other masters are served as before;
//! the killed master's users are answered within `store_timeout` (503 failing closed, passed
//! failing open); once its replica has taken over they are served again by the same instances,
//! and no count ever went over its limit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tower_plans::store::{Count, Counter};
use tower_plans::{UsageStore, UserCache};

use crate::cluster::*;
use crate::common::*;
use crate::redis_cluster::NODE_TIMEOUT;

const STORE_TIMEOUT: Duration = Duration::from_millis(500);
/// How late past `store_timeout` an answer may come (a loaded machine's scheduling).
const SLACK: Duration = Duration::from_millis(500);
/// Free keeps 5 clients.
const LIMIT: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_a_master_killed_mid_run_fails_only_its_users_until_its_replica_takes_over() {
    let mut cluster = RedisCluster::start();
    let spread = users_on_each_master(&cluster, "user", 2);
    let cache = || UserCache::time_to_live(Duration::from_secs(3600), 100);
    let mut closed = Vec::new();
    for _ in 0..2 {
        let conn = connect_cluster(&cluster).await;
        let instance = Instance::on(conn, |b| b.user_cache(cache()).store_timeout(STORE_TIMEOUT));
        closed.push(Arc::new(instance.await));
    }
    let open = Arc::new(
        Instance::on(connect_cluster(&cluster).await, |b| {
            b.user_cache(cache())
                .store_timeout(STORE_TIMEOUT)
                .fail_open(true)
        })
        .await,
    );
    let users: Vec<String> = spread.values().flatten().cloned().collect();
    let records: serde_json::Map<String, serde_json::Value> = users
        .iter()
        .map(|user| {
            let record = serde_json::json!({"plan": "free", "usage": {"clients": 0}});
            (user.clone(), record)
        })
        .collect();
    let plans = closed[0].conn.plan_store();
    let records = serde_json::Value::Object(records).to_string();
    plans.load_json(CATALOG, &records).await.unwrap();

    // The creates each user got from the instances that fail closed (those that count).
    let mut created: BTreeMap<String, usize> = users.iter().map(|u| (u.clone(), 0)).collect();
    for user in &users {
        for instance in &closed {
            let (status, body) = instance.send(Method::POST, "/clients", user).await;
            assert_eq!(status, StatusCode::CREATED, "{user}: {body}");
            *created.get_mut(user).unwrap() += 1;
        }
    }

    // The first master dies, once its replica has every write.
    let (&victim, victims) = spread.iter().next().unwrap();
    let others: Vec<String> = users
        .iter()
        .filter(|u| !victims.contains(u))
        .cloned()
        .collect();
    let replica = cluster.replica_of(victim);
    let slot = cluster.keyslot(&user_key(&victims[0]));
    cluster.sync_replicas(victim);
    cluster.kill(victim);
    let killed = Instant::now();

    // Before the cluster gives up on it, twice: every request at once.
    for _ in 0..2 {
        let mut calls = Vec::new();
        for user in &others {
            calls.push(call(&closed[0], "closed", Method::POST, "/clients", user));
            calls.push(call(&closed[1], "closed", Method::GET, "/tasks", user));
        }
        for user in victims {
            calls.push(call(&closed[0], "closed", Method::POST, "/clients", user));
            calls.push(call(&closed[1], "closed", Method::POST, "/clients", user));
            calls.push(call(&open, "open", Method::POST, "/clients", user));
        }
        for call in calls {
            let (instance, method, user, status, body, took) = call.await.unwrap();
            assert!(
                took < STORE_TIMEOUT + SLACK,
                "{method} for {user} answered after {took:?}"
            );
            let expected = match (victims.contains(&user), instance == "open", &method) {
                (false, _, &Method::POST) => (StatusCode::CREATED, "free usage="),
                (false, _, _) => (StatusCode::OK, "free usage=0"),
                (true, false, _) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    r#"{"reason":"plan_store_unavailable"}"#,
                ),
                (true, true, _) => (StatusCode::CREATED, "unchecked"),
            };
            assert_eq!(
                status, expected.0,
                "{method} for {user} on {instance}: {body}"
            );
            assert!(body.starts_with(expected.1), "{method} for {user}: {body}");
            if status == StatusCode::CREATED && instance != "open" {
                *created.get_mut(&user).unwrap() += 1;
            }
        }
    }
    assert!(
        killed.elapsed() < NODE_TIMEOUT,
        "the requests took {:?}, as long as the cluster takes to notice a dead master: \
         the test saw nothing before the failover",
        killed.elapsed()
    );

    // The replica takes over; the same instances serve the killed master's users again.
    assert_eq!(cluster.wait_for_failover(victim, slot), replica);
    for (user, instance) in victims.iter().zip(&closed) {
        let last = std::sync::Mutex::new(None);
        let back = eventually(Duration::from_secs(10), || async {
            let (status, body) = instance.send(Method::POST, "/clients", user).await;
            *last.lock().unwrap() = Some((status, body));
            status == StatusCode::CREATED
        })
        .await;
        let last = last.lock().unwrap();
        assert!(back.is_some(), "{user} was not served again: {last:?}");
        *created.get_mut(user).unwrap() += 1;
    }
    // The instance that fails open learns the new master on its own schedule too: until then it
    // passes the killed master's users unchecked.
    for user in victims {
        let checked = eventually(Duration::from_secs(10), || async {
            let (_, body) = open.send(Method::GET, "/tasks", user).await;
            body != "unchecked"
        })
        .await;
        assert!(
            checked.is_some(),
            "{user} was not checked again failing open"
        );
    }
    for user in victims {
        for (n, instance) in [&closed[0], &closed[1], &open].into_iter().enumerate() {
            let (status, body) = instance.send(Method::GET, "/tasks", user).await;
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::OK, "free usage=0"),
                "{user} on instance {n}"
            );
        }
    }

    // Up to the limit, all at once: every user gets exactly what is left.
    let mut calls = Vec::new();
    for user in &users {
        for n in 0..10 {
            calls.push(call(
                &closed[n % 2],
                "closed",
                Method::POST,
                "/clients",
                user,
            ));
        }
    }
    for call in calls {
        let (_, _, user, status, body, took) = call.await.unwrap();
        match status {
            StatusCode::CREATED => *created.get_mut(&user).unwrap() += 1,
            StatusCode::FORBIDDEN => assert!(body.contains(r#""maximum":5"#), "{body}"),
            other => {
                panic!("{user}: unexpected {other} after {took:?}: {body}; victims {victims:?}")
            }
        }
    }
    let usage = closed[1].conn.usage_store();
    for user in &users {
        assert_eq!(created[user], LIMIT, "{user}: {created:?}");
        let counter = Counter::items(user.as_str(), "clients");
        let settled = eventually(Duration::from_secs(2), || async {
            usage.get(&counter).await.ok().flatten() == Some(Count { used: 5, held: 0 })
        })
        .await;
        assert!(settled.is_some(), "{user}: {:?}", usage.get(&counter).await);
    }

    // Invalidations still reach every instance.
    let user = &victims[0];
    plans
        .set_user_json(user, r#"{"plan": "pro", "usage": {"clients": 5}}"#)
        .await
        .unwrap();
    closed[0].invalidator.user(user).await.unwrap();
    for instance in [&closed[1], &open] {
        let seen = eventually(Duration::from_secs(2), || async {
            instance.send(Method::GET, "/tasks", user).await.1 == "pro usage=0"
        })
        .await;
        assert!(seen.is_some(), "the change did not reach every instance");
    }
}

/// Sends one request on its own task: answers the instance's `name`, the method,
/// the user, the status, the body and how long it took.
fn call(
    instance: &Arc<Instance>,
    name: &'static str,
    method: Method,
    uri: &'static str,
    user: &str,
) -> tokio::task::JoinHandle<(&'static str, Method, String, StatusCode, String, Duration)> {
    let instance = Arc::clone(instance);
    let user = user.to_owned();
    tokio::spawn(async move {
        let started = Instant::now();
        let (status, body) = instance.send(method.clone(), uri, &user).await;
        (name, method, user, status, body, started.elapsed())
    })
}

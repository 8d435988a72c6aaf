//! Several instances, each with its own layer, caches and pool of connections, sharing one
//! database: counts that never overshoot across instances (one unit, and five credits a
//! request), and plan changes seen by every instance within a second.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use tower_plans::store::{Count, Counter};
use tower_plans::{PlanLimitLayerBuilder, UsageStore, UserCache};

use crate::common::*;

const REQUESTS: usize = 200;

/// The layer of the `n`th instance: a store timeout long enough for 200 concurrent requests;
/// even instances cache users, odd ones do not (the counts are Postgres's either way).
pub fn counting(n: usize) -> impl FnOnce(PlanLimitLayerBuilder) -> PlanLimitLayerBuilder {
    move |builder| {
        let builder = builder.store_timeout(Duration::from_secs(10));
        if n.is_multiple_of(2) {
            builder.user_cache(UserCache::time_to_live(Duration::from_secs(3600), 1000))
        } else {
            builder
        }
    }
}

/// Four instances on a fresh database, each with a pool of 10 connections.
async fn four(url: &str) -> Vec<Arc<Instance>> {
    let mut instances = Vec::new();
    for n in 0..4 {
        instances.push(Arc::new(Instance::new(url, counting(n)).await));
    }
    instances
}

/// 200 concurrent `method uri` requests by `user`, spread over `instances`, started together;
/// returns how many were allowed (201), checking that every other one was refused with a body
/// that holds `refused`.
async fn concurrently(instances: &[Arc<Instance>], uri: &str, user: &str, refused: &str) -> usize {
    let start = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|n| {
            let instance = Arc::clone(&instances[n % instances.len()]);
            let start = Arc::clone(&start);
            let (uri, user) = (uri.to_owned(), user.to_owned());
            tokio::spawn(async move {
                start.wait().await;
                instance.send(Method::POST, &uri, &user).await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::FORBIDDEN => assert!(body.contains(refused), "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    created
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_hundred_concurrent_creates_over_four_instances_let_exactly_one_through() {
    let url = PostgresServer::shared().database();
    let instances = four(&url).await;
    let users: Vec<String> = (0..5).map(|round| format!("user-{round}")).collect();
    two_hundred_concurrent_creates_let_exactly_one_through(&instances, &users).await;
}

/// For each of `users` in turn, one round: the user on free (5 clients) with 4, and 200
/// concurrent creates spread over `instances`: exactly one is created, and Postgres counts 5.
pub async fn two_hundred_concurrent_creates_let_exactly_one_through(
    instances: &[Arc<Instance>],
    users: &[String],
) {
    instances[0].store.set_catalog_json(CATALOG).await.unwrap();
    for (round, user) in users.iter().enumerate() {
        // Free keeps 5 clients; the user has 4.
        instances[0]
            .store
            .set_user_json(user, r#"{"plan": "free", "usage": {"clients": 4}}"#)
            .await
            .unwrap();
        let created = concurrently(instances, "/clients", user, r#""maximum":5"#).await;
        assert_eq!(created, 1, "round {round}");
        let count = instances[1]
            .store
            .get(&Counter::items(user.as_str(), "clients"))
            .await
            .unwrap();
        assert_eq!(count, Some(Count { used: 5, held: 0 }), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_hundred_concurrent_cost_five_requests_over_four_instances_take_what_the_pool_has(
) {
    let url = PostgresServer::shared().database();
    let instances = four(&url).await;
    instances[0].store.set_catalog_json(CATALOG).await.unwrap();
    // Free's pool holds 20 credits; an image costs 5.
    for (round, used) in [15u64, 11, 0].into_iter().enumerate() {
        let user = format!("artist-{round}");
        instances[0]
            .store
            .set_user_json(&user, r#"{"plan": "free"}"#)
            .await
            .unwrap();
        let pool = Counter::credits(user.as_str(), "ai");
        instances[0].store.set(&pool, used).await.unwrap();
        let created = concurrently(&instances, "/images", &user, r#""reason":"credits""#).await;
        let fits = (20 - used) / 5;
        assert_eq!(created as u64, fits, "round {round}");
        assert_eq!(
            instances[2].store.get(&pool).await.unwrap(),
            Some(Count {
                used: used + fits * 5,
                held: 0
            }),
            "round {round}"
        );
    }
}

#[tokio::test]
async fn postgres_a_plan_change_on_one_instance_is_seen_by_the_other_three_within_a_second() {
    let url = PostgresServer::shared().database();
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(Instance::cached(&url).await);
    }
    let user = "ann";
    let free = r#"{"plan": "free", "usage": {"clients": 1}}"#;
    instances[0]
        .store
        .load_json(CATALOG, &format!(r#"{{"ann": {free}}}"#))
        .await
        .unwrap();
    for instance in &instances {
        let (status, body) = instance.send(Method::GET, "/tasks", user).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "free usage=0"));
    }
    // Through instance 0's store: the write notifies every instance as it commits.
    instances[0]
        .store
        .set_user_json(user, r#"{"plan": "pro", "usage": {"clients": 1}}"#)
        .await
        .unwrap();
    for (n, instance) in instances.iter().enumerate() {
        let seen = eventually(Duration::from_secs(1), || async {
            instance.send(Method::GET, "/tasks", user).await.1 == "pro usage=0"
        })
        .await;
        assert!(
            seen.is_some(),
            "instance {n} did not see the change within a second"
        );
    }
    // A new catalog, through instance 3.
    instances[3]
        .store
        .set_catalog_json(
            r#"[{"name": "free", "tasks": {"index": 0}}, {"name": "pro", "tasks": {"index": 0}}]"#,
        )
        .await
        .unwrap();
    for (n, instance) in instances.iter().enumerate() {
        let seen = eventually(Duration::from_secs(1), || async {
            instance.send(Method::GET, "/tasks", user).await.0 == StatusCode::FORBIDDEN
        })
        .await;
        assert!(seen.is_some(), "instance {n} did not see the new catalog");
    }
    // An invalidation sent by hand (a change the triggers do not see) travels the same way.
    instances[0].store.set_catalog_json(CATALOG).await.unwrap();
    for instance in &instances {
        eventually(Duration::from_secs(1), || async {
            instance.send(Method::GET, "/tasks", user).await.0 == StatusCode::OK
        })
        .await
        .expect("the catalog is back");
    }
    tower_plans::postgres::driver::raw_sql(
        "ALTER TABLE tower_plans.subscribers DISABLE TRIGGER notify;
         UPDATE tower_plans.subscribers SET plan = 'free' WHERE id = 'ann';
         ALTER TABLE tower_plans.subscribers ENABLE TRIGGER notify;",
    )
    .execute(instances[0].store.pool())
    .await
    .unwrap();
    for instance in &instances {
        assert_eq!(
            instance.send(Method::GET, "/tasks", user).await.1,
            "pro usage=0",
            "cached"
        );
    }
    instances[1].invalidator.all_users().await.unwrap();
    for (n, instance) in instances.iter().enumerate() {
        let seen = eventually(Duration::from_secs(1), || async {
            instance.send(Method::GET, "/tasks", user).await.1 == "free usage=0"
        })
        .await;
        assert!(seen.is_some(), "instance {n} did not drop its users");
    }
}

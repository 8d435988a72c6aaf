//! Several instances, each with its own layer and caches, sharing one Redis: counts that never
//! overshoot across instances, plan changes broadcast to every instance, and the reservations of
//! a vanished holder freed by their lease.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use tower::{service_fn, Layer, Service};
use tower_plans::store::{Count, Counter};
use tower_plans::{PlanLimitLayerBuilder, UsageStore, UserCache};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_hundred_concurrent_creates_over_four_instances_let_exactly_one_through() {
    let server = RedisServer::start();
    let mut instances = Vec::new();
    for n in 0..4 {
        let conn = connect(&server).await;
        instances.push(Arc::new(Instance::on(conn, counting(n)).await));
    }
    let users: Vec<String> = (0..10).map(|round| format!("user-{round}")).collect();
    two_hundred_concurrent_creates_let_exactly_one_through(&instances, &users).await;
}

/// The layer of the `n`th of the instances that count concurrent creates: a store timeout
/// long enough for 200 concurrent requests; even instances cache users, odd ones do not (the
/// counts are Redis's either way).
pub fn counting(n: usize) -> impl FnOnce(PlanLimitLayerBuilder) -> PlanLimitLayerBuilder {
    move |builder| {
        let builder = builder.store_timeout(Duration::from_secs(5));
        if n.is_multiple_of(2) {
            builder.user_cache(UserCache::time_to_live(Duration::from_secs(3600), 1000))
        } else {
            builder
        }
    }
}

/// For each of `users` in turn, one round: the user on free (5 clients) with 4, and 200
/// concurrent creates spread over `instances`: exactly one is created, and Redis counts 5.
pub async fn two_hundred_concurrent_creates_let_exactly_one_through(
    instances: &[Arc<Instance>],
    users: &[String],
) {
    const REQUESTS: usize = 200;
    let plans = instances[0].conn.plan_store();
    plans.set_catalog_json(CATALOG).await.unwrap();

    for (round, user) in users.iter().enumerate() {
        // Free keeps 5 clients; the user has 4.
        let user = user.clone();
        let record = r#"{"plan": "free", "usage": {"clients": 4}}"#;
        plans.set_user_json(&user, record).await.unwrap();

        let start = Arc::new(tokio::sync::Barrier::new(REQUESTS));
        let tasks: Vec<_> = (0..REQUESTS)
            .map(|n| {
                let instance = Arc::clone(&instances[n % instances.len()]);
                let start = Arc::clone(&start);
                let user = user.clone();
                tokio::spawn(async move {
                    start.wait().await;
                    instance.send(Method::POST, "/clients", &user).await
                })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            let (status, body) = task.await.unwrap();
            match status {
                StatusCode::CREATED => created += 1,
                StatusCode::FORBIDDEN => {
                    assert!(body.contains(r#""maximum":5"#), "round {round}: {body}");
                }
                other => panic!("round {round}: unexpected {other}: {body}"),
            }
        }
        assert_eq!(created, 1, "round {round}");
        let count = instances[1]
            .conn
            .usage_store()
            .get(&Counter::items(user.as_str(), "clients"))
            .await
            .unwrap();
        assert_eq!(count, Some(Count { used: 5, held: 0 }), "round {round}");
    }
}

#[tokio::test]
async fn redis_a_plan_change_published_on_one_instance_is_seen_by_the_other_three_within_a_second()
{
    let server = RedisServer::start();
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(Instance::cached(&server).await);
    }
    a_plan_change_is_seen_by_every_instance(&instances, "ann").await;
}

/// `user` on free, cached by every instance (two or more); a change of plan behind the caches'
/// back, published by the first instance, is seen by every other within a second; so are a new
/// catalog and "all users", published by others. Leaves the catalog and `user` as they were.
pub async fn a_plan_change_is_seen_by_every_instance(instances: &[Instance], user: &str) {
    let free = r#"{"plan": "free", "usage": {"clients": 1}}"#;
    let plans = instances[0].conn.plan_store();
    plans
        .load_json(CATALOG, &format!("{{{}: {free}}}", serde_json::json!(user)))
        .await
        .unwrap();
    // Every instance caches the user on free.
    for instance in instances {
        let (status, body) = instance.send(Method::GET, "/tasks", user).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "free usage=0"));
    }
    // Behind the caches' back, the user moves to pro: the caches still say free.
    plans
        .set_user_json(user, r#"{"plan": "pro", "usage": {"clients": 1}}"#)
        .await
        .unwrap();
    for instance in instances {
        let (_, body) = instance.send(Method::GET, "/tasks", user).await;
        assert_eq!(body, "free usage=0", "still cached");
    }

    // Instance 0 publishes the change.
    instances[0].invalidator.user(user).await.unwrap();
    assert_eq!(
        instances[0].send(Method::GET, "/tasks", user).await.1,
        "pro usage=0",
        "the publisher applies it at once"
    );
    for (n, instance) in instances.iter().enumerate().skip(1) {
        let seen = eventually(Duration::from_secs(1), || async {
            instance.send(Method::GET, "/tasks", user).await.1 == "pro usage=0"
        })
        .await;
        assert!(
            seen.is_some(),
            "instance {n} did not see the change within a second"
        );
    }

    // The catalog and all users travel the same way.
    plans
        .set_catalog_json(
            r#"[{"name": "free", "tasks": {"index": 0}}, {"name": "pro", "tasks": {"index": 0}}]"#,
        )
        .await
        .unwrap();
    instances[instances.len() - 1]
        .invalidator
        .catalog()
        .await
        .unwrap();
    for (n, instance) in instances.iter().enumerate() {
        let seen = eventually(Duration::from_secs(1), || async {
            instance.send(Method::GET, "/tasks", user).await.0 == StatusCode::FORBIDDEN
        })
        .await;
        assert!(seen.is_some(), "instance {n} did not see the new catalog");
    }
    plans.set_catalog_json(CATALOG).await.unwrap();
    plans.set_user_json(user, free).await.unwrap();
    instances[1].invalidator.catalog().await.unwrap();
    instances[2 % instances.len()]
        .invalidator
        .all_users()
        .await
        .unwrap();
    for (n, instance) in instances.iter().enumerate() {
        let seen = eventually(Duration::from_secs(1), || async {
            instance.send(Method::GET, "/tasks", user).await.1 == "free usage=0"
        })
        .await;
        assert!(seen.is_some(), "instance {n} did not drop its users");
    }
}

#[tokio::test]
async fn redis_a_reservation_whose_holder_vanished_is_freed_when_its_lease_ends() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    conn.plan_store()
        .load_json(
            CATALOG,
            r#"{"ann": {"plan": "free", "usage": {"clients": 4}}}"#,
        )
        .await
        .unwrap();
    let lease = Duration::from_millis(400);
    let layer = builder(&conn).lease(lease).build().unwrap();

    // A handler that never answers, and tells when it was called.
    let called = Arc::new(tokio::sync::Notify::new());
    let handler = {
        let called = Arc::clone(&called);
        service_fn(
            move |_request: http::Request<http_body_util::Full<bytes::Bytes>>| {
                let called = Arc::clone(&called);
                async move {
                    called.notify_one();
                    std::future::pending::<
                        Result<
                            http::Response<http_body_util::Full<bytes::Bytes>>,
                            std::convert::Infallible,
                        >,
                    >()
                    .await
                }
            },
        )
    };
    let mut service = layer.layer(handler);
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .unwrap();
    let mut call = Box::pin(service.call(request(Method::POST, "/clients", "ann")));
    tokio::select! {
        _ = &mut call => panic!("the handler never answers"),
        () = called.notified() => {}
    }
    // The holder vanishes without releasing: its future is leaked, never dropped.
    std::mem::forget(call);
    let held_at = std::time::Instant::now();

    let usage = conn.usage_store();
    let ann = Counter::items("ann", "clients");
    assert_eq!(
        usage.get(&ann).await.unwrap(),
        Some(Count { used: 4, held: 1 })
    );
    let (status, body) = send(&layer, Method::POST, "/clients", "ann").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains(r#""maximum":5,"usage":5"#), "{body}");

    let freed = eventually(Duration::from_secs(3), || async {
        usage.get(&ann).await.unwrap() == Some(Count { used: 4, held: 0 })
    })
    .await;
    assert!(freed.is_some(), "the lease did not free the unit");
    assert!(held_at.elapsed() >= lease - Duration::from_millis(50));
    let (status, body) = send(&layer, Method::POST, "/clients", "ann").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::CREATED, "free usage=4")
    );
    assert_eq!(
        usage.get(&ann).await.unwrap(),
        Some(Count { used: 5, held: 0 })
    );
}

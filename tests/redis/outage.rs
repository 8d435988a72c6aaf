//! Redis stopped mid-run: requests are answered within `store_timeout` (503 failing closed, or
//! passed failing open), the subscription is lost and every cache dropped; Redis restarted:
//! requests succeed again and invalidations flow again, without a restart of the instances.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tower_plans::redis::RedisInvalidator;
use tower_plans::store::{Count, Counter};
use tower_plans::{UsageStore, UserCache};

use crate::common::*;

const STORE_TIMEOUT: Duration = Duration::from_millis(500);
const USERS: &str = r#"{"ann": {"plan": "free", "usage": {"clients": 1}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_answers_within_store_timeout_and_recovers_when_restarted() {
    let mut server = RedisServer::start();
    let cache = || UserCache::time_to_live(Duration::from_secs(3600), 100);
    let closed = Instance::new(&server, |b| b.user_cache(cache())).await;
    let open = Instance::new(&server, |b| b.user_cache(cache()).fail_open(true)).await;
    let plans = closed.conn.plan_store();
    plans.load_json(CATALOG, USERS).await.unwrap();
    assert_eq!(
        closed.send(Method::POST, "/clients", "ann").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        open.send(Method::POST, "/clients", "ann").await.0,
        StatusCode::CREATED
    );

    server.stop();

    // Both instances notice that their subscription is gone.
    for instance in [&closed, &open] {
        let lost = eventually(Duration::from_secs(5), || async {
            !instance.invalidator.is_subscribed()
        })
        .await;
        assert!(lost.is_some(), "the subscription loss went unnoticed");
    }
    // Every request is answered in time: 503 failing closed, passed failing open. A create
    // needs the usage store even with the user and catalog cached.
    for _ in 0..3 {
        for (instance, expected, body) in [
            (
                &closed,
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"reason":"plan_store_unavailable"}"#,
            ),
            (&open, StatusCode::CREATED, "unchecked"),
        ] {
            let started = Instant::now();
            let (status, text) = instance.send(Method::POST, "/clients", "ann").await;
            let took = started.elapsed();
            assert_eq!((status, text.as_str()), (expected, body));
            assert!(
                took < STORE_TIMEOUT + Duration::from_millis(500),
                "answered after {took:?}"
            );
        }
    }
    // Uncounted requests too: the caches were dropped with the subscription.
    let (status, _) = closed.send(Method::GET, "/tasks", "ann").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    server.restart();
    // Nothing was persisted: the plans are loaded again, as a deployment would.
    let reloaded = eventually(Duration::from_secs(10), || async {
        plans.load_json(CATALOG, USERS).await.is_ok()
    })
    .await;
    assert!(reloaded.is_some(), "the writer did not reconnect");
    for instance in [&closed, &open] {
        let back = eventually(Duration::from_secs(10), || async {
            instance
                .send(Method::POST, "/clients", "ann")
                .await
                .1
                .starts_with("free usage=")
        })
        .await;
        assert!(back.is_some(), "requests did not succeed again");
        within(Duration::from_secs(10), instance.invalidator.subscribed()).await;
    }

    // Invalidations flow again: a change published by one instance reaches the other.
    let (_, body) = open.send(Method::GET, "/tasks", "ann").await;
    assert_eq!(body, "free usage=0");
    plans
        .set_user_json("ann", r#"{"plan": "pro", "usage": {"clients": 1}}"#)
        .await
        .unwrap();
    closed.invalidator.user("ann").await.unwrap();
    let seen = eventually(Duration::from_secs(1), || async {
        open.send(Method::GET, "/tasks", "ann").await.1 == "pro usage=0"
    })
    .await;
    assert!(
        seen.is_some(),
        "the invalidation did not reach the other instance"
    );
}

#[tokio::test]
async fn redis_publishing_while_redis_is_down_fails_but_invalidates_locally() {
    let mut server = RedisServer::start();
    let instance = Instance::cached(&server).await;
    let plans = instance.conn.plan_store();
    plans.load_json(CATALOG, USERS).await.unwrap();
    assert_eq!(
        instance.send(Method::GET, "/tasks", "ann").await.1,
        "free usage=0"
    );
    server.stop();
    let started = Instant::now();
    assert!(instance.invalidator.user("ann").await.is_err());
    assert!(started.elapsed() < Duration::from_secs(6));
    // The local cache was dropped: the next request asks the (absent) store.
    let (status, _) = instance.send(Method::GET, "/tasks", "ann").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_answers_within_store_timeout_and_the_health_check_notices() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    conn.plan_store().load_json(CATALOG, USERS).await.unwrap();
    let layer = builder(&conn)
        .user_cache(UserCache::time_to_live(Duration::from_secs(3600), 100))
        .build()
        .unwrap();
    let invalidator = RedisInvalidator::builder(&conn)
        .health_check(Duration::from_millis(100))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .timeout(Duration::from_millis(300))
        .start(layer.invalidator())
        .unwrap();
    within(Duration::from_secs(5), invalidator.subscribed()).await;
    // A quiet subscription passes its health checks.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(invalidator.is_subscribed());
    assert_eq!(
        send(&layer, Method::POST, "/clients", "ann").await.0,
        StatusCode::CREATED
    );

    server.freeze();
    let started = Instant::now();
    let (status, body) = send(&layer, Method::POST, "/clients", "ann").await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        took >= STORE_TIMEOUT - Duration::from_millis(50),
        "{took:?}"
    );
    assert!(
        took < STORE_TIMEOUT + Duration::from_millis(500),
        "{took:?}"
    );
    let lost = eventually(Duration::from_secs(2), || async {
        !invalidator.is_subscribed()
    })
    .await;
    assert!(
        lost.is_some(),
        "the health check did not notice a frozen Redis"
    );

    server.thaw();
    let back = eventually(Duration::from_secs(10), || async {
        send(&layer, Method::POST, "/clients", "ann").await.0 == StatusCode::CREATED
    })
    .await;
    assert!(back.is_some(), "requests did not succeed again");
    within(Duration::from_secs(10), invalidator.subscribed()).await;
    // The reservation that timed out while Redis was frozen reached Redis when it went on, and
    // was released after it: two creates counted, nothing left held until its lease.
    let usage = conn.usage_store();
    let ann = Counter::items("ann", "clients");
    let settled = eventually(Duration::from_secs(2), || async {
        usage.get(&ann).await.ok().flatten() == Some(Count { used: 3, held: 0 })
    })
    .await;
    assert!(settled.is_some(), "{:?}", usage.get(&ann).await);
}

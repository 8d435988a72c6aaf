//! Postgres stopped mid-run: requests are answered within `store_timeout` (503 failing closed,
//! or passed failing open), the listener is lost and every cache dropped; Postgres restarted:
//! requests succeed again and invalidations flow again, without a restart of the instances.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tower_plans::store::{Count, Counter};
use tower_plans::{UsageStore, UserCache};

use crate::common::*;

const STORE_TIMEOUT: Duration = Duration::from_millis(500);
const USERS: &str = r#"{"ann": {"plan": "free", "usage": {"clients": 1}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run_answers_within_store_timeout_and_recovers() {
    let mut server = PostgresServer::start();
    let url = server.url();
    let cache = || UserCache::time_to_live(Duration::from_secs(3600), 100);
    let closed = Instance::new(&url, |b| b.user_cache(cache()).store_timeout(STORE_TIMEOUT)).await;
    let open = Instance::new(&url, |b| {
        b.user_cache(cache())
            .store_timeout(STORE_TIMEOUT)
            .fail_open(true)
    })
    .await;
    closed.store.load_json(CATALOG, USERS).await.unwrap();
    for instance in [&closed, &open] {
        assert_eq!(
            instance.send(Method::POST, "/clients", "ann").await.0,
            StatusCode::CREATED
        );
    }

    server.stop();

    // Both instances notice that their listener is gone.
    for instance in [&closed, &open] {
        let lost = eventually(Duration::from_secs(5), || async {
            !instance.invalidator.is_listening()
        })
        .await;
        assert!(lost.is_some(), "the listener's loss went unnoticed");
    }
    // Every request is answered in time: 503 failing closed, passed failing open. A create
    // needs the usage store even with the user and catalog cached.
    for _ in 0..12 {
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
    // Uncounted requests too: the caches were dropped with the listener.
    let (status, _) = closed.send(Method::GET, "/tasks", "ann").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    // The same server comes back, with its data: the instances recover by themselves.
    server.restart();
    for instance in [&closed, &open] {
        let back = eventually(Duration::from_secs(10), || async {
            instance.send(Method::POST, "/clients", "ann").await.0 == StatusCode::CREATED
        })
        .await;
        assert!(back.is_some(), "the instance did not recover");
        let listening = eventually(Duration::from_secs(10), || async {
            instance.invalidator.is_listening()
        })
        .await;
        assert!(listening.is_some(), "the instance did not listen again");
    }
    // Counting goes on from what was counted before the restart, never past the limit.
    for _ in 0..5 {
        let _ = closed.send(Method::POST, "/clients", "ann").await;
    }
    let (status, body) = closed.send(Method::POST, "/clients", "ann").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        closed
            .store
            .get(&Counter::items("ann", "clients"))
            .await
            .unwrap(),
        Some(Count { used: 5, held: 0 })
    );
    // Invalidations flow again: a plan change on one instance reaches the other.
    assert_eq!(
        open.send(Method::GET, "/tasks", "ann").await.1,
        "free usage=0"
    );
    closed
        .store
        .set_user_json("ann", r#"{"plan": "pro", "usage": {"clients": 1}}"#)
        .await
        .unwrap();
    let seen = eventually(Duration::from_secs(1), || async {
        open.send(Method::GET, "/tasks", "ann").await.1 == "pro usage=0"
    })
    .await;
    assert!(
        seen.is_some(),
        "the change did not travel after the restart"
    );
}

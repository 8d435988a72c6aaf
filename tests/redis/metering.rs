//! Metered requests through layers over Redis: concurrent image creates of 5 credits each,
//! spread over four instances, draw exactly what a credit pool and its top-up grant hold, with
//! the image limit held in the same script; the others are refused with a credits 403.

use std::sync::Arc;

use http::{Method, StatusCode};
use tower_plans::store::{Count, Counter};
use tower_plans::UsageStore;

use crate::common::*;
use crate::instances::counting;

/// Images cost 5 credits of `ai`; pro may create 30 of them and has a lifetime pool of 1000.
const METERED: &str = r#"{
    "meters": {"images": {"create": {"cost": 5, "credits": "ai"}}},
    "plans": [{"name": "pro", "limits": {"images": {"create": 30}}, "credits": {"ai": 1000}}]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_metered_creates_over_four_instances_draw_exactly_what_the_pool_and_its_grant_hold() {
    const REQUESTS: usize = 200;
    let server = RedisServer::start();
    let mut instances = Vec::new();
    for n in 0..4 {
        let conn = connect(&server).await;
        instances.push(Arc::new(Instance::on(conn, counting(n)).await));
    }
    let plans = instances[0].conn.plan_store();
    plans.set_catalog_json(METERED).await.unwrap();
    let record = r#"{"plan": "pro", "grants": [{"id": "top-up", "credits": "ai", "amount": 7}]}"#;
    plans.set_user_json("meg", record).await.unwrap();
    // 10 credits left in the allowance and 7 in the grant: three images of 5.
    let usage = instances[1].conn.usage_store();
    let pool = Counter::credits("meg", "ai");
    usage.set(&pool, 990).await.unwrap();

    let start = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|n| {
            let instance = Arc::clone(&instances[n % instances.len()]);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                instance.send(Method::POST, "/images", "meg").await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::FORBIDDEN => {
                assert!(body.contains(r#""reason":"credits""#), "{body}");
                assert!(body.contains(r#""credits":"ai""#), "{body}");
                assert!(body.contains(r#""cost":5"#), "{body}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created, 3);
    let count = |used| Some(Count { used, held: 0 });
    assert_eq!(usage.get(&pool).await.unwrap(), count(1000));
    let grant = Counter::grant("meg", "ai", "top-up");
    assert_eq!(usage.get(&grant).await.unwrap(), count(5));
    let images = Counter::items("meg", "images");
    assert_eq!(usage.get(&images).await.unwrap(), count(3));
}

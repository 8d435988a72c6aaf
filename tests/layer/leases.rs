//! Block leases (`lease::Leased`) over the in-memory store standing in for a remote one,
//! through the real layer: honest counts while units are spent from a block (entitlements and
//! `RateLimit`), settlements on the timer (every interval near the limit, every second far from
//! it), unused blocks given back, a reservation past its lease, a clean stop and a drop.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tower::{service_fn, Layer, ServiceExt};
use tower_plans::lease::Leased;
use tower_plans::store::{Count, Counter, Hold, Line, ReservationId};
use tower_plans::{Action, MemoryStore, PlanLimitLayer, UsageStore, UserId};

/// Near keeps 100 calls (blocks of 50 for one instance: near the limit); far keeps 10 000
/// (blocks of the largest size, 64).
const PLANS: &str = r#"{"plans": [
    {"name": "near", "limits": {"calls": {"index": 100}}},
    {"name": "far", "limits": {"calls": {"index": 10000}}},
    {"name": "few", "limits": {"calls": {"index": 3}}}
]}"#;

/// The memory store (standing in for a remote one) with `ann` on near and `bob` on far, its
/// leased wrapper, and a layer counting in the wrapper with the `RateLimit` fields on.
fn setup() -> (MemoryStore, Leased<MemoryStore>, PlanLimitLayer) {
    let store = MemoryStore::from_json(
        PLANS,
        r#"{"ann": {"plan": "near"}, "bob": {"plan": "far"}, "cy": {"plan": "few"}}"#,
    )
    .expect("valid plans");
    let leased = Leased::new(store.clone());
    let layer = PlanLimitLayer::builder(store.clone())
        .count_usage(leased.clone())
        .rate_limit_headers(true)
        .build()
        .expect("valid layer");
    (store, leased, layer)
}

fn calls(user: &str) -> Counter {
    Counter::action(user, "calls", Action::Index)
}

/// `GET /calls` by `user`: its status and `RateLimit` field.
async fn call(layer: &PlanLimitLayer, user: &str) -> (StatusCode, String) {
    let service = layer.layer(service_fn(|_request: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
    }));
    let mut request = Request::builder()
        .method(Method::GET)
        .uri("/calls")
        .body(Full::default())
        .expect("a request");
    request.extensions_mut().insert(UserId::from(user));
    let response = service.oneshot(request).await.expect("infallible");
    let field = response
        .headers()
        .get("ratelimit")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (response.status(), field)
}

#[tokio::test(start_paused = true)]
async fn units_spent_from_a_block_count_at_once_here_and_on_the_store_after_a_settlement() {
    let (store, leased, layer) = setup();
    for n in 1..=3 {
        let (status, field) = call(&layer, "bob").await;
        assert_eq!(status, StatusCode::OK);
        assert!(field.ends_with(&format!("r={}", 10_000 - n)), "{field}");
    }
    // The store holds the block; this instance counts what it spent.
    assert_eq!(
        store.get(&calls("bob")).await.unwrap(),
        Some(Count { used: 0, held: 64 })
    );
    assert_eq!(
        leased.get(&calls("bob")).await.unwrap(),
        Some(Count { used: 3, held: 0 })
    );
    let entitlements = layer.entitlements("bob").await.unwrap();
    let index = entitlements
        .limits
        .iter()
        .find(|limit| &*limit.resource == "calls")
        .expect("calls are limited");
    assert_eq!(index.used, 3);

    // Far from its limit, the block settles after a second, and keeps its room.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        store.get(&calls("bob")).await.unwrap(),
        Some(Count { used: 0, held: 64 })
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        store.get(&calls("bob")).await.unwrap(),
        Some(Count { used: 3, held: 61 })
    );
    // Unused for ten intervals, it goes back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        store.get(&calls("bob")).await.unwrap(),
        Some(Count { used: 3, held: 0 })
    );
    assert_eq!(
        leased.get(&calls("bob")).await.unwrap(),
        Some(Count { used: 3, held: 0 })
    );
}

#[tokio::test(start_paused = true)]
async fn near_its_limit_a_block_settles_every_interval_and_goes_back_unused() {
    let (store, leased, layer) = setup();
    for _ in 0..3 {
        assert_eq!(call(&layer, "ann").await.0, StatusCode::OK);
    }
    assert_eq!(
        store.get(&calls("ann")).await.unwrap(),
        Some(Count { used: 0, held: 50 })
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        store.get(&calls("ann")).await.unwrap(),
        Some(Count { used: 3, held: 47 })
    );
    // One interval unused: given back.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        store.get(&calls("ann")).await.unwrap(),
        Some(Count { used: 3, held: 0 })
    );
    assert_eq!(
        leased.get(&calls("ann")).await.unwrap(),
        Some(Count { used: 3, held: 0 })
    );
}

#[tokio::test(start_paused = true)]
async fn a_reservation_past_its_lease_counts_nothing() {
    let (store, leased, _layer) = setup();
    let hold = |id| Hold::new(id).with(Line::new(calls("bob"), 1).limit(Some(10_000)));
    let kept = hold(ReservationId::new());
    assert!(leased
        .reserve(&kept, Duration::from_secs(60))
        .await
        .unwrap()
        .is_reserved());
    let late = hold(ReservationId::new());
    assert!(leased
        .reserve(&late, Duration::from_millis(50))
        .await
        .unwrap()
        .is_reserved());
    assert_eq!(
        leased.get(&calls("bob")).await.unwrap(),
        Some(Count { used: 0, held: 2 })
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    leased.commit(&late, &[]).await.unwrap();
    leased.commit(&kept, &[]).await.unwrap();
    assert_eq!(
        leased.get(&calls("bob")).await.unwrap(),
        Some(Count { used: 1, held: 0 })
    );
    leased.shutdown().await.unwrap();
    assert_eq!(
        store.get(&calls("bob")).await.unwrap(),
        Some(Count { used: 1, held: 0 })
    );
}

#[tokio::test]
async fn a_clean_stop_and_a_drop_settle_what_the_blocks_spent() {
    let (store, leased, layer) = setup();
    for _ in 0..3 {
        assert_eq!(call(&layer, "bob").await.0, StatusCode::OK);
        assert_eq!(call(&layer, "ann").await.0, StatusCode::OK);
    }
    leased.shutdown().await.unwrap();
    assert_eq!(
        store.get(&calls("bob")).await.unwrap(),
        Some(Count { used: 3, held: 0 })
    );
    assert_eq!(
        store.get(&calls("ann")).await.unwrap(),
        Some(Count { used: 3, held: 0 })
    );
    // After the stop every reservation goes to the store.
    assert_eq!(call(&layer, "bob").await.0, StatusCode::OK);
    assert_eq!(
        store.get(&calls("bob")).await.unwrap(),
        Some(Count { used: 4, held: 0 })
    );

    // A second instance, dropped with its block: the drop settles it in a task of its own.
    let second = Leased::new(store.clone());
    let layer = PlanLimitLayer::builder(store.clone())
        .count_usage(second.clone())
        .build()
        .expect("valid layer");
    for _ in 0..2 {
        assert_eq!(call(&layer, "bob").await.0, StatusCode::OK);
    }
    assert_eq!(
        store.get(&calls("bob")).await.unwrap(),
        Some(Count { used: 4, held: 64 })
    );
    drop((layer, second));
    let settled = async {
        while store.get(&calls("bob")).await.unwrap() != Some(Count { used: 6, held: 0 }) {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), settled)
        .await
        .expect("the drop settled the block");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_in_the_background_never_pass_the_limit_and_read_their_own_writes() {
    let store = MemoryStore::from_json(PLANS, r#"{"cy": {"plan": "few"}}"#).expect("valid plans");
    let leased = Leased::builder(store.clone())
        .commit_in_background(true)
        .build();
    let layer = PlanLimitLayer::builder(store.clone())
        .count_usage(leased.clone())
        .build()
        .expect("valid layer");
    // Three calls fit (no block: the limit is near), concurrently; the others are refused.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let layer = layer.clone();
            tokio::spawn(async move { call(&layer, "cy").await.0 })
        })
        .collect();
    let mut passed = 0;
    for task in tasks {
        match task.await.expect("no panic") {
            StatusCode::OK => passed += 1,
            StatusCode::FORBIDDEN => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(passed, 3);
    assert_eq!(call(&layer, "cy").await.0, StatusCode::FORBIDDEN);
    // This instance reads its own commits; the store has them once they land.
    assert_eq!(
        leased.get(&calls("cy")).await.unwrap(),
        Some(Count { used: 3, held: 0 })
    );
    assert_eq!(
        store.get(&calls("cy")).await.unwrap(),
        Some(Count { used: 3, held: 0 })
    );
}

#[tokio::test]
async fn a_reservation_of_two_lines_is_served_from_two_blocks_and_a_new_limit_takes_a_new_block() {
    let store = MemoryStore::from_json(PLANS, "{}").expect("valid plans");
    let leased = Leased::new(store.clone());
    let pool = Counter::credits("dee", "ai");
    let images = Counter::action("dee", "images", Action::Create);
    let hold = |limit| {
        Hold::new(ReservationId::new())
            .with(Line::new(pool.clone(), 5).limit(Some(limit)))
            .with(Line::new(images.clone(), 1).limit(Some(limit)))
    };
    let lease = Duration::from_secs(60);
    let first = hold(10_000);
    assert!(leased.reserve(&first, lease).await.unwrap().is_reserved());
    leased.commit(&first, &[7, 1]).await.unwrap();
    // Both lines from blocks: the store holds two blocks and counts nothing yet.
    assert_eq!(
        store.get(&pool).await.unwrap(),
        Some(Count { used: 0, held: 64 })
    );
    assert_eq!(
        store.get(&images).await.unwrap(),
        Some(Count { used: 0, held: 64 })
    );
    assert_eq!(
        leased.get(&pool).await.unwrap(),
        Some(Count { used: 7, held: 0 })
    );
    assert_eq!(
        leased.get(&images).await.unwrap(),
        Some(Count { used: 1, held: 0 })
    );

    // Under another limit the blocks no longer serve: they are settled, and new ones taken.
    let second = hold(20_000);
    assert!(leased.reserve(&second, lease).await.unwrap().is_reserved());
    leased.release(&second).await.unwrap();
    let settled = async {
        while store.get(&pool).await.unwrap() != Some(Count { used: 7, held: 64 }) {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), settled)
        .await
        .expect("the old block settled");
    assert_eq!(
        store.get(&images).await.unwrap(),
        Some(Count { used: 1, held: 64 })
    );
    leased.shutdown().await.unwrap();
    assert_eq!(
        store.get(&pool).await.unwrap(),
        Some(Count { used: 7, held: 0 })
    );
    assert_eq!(
        store.get(&images).await.unwrap(),
        Some(Count { used: 1, held: 0 })
    );
}

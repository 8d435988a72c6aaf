//! What every `RateStore` does, whatever keeps its rates: one suite for the in-memory store and
//! any store over a database.
//!
//! Each check takes a store and a user id of its own, so that one store serves the whole suite,
//! and passes the clock itself (`NOW_MS` and later), as the layer does.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use tower_plans::rate::{Gcra, RateDecision, RateKey, RateStore};
use tower_plans::Action;

/// The clock of every check: 2026-05-28T20:26:40Z, in milliseconds.
pub const NOW_MS: u64 = 1_780_000_000_000;

const MINUTE: Duration = Duration::from_secs(60);

fn allowed(remaining: u64, reset_ms: u64) -> RateDecision {
    RateDecision::Allowed {
        remaining,
        reset_ms,
    }
}

fn limited(retry_after_ms: u64) -> RateDecision {
    RateDecision::Limited { retry_after_ms }
}

fn rate(max: u64, per: Duration, burst: u64) -> Gcra {
    Gcra::new(max, per, burst).expect("a valid rate")
}

async fn acquire(store: &dyn RateStore, key: &RateKey, gcra: Gcra, now_ms: u64) -> RateDecision {
    store
        .acquire(key, gcra, now_ms)
        .await
        .expect("the store answers")
}

async fn refund(store: &dyn RateStore, key: &RateKey, gcra: Gcra) {
    store.refund(key, gcra).await.expect("the store answers");
}

/// Every check, in turn, each with a user id derived from `user`.
pub async fn all(store: &dyn RateStore, user: &str) {
    a_full_bucket_then_one_per_interval(store, &format!("{user}-sixty")).await;
    a_burst_smaller_than_max(store, &format!("{user}-burst")).await;
    keys_are_apart(store, &format!("{user}-keys")).await;
    a_refund_is_as_if_nothing_happened(store, &format!("{user}-refund")).await;
    a_refund_of_an_unknown_key_does_nothing(store, &format!("{user}-unknown")).await;
}

/// 60 a minute: 60 at once, counting down; the next one in a second, to the millisecond.
pub async fn a_full_bucket_then_one_per_interval(store: &dyn RateStore, user: &str) {
    let gcra = rate(60, MINUTE, 60);
    let key = RateKey::plan(user);
    for taken in 1..=60 {
        let decision = acquire(store, &key, gcra, NOW_MS).await;
        assert_eq!(decision, allowed(60 - taken, taken * 1000));
    }
    assert_eq!(acquire(store, &key, gcra, NOW_MS).await, limited(1000));
    assert_eq!(acquire(store, &key, gcra, NOW_MS + 999).await, limited(1));
    assert_eq!(
        acquire(store, &key, gcra, NOW_MS + 1000).await,
        allowed(0, 60_000)
    );
    assert_eq!(
        acquire(store, &key, gcra, NOW_MS + 1000).await,
        limited(1000)
    );
    // A minute after the last one, the bucket is full again.
    assert_eq!(
        acquire(store, &key, gcra, NOW_MS + 61_000).await,
        allowed(59, 1000)
    );
}

/// 60 a minute, at most 10 at once: ten pass, then one a second.
pub async fn a_burst_smaller_than_max(store: &dyn RateStore, user: &str) {
    let gcra = rate(60, MINUTE, 10);
    let key = RateKey::action(user, "reports", Action::Create);
    for taken in 1..=10 {
        let decision = acquire(store, &key, gcra, NOW_MS).await;
        assert_eq!(decision, allowed(10 - taken, taken * 1000));
    }
    assert_eq!(acquire(store, &key, gcra, NOW_MS).await, limited(1000));
    assert_eq!(acquire(store, &key, gcra, NOW_MS + 500).await, limited(500));
    assert_eq!(
        acquire(store, &key, gcra, NOW_MS + 1000).await,
        allowed(0, 10_000)
    );
    // 3.5 seconds on, three and a half requests have come back.
    assert_eq!(
        acquire(store, &key, gcra, NOW_MS + 4500).await,
        allowed(2, 7500)
    );
}

/// The plan's rate, each action's rate and each user's are kept apart.
pub async fn keys_are_apart(store: &dyn RateStore, user: &str) {
    let gcra = rate(1, MINUTE, 1);
    let other = format!("{user}-other");
    let keys = [
        RateKey::plan(user),
        RateKey::action(user, "clients", Action::Index),
        RateKey::action(user, "clients", Action::Create),
        RateKey::action(user, "projects", Action::Index),
        RateKey::action(user, "clients", Action::Custom("export".into())),
        RateKey::plan(other.as_str()),
    ];
    for key in &keys {
        assert_eq!(acquire(store, key, gcra, NOW_MS).await, allowed(0, 60_000));
    }
    for key in &keys {
        assert_eq!(acquire(store, key, gcra, NOW_MS).await, limited(60_000));
    }
    // A custom action with a REST name is that REST action.
    let destroy = RateKey::action(user, "clients", Action::Custom("destroy".into()));
    let delete = RateKey::action(user, "clients", Action::Delete);
    assert!(acquire(store, &destroy, gcra, NOW_MS).await.is_allowed());
    assert_eq!(acquire(store, &delete, gcra, NOW_MS).await, limited(60_000));
}

/// Two keys see the same requests, except that one also takes requests that a quota then
/// refuses and gives back: both decide alike throughout.
pub async fn a_refund_is_as_if_nothing_happened(store: &dyn RateStore, user: &str) {
    let gcra = rate(5, Duration::from_secs(1), 3);
    let refunding = RateKey::plan(format!("{user}-refunding"));
    let plain = RateKey::plan(format!("{user}-plain"));
    // Milliseconds after `NOW_MS`, and whether the request is refused by a quota.
    let requests = [
        (0, false),
        (0, true),
        (0, false),
        (0, true),
        (0, false),
        (0, true),
        (0, false),
        (150, true),
        (200, false),
        (200, true),
        (350, true),
        (400, false),
        (900, true),
        (2000, true),
        (2000, false),
        (2000, false),
        (2000, true),
        (2001, false),
        (2001, false),
    ];
    for (at, quota_refuses) in requests {
        let now = NOW_MS + at;
        if quota_refuses {
            if acquire(store, &refunding, gcra, now).await.is_allowed() {
                refund(store, &refunding, gcra).await;
            }
        } else {
            let expected = acquire(store, &plain, gcra, now).await;
            assert_eq!(
                acquire(store, &refunding, gcra, now).await,
                expected,
                "at {at} ms"
            );
        }
    }
}

/// A refund for a key the store does not keep gives nothing.
pub async fn a_refund_of_an_unknown_key_does_nothing(store: &dyn RateStore, user: &str) {
    let gcra = rate(2, MINUTE, 2);
    let key = RateKey::plan(user);
    refund(store, &key, gcra).await;
    assert_eq!(acquire(store, &key, gcra, NOW_MS).await, allowed(1, 30_000));
    assert_eq!(acquire(store, &key, gcra, NOW_MS).await, allowed(0, 60_000));
    assert_eq!(acquire(store, &key, gcra, NOW_MS).await, limited(30_000));
}

/// `tasks` tasks at once on a fresh 60 a minute: exactly 60 through, each refused one told to
/// come back in a second; the next one is refused alike, and passes a second later.
pub async fn concurrent_acquires(store: Arc<dyn RateStore>, user: &str, tasks: usize) {
    let gcra = rate(60, MINUTE, 60);
    let key = RateKey::plan(user);
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (store, key, barrier) = (Arc::clone(&store), key.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                acquire(store.as_ref(), &key, gcra, NOW_MS).await
            })
        })
        .collect();
    let mut remaining = Vec::new();
    for handle in handles {
        match handle.await.expect("no panic") {
            RateDecision::Allowed {
                remaining: left, ..
            } => remaining.push(left),
            refused => assert_eq!(refused, limited(1000)),
        }
    }
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..60).collect::<Vec<u64>>(),
        "exactly 60 through"
    );
    assert_eq!(
        acquire(store.as_ref(), &key, gcra, NOW_MS).await,
        limited(1000)
    );
    assert_eq!(
        acquire(store.as_ref(), &key, gcra, NOW_MS + 1000).await,
        allowed(0, 60_000)
    );
}

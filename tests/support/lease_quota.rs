//! Block leases driven to a limit by several instances, over any remote usage store: a usage
//! store that counts the reservations it passes on, an instance's leased store and layer, a
//! watcher that the store's count never passes the limit, the high-volume quota that ends at
//! exactly its maximum, and an instance killed with `kill -9` while it holds a block.
//!
//! The including test binary's `common` module provides `send(&layer, method, uri, user)`,
//! sending one request through a layer to an application that answers `200` to a GET, and
//! `eventually(limit, check)`, polling `check` until it holds or `limit` passed.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tower_plans::lease::Leased;
use tower_plans::store::{Count, Counter, Held, Hold, Seed, StoreFuture};
use tower_plans::{Action, PlanLimitLayer, PlanStore, UsageStore};

use crate::common::{eventually, send};

/// Bulk keeps 3000 calls, for good.
pub const BULK: &str = r#"{"plans": [{"name": "bulk", "limits": {"calls": {"index": 3000}}}]}"#;

/// Bulk's maximum.
pub const BULK_MAX: u64 = 3000;

/// The lifetime counter of `user`'s calls.
pub fn calls(user: &str) -> Counter {
    Counter::action(user, "calls", Action::Index)
}

/// A usage store that counts the reservations it passes on.
pub struct CountCalls<S> {
    store: S,
    reserves: Arc<AtomicU64>,
}

impl<S: UsageStore> UsageStore for CountCalls<S> {
    fn reserve<'a>(&'a self, hold: &'a Hold, lease: Duration) -> StoreFuture<'a, Held> {
        self.reserves.fetch_add(1, Ordering::Relaxed);
        self.store.reserve(hold, lease)
    }
    fn commit<'a>(&'a self, hold: &'a Hold, spent: &'a [u64]) -> StoreFuture<'a, ()> {
        self.store.commit(hold, spent)
    }
    fn release<'a>(&'a self, hold: &'a Hold) -> StoreFuture<'a, ()> {
        self.store.release(hold)
    }
    fn adjust<'a>(&'a self, counter: &'a Counter, delta: i64, seed: Seed) -> StoreFuture<'a, u64> {
        self.store.adjust(counter, delta, seed)
    }
    fn set<'a>(&'a self, counter: &'a Counter, used: u64) -> StoreFuture<'a, ()> {
        self.store.set(counter, used)
    }
    fn get<'a>(&'a self, counter: &'a Counter) -> StoreFuture<'a, Option<Count>> {
        self.store.get(counter)
    }
}

/// One instance of the quota tests: its leased store (counting its store calls) and its layer.
pub struct Leaser<S: UsageStore> {
    pub leased: Leased<CountCalls<S>>,
    pub reserves: Arc<AtomicU64>,
    pub layer: PlanLimitLayer,
}

impl<S: UsageStore> Leaser<S> {
    /// An instance reading `plans` and counting on `usage`, leased for four instances with
    /// blocks of at most 32 units, whose layer holds reservations for `lease`.
    pub fn new(plans: impl PlanStore, usage: S, lease: Duration) -> Leaser<S> {
        let reserves = Arc::new(AtomicU64::new(0));
        let store = CountCalls {
            store: usage,
            reserves: Arc::clone(&reserves),
        };
        let leased = Leased::builder(store).instances(4).block_max(32).build();
        let layer = PlanLimitLayer::builder(plans)
            .count_usage(leased.clone())
            .store_timeout(Duration::from_secs(5))
            .lease(lease)
            .build()
            .expect("valid layer");
        Leaser {
            leased,
            reserves,
            layer,
        }
    }

    /// How many reservations reached the store.
    pub fn reserves(&self) -> u64 {
        self.reserves.load(Ordering::Relaxed)
    }
}

/// Watches `store`'s count of `counter` until `stop`: what it counts as used never passes
/// `max`. Held units are left out of the check: a block's renewal holds its kept units twice for
/// one store round trip (see the `lease` module's docs), and a look at that moment sees
/// `used + held` past `max` without any unit spent past it. Answers how often it looked.
pub fn watch_never_above(
    store: impl UsageStore,
    counter: Counter,
    max: u64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut looks = 0;
        while !stop.load(Ordering::Relaxed) {
            let count = store
                .get(&counter)
                .await
                .expect("the store answers")
                .unwrap_or_default();
            assert!(
                count.used <= max,
                "the store counts {count:?}, used past {max}"
            );
            looks += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        looks
    })
}

/// Drives `user`'s calls through `instances`, `workers` concurrent loops each, until a round
/// lets nothing more through (each instance settling between rounds): how many requests
/// passed.
pub async fn drive_to_the_limit<S: UsageStore>(
    instances: &[Arc<Leaser<S>>],
    user: &str,
    workers: usize,
) -> u64 {
    let mut passed = 0;
    loop {
        let mut tasks = Vec::new();
        for instance in instances {
            for _ in 0..workers {
                let instance = Arc::clone(instance);
                let user = user.to_owned();
                tasks.push(tokio::spawn(async move {
                    let mut passed = 0u64;
                    loop {
                        let (status, body) =
                            send(&instance.layer, Method::GET, "/calls", &user).await;
                        match status {
                            StatusCode::OK => passed += 1,
                            StatusCode::FORBIDDEN => return passed,
                            other => panic!("unexpected {other}: {body}"),
                        }
                    }
                }));
            }
        }
        let mut round = 0;
        for task in tasks {
            round += task.await.expect("no panic");
        }
        passed += round;
        for instance in instances {
            instance.leased.settle().await.expect("settled");
        }
        if round == 0 {
            return passed;
        }
    }
}

/// `user` on bulk with `start` calls used: `instances` drive the quota to its limit, `workers`
/// loops each, while `store` (the store under them) is watched. The store never counts past
/// bulk's maximum, exactly what was left passes, the store ends at exactly the maximum, and
/// blocks served most of it: fewer than a quarter as many reservations reached the store as
/// requests passed. Shuts the instances down.
pub async fn a_high_volume_quota_ends_at_exactly_its_maximum<S: UsageStore>(
    instances: &[Arc<Leaser<S>>],
    store: impl UsageStore + Clone,
    user: &str,
    start: u64,
    workers: usize,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_never_above(store.clone(), calls(user), BULK_MAX, Arc::clone(&stop));

    let passed = drive_to_the_limit(instances, user, workers).await;
    stop.store(true, Ordering::Relaxed);
    assert!(watcher.await.expect("never above the limit") > 0);

    // Exactly what was left passed, and the store counts exactly the maximum.
    assert_eq!(passed, BULK_MAX - start);
    assert_eq!(
        store.get(&calls(user)).await.unwrap(),
        Some(Count {
            used: BULK_MAX,
            held: 0
        })
    );
    // Blocks served most of it: far fewer reservations reached the store than requests passed.
    let reserves: u64 = instances.iter().map(|i| i.reserves()).sum();
    assert!(
        reserves * 4 < passed,
        "{reserves} reservations on the store for {passed} requests"
    );
    for instance in instances {
        instance.leased.shutdown().await.expect("settled");
    }
}

/// How many requests the killed instance serves from its block before it reports.
pub const HOLDER_SPENT: u64 = 5;

/// The largest block of the killed instance.
pub const HOLDER_BLOCK: u64 = 40;

/// The lease of the killed instance's blocks.
pub const HOLDER_LEASE: Duration = Duration::from_secs(4);

/// What bob has used of bulk's calls when the holder starts.
pub const HOLDER_START: u64 = 2700;

/// The body of the process that the kill -9 test starts and kills, over `plans` and `usage`:
/// it takes a block of bob's calls, serves [`HOLDER_SPENT`] requests from it, prints `held` and
/// waits to be killed, never settling.
pub async fn hold_a_block_until_killed(plans: impl PlanStore, usage: impl UsageStore) {
    let leased = Leased::builder(usage)
        .instances(4)
        .block_max(HOLDER_BLOCK)
        .settle_every(Duration::from_secs(3600))
        .build();
    let layer = PlanLimitLayer::builder(plans)
        .count_usage(leased.clone())
        .lease(HOLDER_LEASE)
        .build()
        .expect("valid layer");
    for _ in 0..HOLDER_SPENT {
        let (status, body) = send(&layer, Method::GET, "/calls", "bob").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    println!("held");
    std::future::pending::<()>().await;
}

/// A child process killed (`SIGKILL`) and reaped when dropped, should the test fail first.
pub struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this test binary again, running only the ignored test `test` with `variable` set to
/// `value`, and waits until it prints `held`.
pub async fn start_holder(test: &str, variable: &str, value: &str) -> Killed {
    let mut holder = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", test, "--ignored", "--nocapture"])
        .env(variable, value)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map(Killed)
        .expect("start the holder process");
    let stdout = holder.0.stdout.take().expect("piped");
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.trim() == "held")
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(60), ready)
            .await
            .expect("the holder reports in time")
            .expect("no panic"),
        "the holder took no block"
    );
    holder
}

/// The holder (started at `spawned_at`, bob at [`HOLDER_START`] calls) is killed with its
/// block, 5 units spent from it and none settled. Then `instances` drive bob's quota over
/// `store`: never past the limit, short of it by the block while its lease lasts, up to it once
/// the lease ended; the holder's requests passed uncounted, which is the under-count, within
/// one block. Shuts the instances down.
pub async fn a_killed_holder_loses_at_most_its_block<S: UsageStore>(
    mut holder: Killed,
    spawned_at: Instant,
    store: impl UsageStore + Clone,
    instances: &[Arc<Leaser<S>>],
) {
    const MAX: u64 = BULK_MAX;
    let before = store
        .get(&calls("bob"))
        .await
        .unwrap()
        .expect("the block created it");
    holder.0.kill().expect("kill -9");
    holder.0.wait().expect("reaped");
    assert_eq!(before.used, HOLDER_START, "the holder settled nothing");
    assert!(
        before.held > HOLDER_SPENT && before.held <= HOLDER_BLOCK,
        "the holder's block: {before:?}"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_never_above(store.clone(), calls("bob"), MAX, Arc::clone(&stop));
    let first = drive_to_the_limit(instances, "bob", 4).await;
    let parked = store.get(&calls("bob")).await.unwrap().expect("exists");
    if spawned_at.elapsed() < HOLDER_LEASE {
        // The block still parks its units: the others stop short of the limit by it.
        assert_eq!(
            parked,
            Count {
                used: MAX - before.held,
                held: before.held
            }
        );
    }
    // Once the lease ended, the block's units come back and the others take them.
    let freed = eventually(Duration::from_secs(10), || async {
        store
            .get(&calls("bob"))
            .await
            .unwrap()
            .is_some_and(|count| count.held == 0)
    })
    .await;
    assert!(freed.is_some(), "the lease freed the block");
    // The block was taken after the holder started: its lease cannot have ended before.
    assert!(spawned_at.elapsed() >= HOLDER_LEASE);
    let second = drive_to_the_limit(instances, "bob", 4).await;
    stop.store(true, Ordering::Relaxed);
    assert!(watcher.await.expect("never above the limit") > 0);

    assert_eq!(
        store.get(&calls("bob")).await.unwrap(),
        Some(Count { used: MAX, held: 0 })
    );
    // The holder's 5 requests passed and were never counted: the under-count, within a block.
    let admitted = first + second + HOLDER_SPENT;
    let under_count = admitted - (MAX - HOLDER_START);
    assert_eq!(under_count, HOLDER_SPENT);
    assert!(under_count <= HOLDER_BLOCK);
    for instance in instances {
        instance.leased.shutdown().await.expect("settled");
    }
}

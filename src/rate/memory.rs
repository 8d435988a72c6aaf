//! [`MemoryRates`]: the rates of one process, in a sharded map of atomics.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::gcra::{Gcra, RateDecision};
use super::key::RateKey;
use super::store::RateStore;
use crate::hash::Map;
use crate::store::StoreFuture;

/// How many locks the keys are spread over (a power of two).
const SHARDS: usize = 16;

/// A shard looks for idle keys to forget once it holds this many, at the least.
const EVICT_FLOOR: usize = 64;

/// In-process rates: a sharded map of atomics (one `AtomicU64` TAT per key, compare-and-swap),
/// entries that are idle (TAT <= now) evicted as the map grows so memory stays bounded by the
/// active keys.
///
/// Clones share their state. Every call answers at once ([`StoreFuture::ready`]) and never
/// fails. A key is found under its shard's read lock and its TAT changed by compare-and-swap, so
/// concurrent requests of the same key or of other keys do not wait for each other; only a new
/// key takes its shard's write lock. A shard that gets a new key once it holds twice as many
/// keys as after its last clean-up (at least 64) forgets its idle keys (an idle key decides as
/// a new one), so each shard holds at most about twice the keys active at once.
///
/// See the [module docs](super) for an example.
#[derive(Clone, Default)]
pub struct MemoryRates {
    state: Arc<State>,
}

/// What the clones of one store share.
struct State {
    shards: [Shard; SHARDS],
    /// Picks a key's shard (the maps inside hash with seeds of their own).
    hasher: foldhash::fast::RandomState,
    /// The least size at which a shard looks for idle keys.
    floor: usize,
}

/// Some of the keys, behind a lock of their own, on cache lines of their own.
#[derive(Default)]
#[repr(align(128))]
struct Shard(RwLock<Tats>);

/// One shard's keys.
#[derive(Default)]
struct Tats {
    /// The theoretical arrival time of each key, in microseconds.
    by_key: Map<RateKey, AtomicU64>,
    /// The size at which the next new key first forgets the idle ones.
    evict_at: usize,
}

impl Default for State {
    fn default() -> Self {
        Self::with_floor(EVICT_FLOOR)
    }
}

impl State {
    fn with_floor(floor: usize) -> Self {
        Self {
            shards: Default::default(),
            hasher: foldhash::fast::RandomState::default(),
            floor,
        }
    }

    fn shard(&self, key: &RateKey) -> &Shard {
        // Always in bounds: the index is taken modulo the number of shards.
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }
}

impl MemoryRates {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose shards look for idle keys from `floor` keys on (tests make it small).
    #[cfg(test)]
    fn with_floor(floor: usize) -> Self {
        Self {
            state: Arc::new(State::with_floor(floor)),
        }
    }

    /// How many keys the store keeps now, idle ones not yet forgotten included.
    pub fn len(&self) -> usize {
        self.state
            .shards
            .iter()
            .map(|shard| read(shard).by_key.len())
            .sum()
    }

    /// Whether the store keeps no key.
    pub fn is_empty(&self) -> bool {
        self.state
            .shards
            .iter()
            .all(|shard| read(shard).by_key.is_empty())
    }

    /// Takes one request of `gcra` for `key` at `now_us`, or refuses it.
    fn take(&self, key: &RateKey, gcra: Gcra, now_us: u64) -> RateDecision {
        let shard = self.state.shard(key);
        if let Some(tat) = read(shard).by_key.get(key) {
            return take_from(tat, gcra, now_us);
        }
        let mut tats = write(shard);
        if let Some(tat) = tats.by_key.get(key) {
            // Another request added it in the meantime.
            return take_from(tat, gcra, now_us);
        }
        let (decision, next) = gcra.step(0, now_us);
        // A new key always has room; a refusal would store nothing all the same.
        if let Some(next) = next {
            tats.make_room(now_us, self.state.floor);
            tats.by_key.insert(key.clone(), AtomicU64::new(next));
        }
        decision
    }

    /// Gives back one request of `gcra` for `key`, if the store keeps the key.
    fn give_back(&self, key: &RateKey, gcra: Gcra) {
        if let Some(tat) = read(self.state.shard(key)).by_key.get(key) {
            // Each TAT is a value of its own: no other memory is ordered by it.
            let mut current = tat.load(Ordering::Relaxed);
            while let Err(actual) = tat.compare_exchange_weak(
                current,
                gcra.refund(current),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                current = actual;
            }
        }
    }
}

/// One GCRA step on a stored TAT, retried until no other request changed it in between.
fn take_from(tat: &AtomicU64, gcra: Gcra, now_us: u64) -> RateDecision {
    // Each TAT is a value of its own: no other memory is ordered by it.
    let mut current = tat.load(Ordering::Relaxed);
    loop {
        let (decision, next) = gcra.step(current, now_us);
        let Some(next) = next else {
            return decision;
        };
        match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return decision,
            Err(actual) => current = actual,
        }
    }
}

impl Tats {
    /// Before a new key: once the shard has grown to `evict_at`, forgets the keys idle at
    /// `now_us` (their TAT is not after it: they decide as new keys), and sets the next size to
    /// look at twice what is left (at least `floor`).
    fn make_room(&mut self, now_us: u64, floor: usize) {
        if self.by_key.len() < self.evict_at.max(floor) {
            return;
        }
        self.by_key.retain(|_, tat| *tat.get_mut() > now_us);
        self.evict_at = self.by_key.len().saturating_mul(2).max(floor);
        // Memory follows the keys down once they are far fewer than the table has room for.
        if self.by_key.capacity() > self.evict_at.saturating_mul(2) {
            self.by_key.shrink_to(self.evict_at);
        }
    }
}

impl RateStore for MemoryRates {
    fn acquire<'a>(
        &'a self,
        key: &'a RateKey,
        gcra: Gcra,
        now_ms: u64,
    ) -> StoreFuture<'a, RateDecision> {
        StoreFuture::ready(Ok(self.take(key, gcra, now_ms.saturating_mul(1000))))
    }

    fn refund<'a>(&'a self, key: &'a RateKey, gcra: Gcra) -> StoreFuture<'a, ()> {
        self.give_back(key, gcra);
        StoreFuture::ready(Ok(()))
    }
}

impl fmt::Debug for MemoryRates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRates")
            .field("keys", &self.len())
            .finish()
    }
}

fn read(shard: &Shard) -> RwLockReadGuard<'_, Tats> {
    shard.0.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(shard: &Shard) -> RwLockWriteGuard<'_, Tats> {
    shard.0.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::catalog::Action;

    const MINUTE: Duration = Duration::from_secs(60);
    const NOW_MS: u64 = 1_780_000_000_000;

    fn sixty_a_minute() -> Gcra {
        Gcra::new(60, MINUTE, 60).expect("a valid rate")
    }

    fn acquire(rates: &MemoryRates, key: &RateKey, gcra: Gcra, now_ms: u64) -> RateDecision {
        rates
            .acquire(key, gcra, now_ms)
            .into_ready()
            .expect("answers at once")
            .expect("never fails")
    }

    fn refund(rates: &MemoryRates, key: &RateKey, gcra: Gcra) {
        rates
            .refund(key, gcra)
            .into_ready()
            .expect("answers at once")
            .expect("never fails");
    }

    /// 100 threads at once on a fresh 60 a minute: exactly 60 through, all refused ones told to
    /// come back in a second; a second later one more passes.
    #[test]
    fn a_hundred_threads_at_once_let_exactly_sixty_through() {
        let rates = MemoryRates::new();
        let key = RateKey::plan("john");
        let gcra = sixty_a_minute();
        let barrier = std::sync::Barrier::new(100);
        let decisions: Vec<RateDecision> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..100)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        acquire(&rates, &key, gcra, NOW_MS)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().expect("no panic"))
                .collect()
        });
        let mut remaining: Vec<u64> = decisions
            .iter()
            .filter_map(|decision| match decision {
                RateDecision::Allowed { remaining, .. } => Some(*remaining),
                RateDecision::Limited { .. } => None,
            })
            .collect();
        remaining.sort_unstable();
        assert_eq!(remaining, (0..60).collect::<Vec<u64>>());
        let refused = decisions
            .iter()
            .filter(|d| {
                **d == RateDecision::Limited {
                    retry_after_ms: 1000,
                }
            })
            .count();
        assert_eq!(refused, 40);
        assert_eq!(
            acquire(&rates, &key, gcra, NOW_MS),
            RateDecision::Limited {
                retry_after_ms: 1000
            }
        );
        assert_eq!(
            acquire(&rates, &key, gcra, NOW_MS + 999),
            RateDecision::Limited { retry_after_ms: 1 }
        );
        assert_eq!(
            acquire(&rates, &key, gcra, NOW_MS + 1000),
            RateDecision::Allowed {
                remaining: 0,
                reset_ms: 60_000
            }
        );
    }

    #[test]
    fn keys_are_counted_apart_and_clones_share_them() {
        let rates = MemoryRates::new();
        let gcra = Gcra::new(2, MINUTE, 1).expect("a valid rate");
        let plan = RateKey::plan("john");
        let index = RateKey::action("john", "clients", Action::Index);
        let jane = RateKey::plan("jane");
        assert!(rates.is_empty());
        assert!(acquire(&rates, &plan, gcra, NOW_MS).is_allowed());
        let clone = rates.clone();
        assert_eq!(
            acquire(&clone, &plan, gcra, NOW_MS),
            RateDecision::Limited {
                retry_after_ms: 30_000
            }
        );
        assert!(acquire(&clone, &index, gcra, NOW_MS).is_allowed());
        assert!(acquire(&rates, &jane, gcra, NOW_MS).is_allowed());
        assert_eq!(rates.len(), 3);
        assert_eq!(format!("{rates:?}"), "MemoryRates { keys: 3 }");
    }

    #[test]
    fn a_refund_gives_the_request_back_and_an_unknown_key_is_left_alone() {
        let rates = MemoryRates::new();
        let gcra = Gcra::new(1, MINUTE, 1).expect("a valid rate");
        let key = RateKey::plan("john");
        refund(&rates, &key, gcra);
        assert!(rates.is_empty());
        assert!(acquire(&rates, &key, gcra, NOW_MS).is_allowed());
        assert!(!acquire(&rates, &key, gcra, NOW_MS).is_allowed());
        refund(&rates, &key, gcra);
        assert!(acquire(&rates, &key, gcra, NOW_MS + 1).is_allowed());
    }

    #[test]
    fn times_at_the_edges_of_u64_neither_panic_nor_wrap() {
        let rates = MemoryRates::new();
        let key = RateKey::plan("john");
        let gcra = Gcra::new(1_000_000, Duration::from_secs(1), 5).expect("a valid rate");
        for now_ms in [0, 1, u64::MAX / 1000, u64::MAX / 1000 + 1, u64::MAX] {
            let _ = acquire(&rates, &key, gcra, now_ms);
            refund(&rates, &key, gcra);
        }
        assert_eq!(rates.len(), 1);
    }

    /// Idle keys go once a shard grows, active ones stay with their state, and the store stays
    /// small however many keys pass through it.
    #[test]
    fn idle_keys_are_forgotten_as_the_map_grows() {
        let rates = MemoryRates::with_floor(4);
        let gcra = Gcra::new(1, Duration::from_secs(1), 1).expect("a valid rate");
        let active = RateKey::plan("active");
        let mut now_ms = NOW_MS;
        assert!(acquire(&rates, &active, gcra, now_ms).is_allowed());
        for round in 0..1_000 {
            // A new user every 10 ms, each idle a second later; `active` keeps coming back.
            now_ms += 10;
            let key = RateKey::plan(format!("user-{round}"));
            assert!(acquire(&rates, &key, gcra, now_ms).is_allowed());
            let expected = if (now_ms - NOW_MS).is_multiple_of(1000) {
                RateDecision::Allowed {
                    remaining: 0,
                    reset_ms: 1000,
                }
            } else {
                RateDecision::Limited {
                    retry_after_ms: 1000 - (now_ms - NOW_MS) % 1000,
                }
            };
            assert_eq!(acquire(&rates, &active, gcra, now_ms), expected);
            // About 100 keys are active at once: twice that, plus a floor per shard.
            assert!(rates.len() <= 2 * 101 + 4 * SHARDS, "{}", rates.len());
        }
        // A forgotten key decides as a new one.
        assert!(acquire(&rates, &RateKey::plan("user-0"), gcra, now_ms).is_allowed());
    }

    /// One request of a workload: who, how far the clock moves first, and whether the request is
    /// then refused by a quota (and its rate given back).
    fn workload() -> impl Strategy<Value = Vec<(usize, u64, bool)>> {
        proptest::collection::vec(
            (0usize..40, 0u64..400, proptest::bool::weighted(0.2)),
            1..400,
        )
    }

    fn rate() -> impl Strategy<Value = Gcra> {
        (
            1u64..20,
            prop_oneof![Just(1_000u64), Just(5_000), Just(60_000)],
        )
            .prop_flat_map(|(max, per_ms)| (Just(max), Just(per_ms), 1..=max))
            .prop_map(|(max, per_ms, burst)| {
                Gcra::new(max, Duration::from_millis(per_ms), burst).expect("a valid rate")
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// A store that acquires then refunds at some steps decides every other step exactly
        /// as one that skipped those steps; both forget idle keys (a small floor), and both
        /// decide as a plain map of TATs that forgets nothing.
        #[test]
        fn refunds_and_evictions_leave_later_decisions_unchanged(
            gcra in rate(),
            requests in workload(),
        ) {
            let refunding = MemoryRates::with_floor(2);
            let skipping = MemoryRates::with_floor(2);
            let mut reference: HashMap<RateKey, u64> = HashMap::new();
            let keys: Vec<RateKey> = (0..40).map(|i| RateKey::plan(format!("u{i}"))).collect();
            let mut now_ms = NOW_MS;
            for (who, moved, quota_refuses) in requests {
                now_ms += moved;
                let key = &keys[who];
                if quota_refuses {
                    if acquire(&refunding, key, gcra, now_ms).is_allowed() {
                        refund(&refunding, key, gcra);
                    }
                    continue;
                }
                let decision = acquire(&refunding, key, gcra, now_ms);
                prop_assert_eq!(decision, acquire(&skipping, key, gcra, now_ms));
                let tat = reference.get(key).copied().unwrap_or(0);
                let (expected, next) = gcra.step(tat, now_ms * 1000);
                prop_assert_eq!(decision, expected);
                if let Some(next) = next {
                    reference.insert(key.clone(), next);
                }
            }
        }
    }
}

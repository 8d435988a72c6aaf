//! The optional user cache: subscriber records by user id, with one store call for concurrent
//! misses and invalidation that no earlier call can outrun.
//!
//! The records live in a `moka` cache. A hit is read through a small table that each thread
//! keeps in front of it (see [`Users::with_cached`]): a `moka` read writes shared state (its
//! read log, the entry's reference count and access time), which costs more than the rest of
//! the check and passes cache lines between cores on every request.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::ConfigError;
use crate::hash::Map;
use crate::metrics::{self, Cache, Call};
use crate::store::{timed, PlanStore, StoreError};
use crate::subscriber::Subscriber;
use crate::user::UserId;

/// The longest lifetime of a user cache entry: 1000 years of 365 days, the most `moka` accepts.
const MAX_USER_LIFETIME: Duration = Duration::from_secs(1_000 * 365 * 24 * 60 * 60);

/// A user's record as the store returned it, cached: `None` inside for an unknown user.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    subscriber: Option<Arc<Subscriber>>,
    /// When the store returned it: a cached record lives until this plus the time-to-live.
    fetched: Instant,
}

impl From<Option<Arc<Subscriber>>> for Record {
    fn from(subscriber: Option<Arc<Subscriber>>) -> Self {
        Record {
            subscriber,
            fetched: Instant::now(),
        }
    }
}

impl Record {
    /// The subscriber, or `None` for an unknown user.
    pub(crate) fn subscriber(&self) -> Option<&Subscriber> {
        self.subscriber.as_deref()
    }
}

/// How many records each thread keeps in front of the `moka` cache (a power of two), over all
/// the layers whose user caches it reads: about 360 KiB per thread that serves governed
/// requests, allocated on its first cached read.
const FRONT_SLOTS: usize = 4096;

/// A record that a thread read from one user cache, and until when it may answer for it.
struct Slot {
    /// The user cache ([`Users::id`]) it was read from.
    cache: u64,
    /// That cache's [`Users::epoch`] before the read: an invalidation since voids it.
    epoch: u64,
    user: UserId,
    record: Record,
    /// When it stops answering: the record's expiry by time-to-live, or by time-to-idle from
    /// `touched`.
    until: Instant,
    /// When `moka` last saw a read of the entry (time-to-idle).
    touched: Instant,
}

thread_local! {
    /// This thread's records, by a hash of the cache and the user: a slot holds the last one
    /// read among those that fall on it.
    static FRONT: RefCell<Vec<Option<Slot>>> = const { RefCell::new(Vec::new()) };
}

/// `from + lifetime`; `from` when that overflows (the front table then leaves the record to
/// `moka`).
fn deadline(from: Instant, lifetime: Duration) -> Instant {
    from.checked_add(lifetime).unwrap_or(from)
}

/// The source of [`Users::id`].
static NEXT_CACHE: AtomicU64 = AtomicU64::new(0);

/// Settings of the optional user cache: a lifetime (time-to-live or sliding time-to-idle) and a
/// capacity (the number of users kept).
///
/// Lifetimes are measured on the system's monotonic clock (the cache is a `moka` cache), not on
/// Tokio's. Each thread that reads the cache also keeps the records it read last in a table of
/// its own (up to 4096 over all layers, about 360 KiB), which answers hits without writing
/// state that other threads share; an invalidation voids them at once, and none outlives its
/// lifetime. See [`PlanLimitLayerBuilder::user_cache`](crate::PlanLimitLayerBuilder::user_cache).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserCache {
    expiry: Expiry,
    capacity: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    Live(Duration),
    Idle(Duration),
}

impl UserCache {
    /// Keeps each user's record for `ttl` after it was fetched, and at most `capacity` users.
    ///
    /// [`build`](crate::PlanLimitLayerBuilder::build) refuses a zero capacity and a `ttl` that
    /// is zero or longer than 1000 years (of 365 days).
    pub fn time_to_live(ttl: Duration, capacity: u64) -> Self {
        Self {
            expiry: Expiry::Live(ttl),
            capacity,
        }
    }

    /// Keeps each user's record until it has not been used for `tti` (each request for the user
    /// extends it), and at most `capacity` users.
    ///
    /// [`build`](crate::PlanLimitLayerBuilder::build) refuses a zero capacity and a `tti` that
    /// is zero or longer than 1000 years (of 365 days).
    pub fn time_to_idle(tti: Duration, capacity: u64) -> Self {
        Self {
            expiry: Expiry::Idle(tti),
            capacity,
        }
    }
}

/// The user cache: subscriber records (or their absence) by user id.
///
/// Concurrent misses for one user share one store call (a flight). An invalidation detaches the
/// user's flight under way: requests that start afterwards make a new store call instead of
/// joining it, and the record the detached call returns is not cached (it may predate the
/// change). Records are inserted and invalidated under the flights' lock, so once
/// [`invalidate`](Self::invalidate) returns, no record fetched before it can be read.
pub(crate) struct Users {
    config: UserCache,
    cache: moka::sync::Cache<UserId, Record, foldhash::fast::RandomState>,
    flights: Mutex<Map<UserId, Arc<Flight>>>,
    /// Tells this cache's records apart from other caches' in the threads' front tables.
    id: u64,
    /// Raised by every invalidation: records that threads read before it no longer answer.
    epoch: AtomicU64,
    /// Places users in the front tables.
    front_hasher: foldhash::fast::RandomState,
}

/// One store call for one user, shared by the requests that need it.
struct Flight {
    /// The outcome; if the request making the call is dropped, a waiting one makes it.
    outcome: tokio::sync::OnceCell<Result<Record, Arc<StoreError>>>,
    /// Set (under the flights' lock) when an invalidation detached the flight.
    detached: AtomicBool,
}

impl Users {
    pub(crate) fn new(config: UserCache) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidOption {
            option: "user_cache",
            reason: reason.to_owned(),
        };
        // Any capacity from 1 up is fine with `moka` (it sizes its structures by the entries it
        // holds); lifetimes longer than `MAX_USER_LIFETIME` make its `build` panic.
        if config.capacity == 0 {
            return Err(invalid("the capacity must be at least 1"));
        }
        let (lifetime, name) = match config.expiry {
            Expiry::Live(ttl) => (ttl, "time-to-live"),
            Expiry::Idle(tti) => (tti, "time-to-idle"),
        };
        if lifetime.is_zero() {
            return Err(invalid(&format!("the {name} must be greater than zero")));
        }
        if lifetime > MAX_USER_LIFETIME {
            return Err(invalid(&format!("the {name} must be at most 1000 years")));
        }
        let builder = moka::sync::Cache::builder().max_capacity(config.capacity);
        let builder = match config.expiry {
            Expiry::Live(ttl) => builder.time_to_live(ttl),
            Expiry::Idle(tti) => builder.time_to_idle(tti),
        };
        Ok(Self {
            config,
            cache: builder.build_with_hasher(foldhash::fast::RandomState::default()),
            flights: Mutex::new(Map::default()),
            id: NEXT_CACHE.fetch_add(1, Ordering::Relaxed),
            epoch: AtomicU64::new(0),
            front_hasher: foldhash::fast::RandomState::default(),
        })
    }

    pub(crate) fn config(&self) -> UserCache {
        self.config
    }

    fn flights(&self) -> MutexGuard<'_, Map<UserId, Arc<Flight>>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached record, or `None` on a miss (counted as a hit or by the `get` that follows).
    #[cfg(test)]
    pub(crate) fn peek(&self, id: &UserId) -> Option<Record> {
        self.with_cached(id, Record::clone)
    }

    /// `f` of the cached record, or `None` on a miss (a hit is counted here, a miss by the
    /// `get` that follows it).
    ///
    /// The record is read from this thread's front table when it holds it, else from `moka`
    /// (and then kept in the table). A record in the table answers while it is valid: the
    /// epoch it was read in is still this cache's (no invalidation since), and it has not
    /// expired: by time-to-live, from when the store returned it; by time-to-idle, from
    /// `moka`'s last read of the entry, which the table renews once a quarter of the
    /// time-to-idle has passed (so a record in use stays in `moka` too). The table never keeps
    /// a record longer than `moka` would; `moka` still bounds the users kept, and a thread's
    /// table holds at most [`FRONT_SLOTS`] records.
    pub(crate) fn with_cached<R>(&self, id: &UserId, f: impl FnOnce(&Record) -> R) -> Option<R> {
        self.with_cached_at(id, Instant::now(), f)
    }

    /// [`with_cached`](Self::with_cached) at the instant `now`.
    fn with_cached_at<R>(
        &self,
        id: &UserId,
        now: Instant,
        f: impl FnOnce(&Record) -> R,
    ) -> Option<R> {
        // Read before `moka` is: an invalidation after this voids what the read finds.
        let epoch = self.epoch.load(Ordering::Acquire);
        let at = (self.front_hasher.hash_one((self.id, id.as_str())) as usize) % FRONT_SLOTS;
        // The answer is written in place: `R` may be large, and each `Option` it went through
        // on its way out would move it.
        let mut f = Some(f);
        let mut result = None;
        let answered = FRONT.try_with(|front| {
            let mut front = front.try_borrow_mut().ok()?;
            if front.is_empty() {
                front.resize_with(FRONT_SLOTS, || None);
            }
            // Always in bounds: the table has `FRONT_SLOTS` slots.
            let slot = front.get_mut(at)?;
            let valid = slot.as_ref().is_some_and(|held| {
                held.cache == self.id && held.epoch == epoch && now < held.until && held.user == *id
            });
            if valid {
                if let (Some(held), Expiry::Idle(tti)) = (slot.as_mut(), self.config.expiry) {
                    if now.saturating_duration_since(held.touched) >= tti / 4 {
                        // Renew the entry in `moka`; gone from it, it goes from here too.
                        if self.cache.get(id).is_none() {
                            *slot = None;
                            return Some(());
                        }
                        held.touched = now;
                        held.until = deadline(now, tti);
                    }
                }
                if let (Some(held), Some(f)) = (slot.as_ref(), f.take()) {
                    result = Some(f(&held.record));
                }
                return Some(());
            }
            let Some(record) = self.cache.get(id) else {
                return Some(());
            };
            if let Some(f) = f.take() {
                result = Some(f(&record));
            }
            let until = match self.config.expiry {
                Expiry::Live(ttl) => deadline(record.fetched, ttl),
                Expiry::Idle(tti) => deadline(now, tti),
            };
            *slot = Some(Slot {
                cache: self.id,
                epoch,
                user: id.clone(),
                record,
                until,
                touched: now,
            });
            Some(())
        });
        if !matches!(answered, Ok(Some(()))) {
            // No table (the thread is ending, or it is in use): `moka` alone.
            if let (Some(record), Some(f)) = (self.cache.get(id), f.take()) {
                result = Some(f(&record));
            }
        }
        // A miss is counted by the `get` that follows it.
        if result.is_some() {
            metrics::cache(Cache::User, true);
        }
        result
    }

    /// The record from the cache, or from the store (one call per user for concurrent misses).
    pub(crate) async fn get(
        &self,
        store: &dyn PlanStore,
        timeout: Duration,
        id: &UserId,
    ) -> Result<Record, Arc<StoreError>> {
        let flight = {
            let mut flights = self.flights();
            let cached = self.cache.get(id);
            metrics::cache(Cache::User, cached.is_some());
            if let Some(record) = cached {
                return Ok(record);
            }
            Arc::clone(flights.entry(id.clone()).or_insert_with(|| {
                Arc::new(Flight {
                    outcome: tokio::sync::OnceCell::new(),
                    detached: AtomicBool::new(false),
                })
            }))
        };
        let outcome = flight.outcome.get_or_init(|| async {
            let result = timed(Call::USER, timeout, store.user(id.as_str()))
                .await
                .map(Record::from)
                .map_err(Arc::new);
            if let Err(error) = &result {
                tracing::debug!(user = %id, "plan store failed to return the user");
                tracing::warn!(%error, "plan store failed to return a user");
            }
            let mut flights = self.flights();
            if !flight.detached.load(Ordering::Relaxed) {
                if let Ok(record) = &result {
                    self.cache.insert(id.clone(), record.clone());
                }
                if flights
                    .get(id)
                    .is_some_and(|current| Arc::ptr_eq(current, &flight))
                {
                    flights.remove(id);
                }
            }
            result
        });
        outcome.await.clone()
    }

    pub(crate) fn invalidate(&self, id: &str) {
        let mut flights = self.flights();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(flight) = flights.remove(id) {
            flight.detached.store(true, Ordering::Relaxed);
        }
        self.cache.invalidate(id);
    }

    pub(crate) fn invalidate_all(&self) {
        let mut flights = self.flights();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for (_, flight) in flights.drain() {
            flight.detached.store(true, Ordering::Relaxed);
        }
        self.cache.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use async_trait::async_trait;

    use super::*;
    use crate::catalog::Catalog;
    use crate::store::BoxError;

    /// A store that counts `user()` calls and answers after a yield, so concurrent callers meet.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
    }

    #[async_trait]
    impl PlanStore for Counting {
        async fn plans(&self) -> Result<Arc<Catalog>, BoxError> {
            Err("unused".into())
        }
        async fn user(&self, id: &str) -> Result<Option<Arc<Subscriber>>, BoxError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok((id != "nobody").then(|| Arc::new(Subscriber::new().with_name(id))))
        }
    }

    fn users() -> Users {
        Users::new(UserCache::time_to_live(Duration::from_secs(60), 100)).unwrap()
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn concurrent_misses_share_one_call_and_hits_ask_nothing() {
        let store = Counting::default();
        let users = users();
        let john = UserId::from("john");
        let (a, b) = tokio::join!(
            users.get(&store, TIMEOUT, &john),
            users.get(&store, TIMEOUT, &john)
        );
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);
        for record in [a.unwrap(), b.unwrap()] {
            assert_eq!(
                record.subscriber().and_then(|s| s.name.as_deref()),
                Some("john")
            );
        }
        let peeked = users.peek(&john).expect("cached");
        assert!(peeked.subscriber().is_some());
        users.get(&store, TIMEOUT, &john).await.unwrap();
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn unknown_users_are_cached_too() {
        let store = Counting::default();
        let users = users();
        let nobody = UserId::from("nobody");
        let record = users.get(&store, TIMEOUT, &nobody).await.unwrap();
        assert!(record.subscriber().is_none());
        let peeked = users.peek(&nobody).expect("an unknown user is a hit");
        assert!(peeked.subscriber().is_none());
    }

    #[tokio::test]
    async fn invalidation_drops_one_user_or_all() {
        let store = Counting::default();
        let users = users();
        let (john, jane) = (UserId::from("john"), UserId::from("jane"));
        users.get(&store, TIMEOUT, &john).await.unwrap();
        users.get(&store, TIMEOUT, &jane).await.unwrap();
        users.invalidate("john");
        assert!(users.peek(&john).is_none());
        assert!(users.peek(&jane).is_some());
        users.invalidate_all();
        assert!(users.peek(&jane).is_none());
    }

    #[tokio::test]
    async fn a_call_detached_by_an_invalidation_is_not_cached() {
        let store = Counting::default();
        let users = users();
        let john = UserId::from("john");
        let call = users.get(&store, TIMEOUT, &john);
        tokio::pin!(call);
        // Start the call: it is waiting inside the store.
        assert!(futures_poll_once(call.as_mut()).await.is_none());
        users.invalidate("john");
        call.await.unwrap();
        assert!(
            users.peek(&john).is_none(),
            "a record fetched before the change is not cached"
        );
    }

    #[tokio::test]
    async fn the_front_table_answers_until_the_time_to_live_ends() {
        let store = Counting::default();
        let users = users();
        let john = UserId::from("john");
        users.get(&store, TIMEOUT, &john).await.unwrap();
        let read = Instant::now();
        assert!(users.with_cached_at(&john, read, |_| ()).is_some());
        // Gone from `moka` without an invalidation: only the front table can answer.
        users.cache.invalidate(&john);
        assert!(users.with_cached_at(&john, read, |_| ()).is_some());
        let expired = read + Duration::from_secs(60);
        assert!(users.with_cached_at(&john, expired, |_| ()).is_none());
    }

    #[tokio::test]
    async fn the_front_table_renews_an_idle_entry_and_drops_it_when_moka_has() {
        let store = Counting::default();
        let users = Users::new(UserCache::time_to_idle(Duration::from_secs(60), 100)).unwrap();
        let john = UserId::from("john");
        users.get(&store, TIMEOUT, &john).await.unwrap();
        let read = Instant::now();
        assert!(users.with_cached_at(&john, read, |_| ()).is_some());
        users.cache.invalidate(&john);
        // Within a quarter of the time-to-idle: from the table alone.
        let soon = read + Duration::from_secs(10);
        assert!(users.with_cached_at(&john, soon, |_| ()).is_some());
        // Later, the table asks `moka` to renew the entry, and finds it gone.
        let later = read + Duration::from_secs(20);
        assert!(users.with_cached_at(&john, later, |_| ()).is_none());
        assert!(users.with_cached_at(&john, soon, |_| ()).is_none());
    }

    #[tokio::test]
    async fn an_invalidation_voids_what_other_threads_read() {
        let store = Counting::default();
        let users = Arc::new(users());
        let john = UserId::from("john");
        users.get(&store, TIMEOUT, &john).await.unwrap();
        let read_elsewhere = |users: &Arc<Users>| {
            let (users, john) = (Arc::clone(users), john.clone());
            std::thread::spawn(move || users.with_cached(&john, |_| ()).is_some())
                .join()
                .unwrap()
        };
        assert!(read_elsewhere(&users));
        assert!(users.peek(&john).is_some());
        users.invalidate("john");
        assert!(users.peek(&john).is_none());
        assert!(!read_elsewhere(&users));
    }

    #[test]
    fn build_refuses_a_zero_capacity_and_bad_lifetimes() {
        let bad = [
            UserCache::time_to_live(Duration::from_secs(1), 0),
            UserCache::time_to_live(Duration::ZERO, 1),
            UserCache::time_to_idle(Duration::ZERO, 1),
            UserCache::time_to_idle(MAX_USER_LIFETIME + Duration::from_secs(1), 1),
        ];
        for config in bad {
            assert!(
                matches!(
                    Users::new(config),
                    Err(ConfigError::InvalidOption {
                        option: "user_cache",
                        ..
                    })
                ),
                "{config:?} should be refused"
            );
        }
        assert!(Users::new(UserCache::time_to_idle(MAX_USER_LIFETIME, 1)).is_ok());
    }

    /// Polls `future` once: its output if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
        let mut future = future;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}

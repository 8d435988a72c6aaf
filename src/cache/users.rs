//! The optional user cache: subscriber records by user id, in a `moka` cache, with one store call
//! for concurrent misses and invalidation that no earlier call can outrun.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::ConfigError;
use crate::hash::Map;
use crate::metrics::{self, Cache, Call};
use crate::store::PlanStore;
use crate::subscriber::Subscriber;
use crate::timeout::{timed, StoreError};
use crate::user::UserId;

/// The longest lifetime of a user cache entry: 1000 years of 365 days, the most `moka` accepts.
const MAX_USER_LIFETIME: Duration = Duration::from_secs(1_000 * 365 * 24 * 60 * 60);

/// A user's record as the store returned it, cached: `None` for an unknown user.
pub(crate) type Record = Option<Arc<Subscriber>>;

/// Settings of the optional user cache: a lifetime (time-to-live or sliding time-to-idle) and a
/// capacity (the number of users kept).
///
/// Lifetimes are measured on the system's monotonic clock (the cache is a `moka` cache), not on
/// Tokio's. See [`PlanLimitLayerBuilder::user_cache`](crate::PlanLimitLayerBuilder::user_cache).
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
        })
    }

    pub(crate) fn config(&self) -> UserCache {
        self.config
    }

    fn flights(&self) -> MutexGuard<'_, Map<UserId, Arc<Flight>>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached record, or `None` on a miss (a hit is counted here, a miss by the `get` that
    /// follows it).
    pub(crate) fn cached(&self, id: &UserId) -> Option<Record> {
        let record = self.cache.get(id)?;
        metrics::cache(Cache::User, true);
        Some(record)
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
        if let Some(flight) = flights.remove(id) {
            flight.detached.store(true, Ordering::Relaxed);
        }
        self.cache.invalidate(id);
    }

    pub(crate) fn invalidate_all(&self) {
        let mut flights = self.flights();
        for (_, flight) in flights.drain() {
            flight.detached.store(true, Ordering::Relaxed);
        }
        self.cache.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::catalog::Catalog;
    use crate::store::StoreFuture;

    /// A store that counts `user()` calls and answers after a yield, so concurrent callers meet.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
    }

    impl PlanStore for Counting {
        fn plans<'a>(&'a self) -> StoreFuture<'a, Arc<Catalog>> {
            StoreFuture::new(async move { Err("unused".into()) })
        }
        fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
            StoreFuture::new(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                Ok((id != "nobody").then(|| Arc::new(Subscriber::new().with_name(id))))
            })
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
                record.as_deref().and_then(|s| s.name.as_deref()),
                Some("john")
            );
        }
        let peeked = users.cached(&john).expect("cached");
        assert!(peeked.is_some());
        users.get(&store, TIMEOUT, &john).await.unwrap();
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn unknown_users_are_cached_too() {
        let store = Counting::default();
        let users = users();
        let nobody = UserId::from("nobody");
        let record = users.get(&store, TIMEOUT, &nobody).await.unwrap();
        assert!(record.is_none());
        let peeked = users.cached(&nobody).expect("an unknown user is a hit");
        assert!(peeked.is_none());
    }

    #[tokio::test]
    async fn invalidation_drops_one_user_or_all() {
        let store = Counting::default();
        let users = users();
        let (john, jane) = (UserId::from("john"), UserId::from("jane"));
        users.get(&store, TIMEOUT, &john).await.unwrap();
        users.get(&store, TIMEOUT, &jane).await.unwrap();
        users.invalidate("john");
        assert!(users.cached(&john).is_none());
        assert!(users.cached(&jane).is_some());
        users.invalidate_all();
        assert!(users.cached(&jane).is_none());
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
            users.cached(&john).is_none(),
            "a record fetched before the change is not cached"
        );
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

//! The layer's caches: the catalog with its compiled route table, the optional user cache, and
//! the [`Invalidator`] that drops their entries.
//!
//! The catalog is loaded by the first request that could be governed (see the layer's `Scope`);
//! concurrent requests wait for that one `plans()` call. Afterwards it is used for `plans_ttl`;
//! the first request after that which could be governed (whether or not the loaded catalog
//! governs it) starts one refresh in the background (on the current Tokio runtime) and keeps
//! using the loaded catalog, so no request waits for a refresh. A refresh that fails, times out,
//! or returns a catalog whose route table does not compile is logged and the last good catalog
//! keeps serving for up to `max_stale` past its time-to-live; the next refresh starts
//! `CatalogCache::retry_interval` after the failure at the earliest. Once the catalog was
//! invalidated, is older than `max_stale` past its time-to-live, or always with a zero
//! time-to-live, a request that could be governed waits for a load and is resolved with the
//! catalog it brings.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::catalog::Catalog;
use crate::error::ConfigError;
use crate::hash::Map;
use crate::layer::Shared;
use crate::routes::RouteTable;
use crate::store::BoxError;
use crate::subscriber::Subscriber;
use crate::user::UserId;

/// The longest wait between two refreshes of a stale catalog when the last one failed; shorter
/// when the time-to-live is.
const REFRESH_RETRY: Duration = Duration::from_secs(5);

/// The longest lifetime of a user cache entry: 1000 years of 365 days, the most `moka` accepts.
const MAX_USER_LIFETIME: Duration = Duration::from_secs(1_000 * 365 * 24 * 60 * 60);

/// A store call that failed or took longer than `store_timeout`.
#[derive(Debug)]
pub(crate) enum StoreError {
    Failed(BoxError),
    TimedOut(Duration),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Failed(error) => fmt::Display::fmt(error, f),
            StoreError::TimedOut(after) => write!(f, "no answer within {after:?}"),
        }
    }
}

/// Runs one store call under `timeout`, counted from the moment the call first has to wait: a
/// call that answers at once (an in-memory store) never touches the timer. Outside a Tokio
/// runtime there is no timer to run the timeout on, and the call is awaited as it is.
pub(crate) fn timed<T, F>(timeout: Duration, call: F) -> Timed<F>
where
    F: Future<Output = Result<T, BoxError>>,
{
    Timed {
        call,
        timeout,
        timer: None,
        armed: false,
    }
}

pin_project! {
    /// The future of [`timed`].
    pub(crate) struct Timed<F> {
        #[pin]
        call: F,
        timeout: Duration,
        #[pin]
        timer: Option<tokio::time::Sleep>,
        // Whether the timer was set up (it stays `None` outside a Tokio runtime).
        armed: bool,
    }
}

impl<T, F> Future for Timed<F>
where
    F: Future<Output = Result<T, BoxError>>,
{
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(result) = this.call.poll(cx) {
            return Poll::Ready(result.map_err(StoreError::Failed));
        }
        if !*this.armed {
            *this.armed = true;
            if tokio::runtime::Handle::try_current().is_ok() {
                this.timer.set(Some(tokio::time::sleep(*this.timeout)));
            }
        }
        if let Some(timer) = this.timer.as_pin_mut() {
            if timer.poll(cx).is_ready() {
                return Poll::Ready(Err(StoreError::TimedOut(*this.timeout)));
            }
        }
        Poll::Pending
    }
}

/// A catalog as loaded from the store, with its route table.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) table: Arc<RouteTable>,
    /// When the fetch completed (Tokio's clock, so a paused clock governs it in tests).
    fetched_at: Instant,
    /// The catalog generation when the fetch started; an invalidation bumps the generation.
    generation: u64,
}

/// A read of the current catalog (see [`CatalogCache::read`]).
pub(crate) type Current = arc_swap::Guard<Option<Arc<Loaded>>>;

/// What the catalog cache offers a request at one instant, borrowed from a [`Current`] read.
pub(crate) enum View<'a> {
    /// A catalog to decide with; `stale` when its time-to-live has passed (a refresh is due).
    Usable {
        loaded: &'a Arc<Loaded>,
        stale: bool,
    },
    /// Nothing usable: no catalog was loaded yet, the loaded one was invalidated or is older than
    /// `max_stale` past its time-to-live, or the time-to-live is zero. A request that could be
    /// governed waits for a load and is resolved with the catalog it brings.
    Load,
}

/// The catalog cache.
pub(crate) struct CatalogCache {
    ttl: Duration,
    max_stale: Duration,
    /// Read by every request without a lock or a reference count (see [`Current`]).
    current: ArcSwapOption<Loaded>,
    /// Serialises the writers of `current`.
    writer: Mutex<()>,
    generation: AtomicU64,
    /// Held by the one request that fetches when nothing usable is loaded.
    flight: tokio::sync::Mutex<()>,
    /// Completed fetches under `flight`, so that waiters learn that one failed.
    attempts: AtomicU64,
    /// Whether a refresh of a stale catalog is under way.
    refreshing: AtomicBool,
    /// The instant `retry_at` counts from.
    epoch: Instant,
    /// After a failed refresh: no other refresh starts before this instant, in nanoseconds
    /// since `epoch` (zero when none is held back). Written while the refresh is claimed, read
    /// after claiming it.
    retry_at: AtomicU64,
}

impl CatalogCache {
    pub(crate) fn new(ttl: Duration, max_stale: Duration) -> Self {
        Self {
            ttl,
            max_stale,
            current: ArcSwapOption::const_empty(),
            writer: Mutex::new(()),
            generation: AtomicU64::new(0),
            flight: tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            epoch: Instant::now(),
            retry_at: AtomicU64::new(0),
        }
    }

    /// How long after a failed refresh of a stale catalog the next one may start: the
    /// time-to-live, at most 5 seconds. Loads that requests wait for are not held back.
    pub(crate) fn retry_interval(&self) -> Duration {
        self.ttl.min(REFRESH_RETRY)
    }

    /// `at` in nanoseconds since the epoch (zero before it, saturating far after it).
    fn nanos(&self, at: Instant) -> u64 {
        crate::time::nanos(at.saturating_duration_since(self.epoch))
    }

    /// Whether a failed refresh holds the next one back at `now`.
    fn held_back(&self, now: Instant) -> bool {
        self.nanos(now) < self.retry_at.load(Ordering::Acquire)
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    pub(crate) fn max_stale(&self) -> Duration {
        self.max_stale
    }

    fn current(&self) -> Option<Arc<Loaded>> {
        self.current.load_full()
    }

    /// The current catalog, read without taking a reference count: hold it only while deciding
    /// one request (the view borrows it), and clone the catalog's `Arc` to keep it longer.
    pub(crate) fn read(&self) -> Current {
        self.current.load()
    }

    /// Whether `loaded` may still serve decisions at `now`, generation aside.
    fn within_staleness(&self, loaded: &Loaded, now: Instant) -> bool {
        now.saturating_duration_since(loaded.fetched_at) < self.ttl.saturating_add(self.max_stale)
    }

    pub(crate) fn view<'a>(&self, current: &'a Current, now: Instant) -> View<'a> {
        let Some(loaded) = current.as_ref() else {
            return View::Load;
        };
        if self.ttl.is_zero() || loaded.generation != self.generation.load(Ordering::Acquire) {
            return View::Load;
        }
        let age = now.saturating_duration_since(loaded.fetched_at);
        if age < self.ttl {
            View::Usable {
                loaded,
                stale: false,
            }
        } else if age < self.ttl.saturating_add(self.max_stale) {
            View::Usable {
                loaded,
                stale: true,
            }
        } else {
            View::Load
        }
    }

    /// The catalog a request uses when a fetch failed: the last good one, if it is not older than
    /// `max_stale` past its time-to-live (even if it was invalidated since).
    fn fallback(&self, now: Instant) -> Option<Arc<Loaded>> {
        self.current()
            .filter(|loaded| self.within_staleness(loaded, now))
    }

    /// Marks the catalog as changed: the next governed request fetches it and waits.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn store(&self, loaded: Arc<Loaded>) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let newer = match self.current.load().as_ref() {
            Some(old) => loaded.generation >= old.generation,
            None => true,
        };
        if newer {
            self.current.store(Some(loaded));
        }
    }

    /// Fetches the catalog, compiles its route table (reusing the current one when the governed
    /// resources did not change) and stores it. Failures are logged here.
    async fn fetch(&self, shared: &Shared) -> Option<Arc<Loaded>> {
        let generation = self.generation.load(Ordering::Acquire);
        let catalog = match timed(shared.store_timeout, shared.store.plans()).await {
            Ok(catalog) => catalog,
            Err(error) => {
                tracing::warn!(%error, "plan store failed to return the catalog");
                return None;
            }
        };
        let previous = self.current();
        let table = match previous {
            Some(previous) if previous.catalog.resources() == catalog.resources() => {
                Arc::clone(&previous.table)
            }
            _ => match RouteTable::new(&shared.routes, catalog.resources()) {
                Ok(table) => Arc::new(table),
                Err(error) => {
                    tracing::warn!(%error, "the catalog's resources do not compile into routes");
                    return None;
                }
            },
        };
        let loaded = Arc::new(Loaded {
            catalog,
            table,
            fetched_at: Instant::now(),
            generation,
        });
        self.store(Arc::clone(&loaded));
        self.retry_at.store(0, Ordering::Release);
        tracing::debug!(
            resources = loaded.catalog.resources().len(),
            "plan catalog loaded"
        );
        Some(loaded)
    }

    /// Fetches the catalog for a request that needs a fresh one (zero time-to-live), falling back
    /// to the last good catalog when the fetch fails.
    pub(crate) async fn fetch_or_fallback(&self, shared: &Shared) -> Option<Arc<Loaded>> {
        match self.fetch(shared).await {
            Some(loaded) => Some(loaded),
            None => self.fallback_logged(),
        }
    }

    fn fallback_logged(&self) -> Option<Arc<Loaded>> {
        let now = Instant::now();
        let fallback = self.fallback(now);
        if let Some(loaded) = &fallback {
            tracing::warn!(
                age = ?now.saturating_duration_since(loaded.fetched_at),
                "serving the last good plan catalog"
            );
        }
        fallback
    }

    /// A usable catalog for a request that found none: one fetch for all concurrent callers.
    /// When that fetch fails, every caller waiting for it gets the fallback (or `None`) without
    /// fetching again.
    pub(crate) async fn load(&self, shared: &Shared) -> Option<Arc<Loaded>> {
        if self.ttl.is_zero() {
            return self.fetch_or_fallback(shared).await;
        }
        let seen = self.attempts.load(Ordering::Acquire);
        let _flight = self.flight.lock().await;
        let current = self.read();
        if let View::Usable { loaded, .. } = self.view(&current, Instant::now()) {
            return Some(Arc::clone(loaded));
        }
        if self.attempts.load(Ordering::Acquire) != seen {
            // A fetch finished while this request waited and left nothing usable: it failed.
            return self.fallback(Instant::now());
        }
        let loaded = self.fetch(shared).await;
        self.attempts.fetch_add(1, Ordering::AcqRel);
        match loaded {
            Some(loaded) => Some(loaded),
            None => self.fallback_logged(),
        }
    }

    /// Claims the one refresh of a stale catalog, unless one is under way or the last one failed
    /// less than [`retry_interval`](Self::retry_interval) before `now`.
    ///
    /// Every stale request comes here, so the common answers (a refresh is under way, or the
    /// last one failed moments ago) take plain loads. The deadline is checked again once the
    /// refresh is claimed: a failed refresh records it before it gives the claim back, so a
    /// request that checked before the failure and claims after it still sees it.
    pub(crate) fn begin_refresh(shared: &Arc<Shared>, now: Instant) -> Option<Refresh> {
        let cache = &shared.catalog;
        if cache.refreshing.load(Ordering::Relaxed) || cache.held_back(now) {
            return None;
        }
        if cache
            .refreshing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        if cache.held_back(now) {
            cache.refreshing.store(false, Ordering::Release);
            return None;
        }
        Some(Refresh {
            shared: Arc::clone(shared),
        })
    }
}

/// The claim on the refresh of a stale catalog; dropping it (done or cancelled) releases it.
pub(crate) struct Refresh {
    shared: Arc<Shared>,
}

impl Refresh {
    /// Runs the refresh. On failure the stale catalog keeps serving, and no other refresh starts
    /// for the retry interval.
    pub(crate) async fn run(self) -> Option<Arc<Loaded>> {
        let cache = &self.shared.catalog;
        let loaded = cache.fetch(&self.shared).await;
        if loaded.is_none() {
            let retry_in = cache.retry_interval();
            let retry_at = cache
                .nanos(Instant::now())
                .saturating_add(crate::time::nanos(retry_in));
            // Recorded before the claim is given back (when `self` is dropped).
            cache.retry_at.store(retry_at, Ordering::Release);
            tracing::warn!(
                ?retry_in,
                "plan catalog refresh failed; the last good catalog keeps serving"
            );
        }
        loaded
    }

    /// Runs the refresh on the current Tokio runtime; gives the claim back when there is none.
    pub(crate) fn spawn(self) -> Result<(), Refresh> {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    self.run().await;
                });
                Ok(())
            }
            Err(_) => Err(self),
        }
    }
}

impl Drop for Refresh {
    fn drop(&mut self) {
        self.shared
            .catalog
            .refreshing
            .store(false, Ordering::Release);
    }
}

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
    cache: moka::sync::Cache<UserId, Option<Arc<Subscriber>>, foldhash::fast::RandomState>,
    flights: Mutex<Map<UserId, Arc<Flight>>>,
}

/// One store call for one user, shared by the requests that need it.
struct Flight {
    /// The outcome; if the request making the call is dropped, a waiting one makes it.
    outcome: tokio::sync::OnceCell<Result<Option<Arc<Subscriber>>, Arc<StoreError>>>,
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

    /// The cached record: `Some(record)` on a hit (the record may be `None`, an unknown user),
    /// `None` on a miss.
    pub(crate) fn peek(&self, id: &UserId) -> Option<Option<Arc<Subscriber>>> {
        self.cache.get(id)
    }

    /// The record from the cache, or from the store (one call per user for concurrent misses).
    pub(crate) async fn get(
        &self,
        shared: &Shared,
        id: &UserId,
    ) -> Result<Option<Arc<Subscriber>>, Arc<StoreError>> {
        let flight = {
            let mut flights = self.flights();
            if let Some(record) = self.cache.get(id) {
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
            let result = timed(shared.store_timeout, shared.store.user(id.as_str()))
                .await
                .map_err(Arc::new);
            if let Err(error) = &result {
                tracing::warn!(user = %id, %error, "plan store failed to return a user");
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

/// Drops cached entries of a [`PlanLimitLayer`](crate::PlanLimitLayer), for a webhook or a
/// message bus to call when rights change.
///
/// Obtained from [`PlanLimitLayer::invalidator`](crate::PlanLimitLayer::invalidator); cheap to
/// clone, `Send` and `Sync`. A request already being checked keeps what it read; the next one
/// sees the change.
#[derive(Clone)]
pub struct Invalidator {
    shared: Arc<Shared>,
}

impl Invalidator {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Drops the cached record of user `id`: the next governed request by that user asks the
    /// store. Does nothing when the user cache is off.
    pub fn user(&self, id: &str) {
        if let Some(users) = &self.shared.users {
            users.invalidate(id);
        }
    }

    /// Drops every cached user record. Does nothing when the user cache is off.
    pub fn all_users(&self) {
        if let Some(users) = &self.shared.users {
            users.invalidate_all();
        }
    }

    /// Drops the cached catalog: the next request that
    /// [could be governed](crate::PlanLimitLayer#what-could-be-governed) fetches it, waits for it
    /// and is resolved with it, whether or not the old catalog governed it (rights changed, so
    /// the old catalog is no longer used; it serves as the fallback if the fetch fails, within
    /// `max_stale`). Concurrent requests share one fetch.
    pub fn catalog(&self) {
        self.shared.catalog.invalidate();
    }
}

impl fmt::Debug for Invalidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invalidator").finish_non_exhaustive()
    }
}

//! The catalog cache: the loaded catalog with its compiled route table, its time-to-live, the
//! staleness it may serve with, one load for concurrent misses, and one background refresh.
//!
//! The catalog is loaded by the first request that could be governed; concurrent requests wait
//! for that one `plans()` call. Afterwards it is used for `plans_ttl`; the first request after
//! that which could be governed (whether or not the loaded catalog governs it) starts one refresh
//! in the background and keeps using the loaded catalog, so no request waits for a refresh. A
//! refresh that fails, times out, or returns a catalog whose route table does not compile is
//! logged and the last good catalog keeps serving for up to `max_stale` past its time-to-live;
//! the next refresh starts [`CatalogCache::retry_interval`] after the failure at the earliest.
//! Once the catalog was invalidated, is older than `max_stale` past its time-to-live, or always
//! with a zero time-to-live, a request that could be governed waits for a load and is resolved
//! with the catalog it brings.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::time::Instant;

use crate::catalog::{Action, Catalog};
use crate::metrics::{Call, RouteKeys, TableKeys};
use crate::routes::{RouteConfig, RouteIndex, RouteTable};
use crate::store::PlanStore;
use crate::time::nanos;
use crate::timeout::timed;

/// The longest wait between two refreshes of a stale catalog when the last one failed; shorter
/// when the time-to-live is.
const REFRESH_RETRY: Duration = Duration::from_secs(5);

/// What a fetch of the catalog needs: the store, the time limit of its call, and the route
/// configuration the catalog's resources compile with.
#[derive(Clone, Copy)]
pub(crate) struct Fetch<'a> {
    pub(crate) store: &'a dyn PlanStore,
    pub(crate) timeout: Duration,
    pub(crate) routes: &'a RouteConfig,
}

/// A catalog as loaded from the store, with its route table.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) table: Arc<RouteTable>,
    /// The metric keys of the decisions on each route of `table`.
    pub(crate) keys: TableKeys,
    /// When the fetch completed (Tokio's clock, so a paused clock governs it in tests).
    fetched_at: Instant,
    /// The catalog generation when the fetch started; an invalidation bumps the generation.
    generation: u64,
    /// `fetched_at` plus the time-to-live, and plus `max_stale` after that: until when it is
    /// fresh, and until when it is usable at all (`None`: beyond what `Instant` can hold, so
    /// never). Computed once, so a request compares instants instead of taking an age.
    fresh_until: Option<Instant>,
    usable_until: Option<Instant>,
}

/// A route of a loaded catalog: what it governs, and the keys its decisions are counted under.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Route<'a> {
    pub(crate) resource: &'a Arc<str>,
    pub(crate) action: &'a Action,
    pub(crate) keys: &'a RouteKeys,
}

impl Loaded {
    /// The route at `index`, which the resolution of a request by this catalog's table gave.
    pub(crate) fn route(&self, index: RouteIndex) -> Route<'_> {
        let matched = self.table.route(index);
        Route {
            resource: matched.resource,
            action: matched.action,
            keys: self.keys.route(index),
        }
    }
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
        nanos(at.saturating_duration_since(self.epoch))
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
        let before = |until: Option<Instant>| until.is_none_or(|until| now < until);
        if before(loaded.fresh_until) {
            View::Usable {
                loaded,
                stale: false,
            }
        } else if before(loaded.usable_until) {
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
    async fn fetch(&self, source: Fetch<'_>) -> Option<Arc<Loaded>> {
        let generation = self.generation.load(Ordering::Acquire);
        let catalog = match timed(Call::PLANS, source.timeout, source.store.plans()).await {
            Ok(catalog) => catalog,
            Err(error) => {
                tracing::warn!(%error, "plan store failed to return the catalog");
                return None;
            }
        };
        let previous = self.current();
        let (table, keys) = match previous {
            Some(previous) if previous.catalog.resources() == catalog.resources() => {
                (Arc::clone(&previous.table), previous.keys.clone())
            }
            _ => match RouteTable::new(source.routes, catalog.resources()) {
                Ok(table) => {
                    let keys = TableKeys::new(&table);
                    (Arc::new(table), keys)
                }
                Err(error) => {
                    tracing::warn!(%error, "the catalog's resources do not compile into routes");
                    return None;
                }
            },
        };
        let fetched_at = Instant::now();
        let loaded = Arc::new(Loaded {
            catalog,
            table,
            keys,
            fetched_at,
            generation,
            fresh_until: fetched_at.checked_add(self.ttl),
            usable_until: fetched_at.checked_add(self.ttl.saturating_add(self.max_stale)),
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
    async fn fetch_or_fallback(&self, source: Fetch<'_>) -> Option<Arc<Loaded>> {
        match self.fetch(source).await {
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
    pub(crate) async fn load(&self, source: Fetch<'_>) -> Option<Arc<Loaded>> {
        if self.ttl.is_zero() {
            return self.fetch_or_fallback(source).await;
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
        let loaded = self.fetch(source).await;
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
    pub(crate) fn begin_refresh<O: AsRef<CatalogCache>>(
        owner: &Arc<O>,
        now: Instant,
    ) -> Option<Refresh<O>> {
        let cache = (**owner).as_ref();
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
            owner: Arc::clone(owner),
        })
    }
}

/// The claim on the refresh of a stale catalog; dropping it (done or cancelled) releases it.
///
/// It keeps the owner of the cache (the layer's state) alive, so that the refresh can run in the
/// background after the request that claimed it is gone.
pub(crate) struct Refresh<O: AsRef<CatalogCache>> {
    owner: Arc<O>,
}

impl<O: AsRef<CatalogCache>> Refresh<O> {
    /// The owner of the cache, for what a [`Fetch`] borrows.
    pub(crate) fn owner(&self) -> &O {
        &self.owner
    }

    /// Runs the refresh. On failure the stale catalog keeps serving, and no other refresh starts
    /// for the retry interval.
    pub(crate) async fn run(&self, source: Fetch<'_>) -> Option<Arc<Loaded>> {
        let cache = (*self.owner).as_ref();
        let loaded = cache.fetch(source).await;
        if loaded.is_none() {
            let retry_in = cache.retry_interval();
            let retry_at = cache.nanos(Instant::now()).saturating_add(nanos(retry_in));
            // Recorded before the claim is given back (when `self` is dropped).
            cache.retry_at.store(retry_at, Ordering::Release);
            tracing::warn!(
                ?retry_in,
                "plan catalog refresh failed; the last good catalog keeps serving"
            );
        }
        loaded
    }
}

impl<O: AsRef<CatalogCache>> Drop for Refresh<O> {
    fn drop(&mut self) {
        (*self.owner)
            .as_ref()
            .refreshing
            .store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::store::{MemoryStore, StoreFuture};
    use crate::subscriber::Subscriber;

    const TTL: Duration = Duration::from_secs(60);
    const MAX_STALE: Duration = Duration::from_secs(600);

    fn store() -> MemoryStore {
        MemoryStore::new(Catalog::from_json(r#"[{"name": "free", "clients": 3}]"#).unwrap())
    }

    /// A store whose `plans()` fails after the first call, counting its calls.
    struct FailsAfterFirst {
        inner: MemoryStore,
        calls: AtomicUsize,
    }

    impl PlanStore for FailsAfterFirst {
        fn plans<'a>(&'a self) -> StoreFuture<'a, Arc<Catalog>> {
            StoreFuture::new(async move {
                if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    self.inner.plans().await
                } else {
                    Err("down".into())
                }
            })
        }
        fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
            StoreFuture::new(async move { self.inner.user(id).await })
        }
    }

    fn fetch<'a>(store: &'a dyn PlanStore, routes: &'a RouteConfig) -> Fetch<'a> {
        Fetch {
            store,
            timeout: Duration::from_secs(5),
            routes,
        }
    }

    /// What the cache offers at `now`: `Some(stale)` when a catalog is usable, `None` for a load.
    fn offered(cache: &CatalogCache, now: Instant) -> Option<bool> {
        match cache.view(&cache.read(), now) {
            View::Usable { stale, .. } => Some(stale),
            View::Load => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_view_changes_at_the_ttl_and_max_stale_boundaries() {
        let store = store();
        let routes = RouteConfig::new();
        let cache = CatalogCache::new(TTL, MAX_STALE);
        assert_eq!(offered(&cache, Instant::now()), None, "nothing loaded yet");

        cache.load(fetch(&store, &routes)).await.expect("loads");
        let loaded_at = Instant::now();
        assert_eq!(offered(&cache, loaded_at), Some(false));
        assert_eq!(
            offered(&cache, loaded_at + TTL - Duration::from_nanos(1)),
            Some(false),
            "fresh until the last instant of the time-to-live"
        );
        assert_eq!(
            offered(&cache, loaded_at + TTL),
            Some(true),
            "stale at the time-to-live"
        );
        assert_eq!(
            offered(
                &cache,
                loaded_at + TTL + MAX_STALE - Duration::from_nanos(1)
            ),
            Some(true),
            "stale but usable until the last instant of max_stale"
        );
        assert_eq!(
            offered(&cache, loaded_at + TTL + MAX_STALE),
            None,
            "past max_stale a request waits for a load"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_invalidated_catalog_is_not_offered_but_serves_as_the_fallback() {
        let store = FailsAfterFirst {
            inner: store(),
            calls: AtomicUsize::new(0),
        };
        let routes = RouteConfig::new();
        let cache = CatalogCache::new(TTL, MAX_STALE);
        let first = cache.load(fetch(&store, &routes)).await.expect("loads");
        cache.invalidate();
        assert_eq!(offered(&cache, Instant::now()), None);
        let again = cache
            .load(fetch(&store, &routes))
            .await
            .expect("falls back");
        assert!(Arc::ptr_eq(&first, &again), "the last good catalog serves");
        assert_eq!(store.calls.load(Ordering::SeqCst), 2);

        tokio::time::advance(TTL + MAX_STALE).await;
        assert!(
            cache.load(fetch(&store, &routes)).await.is_none(),
            "no fallback older than max_stale past the time-to-live"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_ttl_fetches_every_time() {
        let store = FailsAfterFirst {
            inner: store(),
            calls: AtomicUsize::new(0),
        };
        let routes = RouteConfig::new();
        let cache = CatalogCache::new(Duration::ZERO, MAX_STALE);
        cache.load(fetch(&store, &routes)).await.expect("loads");
        assert_eq!(offered(&cache, Instant::now()), None);
        cache
            .load(fetch(&store, &routes))
            .await
            .expect("falls back");
        assert_eq!(store.calls.load(Ordering::SeqCst), 2);
    }

    struct Owner(CatalogCache);

    impl AsRef<CatalogCache> for Owner {
        fn as_ref(&self) -> &CatalogCache {
            &self.0
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_refresh_at_a_time_and_a_failed_one_holds_the_next_back() {
        let store = FailsAfterFirst {
            inner: store(),
            calls: AtomicUsize::new(0),
        };
        let routes = RouteConfig::new();
        let owner = Arc::new(Owner(CatalogCache::new(TTL, MAX_STALE)));
        owner.0.load(fetch(&store, &routes)).await.expect("loads");
        tokio::time::advance(TTL).await;

        let now = Instant::now();
        let refresh = CatalogCache::begin_refresh(&owner, now).expect("the first claim wins");
        assert!(
            CatalogCache::begin_refresh(&owner, now).is_none(),
            "one refresh at a time"
        );
        assert!(
            refresh.run(fetch(&store, &routes)).await.is_none(),
            "the store is down"
        );
        drop(refresh);

        let retry = owner.0.retry_interval();
        assert_eq!(retry, Duration::from_secs(5));
        assert!(
            CatalogCache::begin_refresh(&owner, Instant::now()).is_none(),
            "held back"
        );
        tokio::time::advance(retry).await;
        assert!(
            CatalogCache::begin_refresh(&owner, Instant::now()).is_some(),
            "retried"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_claim_is_given_back() {
        let owner = Arc::new(Owner(CatalogCache::new(TTL, MAX_STALE)));
        let claim = CatalogCache::begin_refresh(&owner, Instant::now());
        assert!(claim.is_some());
        drop(claim);
        assert!(CatalogCache::begin_refresh(&owner, Instant::now()).is_some());
    }
}

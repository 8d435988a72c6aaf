//! [`PlanLimitLayer`] and its builder.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use tower_layer::Layer;

use crate::alerts::{AlertHandler, Alerts, Threshold};
use crate::cache::{CatalogCache, UserCache, Users};
use crate::catalog::Action;
use crate::check::{ClockFn, Shared};
use crate::count::{CommitWhen, Counting};
use crate::decision::Policy;
use crate::entitlements::{Entitlements, EntitlementsService, Unavailable};
use crate::error::ConfigError;
use crate::invalidator::Invalidator;
use crate::rate::{MemoryRates, RateStore};
use crate::response::{JsonRejection, RenderRejection};
use crate::routes::{RouteConfig, Scope};
use crate::service::PlanLimit;
use crate::store::{PlanStore, UsageStore};
use crate::user::{ExtractFn, RequestHead, UserId};

/// How long a loaded catalog is used before it is fetched again, unless configured.
const DEFAULT_PLANS_TTL: Duration = Duration::from_secs(60 * 60);
/// How long past its time-to-live a catalog keeps serving while refreshes fail, unless configured.
const DEFAULT_MAX_STALE: Duration = Duration::from_secs(24 * 60 * 60);
/// How long one store call may take before it counts as a failure, unless configured.
const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a reservation holds its unit when it is never settled, unless configured.
const DEFAULT_LEASE: Duration = Duration::from_secs(5 * 60);

/// A [`Layer`] that enforces subscription-plan limits on the services it wraps.
///
/// Built with [`PlanLimitLayer::builder`]. Cloning the layer (and the [`PlanLimit`] services it
/// makes) copies a pointer: every service made by one layer shares its configuration, its catalog
/// cache and its user cache, and one [`Invalidator`] reaches them all.
///
/// # What could be governed
///
/// Which requests are governed depends on the catalog (its resources), which the layer loads
/// from the store. Before the first load, and whenever the loaded catalog may not be used (see
/// [`Invalidator::catalog`], [`plans_ttl`](PlanLimitLayerBuilder::plans_ttl) and
/// [`max_stale`](PlanLimitLayerBuilder::max_stale)), the layer tells requests apart with a test
/// that needs no catalog: a request *could be governed* when its method is `GET`, `HEAD`,
/// `POST`, `PUT`, `PATCH` or `DELETE` and its path (normalised as the
/// [`RouteTable`](crate::routes::RouteTable) does) is the base or below it, or is the collection or item
/// path of a resource given a [`path`](PlanLimitLayerBuilder::path); or when a custom
/// [`route`](PlanLimitLayerBuilder::route) matches its method and path.
///
/// - A request that could not be governed passes straight through: it never waits for the
///   catalog nor touches the store, even before the first load or with the store down.
/// - A request that could be governed waits for the catalog when none is usable, and is then
///   resolved with the catalog it waited for. Once the loaded catalog is past `plans_ttl`, such a
///   request starts the background refresh even if the loaded catalog does not govern it, so a
///   resource added to the catalog is governed as soon as the refresh is in.
///
/// With the default base `/`, every path is below the base: every request with one of those
/// methods could be governed, so it waits for the first catalog (and fails closed without one,
/// unless [`fail_open`](PlanLimitLayerBuilder::fail_open)). Give a base such as `/api` to keep
/// health checks and other endpoints independent of the store.
///
/// # Outside a Tokio runtime
///
/// The layer runs on any executor, with two differences outside a Tokio runtime: store calls are
/// not timed out ([`store_timeout`](PlanLimitLayerBuilder::store_timeout) needs Tokio's timer),
/// and the refresh of a stale catalog runs inline, in the request that starts it, which waits for
/// it and is resolved with the refreshed catalog (or the stale one if the refresh fails).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use http::{Method, StatusCode};
/// use tower_plans::{Action, Catalog, PlanLimitLayer, PlanStore, Subscriber, UserCache};
/// # use std::sync::Arc;
/// # struct Store;
/// # use tower_plans::store::StoreFuture;
/// # impl PlanStore for Store {
/// #     fn plans(&self) -> StoreFuture<'_, Arc<Catalog>> { StoreFuture::ready(Err("none".into())) }
/// #     fn user<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> { StoreFuture::ready(Ok(None)) }
/// # }
/// # let store = Store;
///
/// let layer = PlanLimitLayer::builder(store)
///     .base("/api")
///     .path("clients", "/my/clients")
///     .route(Method::POST, "/reports/{id}/export", "exports", Action::Create)
///     .plans_ttl(Duration::from_secs(300))
///     .user_cache(UserCache::time_to_live(Duration::from_secs(30), 10_000))
///     .default_plan("free")
///     .build()?;
/// let invalidator = layer.invalidator();
/// # let _ = invalidator;
/// # Ok::<(), tower_plans::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct PlanLimitLayer {
    pub(crate) shared: Arc<Shared>,
}

/// Builds a [`PlanLimitLayer`]; see [`PlanLimitLayer::builder`].
///
/// Every setter takes and returns the builder; [`build`](Self::build) checks the configuration.
#[must_use]
pub struct PlanLimitLayerBuilder {
    store: Box<dyn PlanStore>,
    routes: RouteConfig,
    plans_ttl: Duration,
    max_stale: Duration,
    user_cache: Option<UserCache>,
    store_timeout: Duration,
    fail_open: bool,
    allowed_extension: bool,
    rate_limit_headers: bool,
    grace_period: Duration,
    default_plan: Option<Arc<str>>,
    extractor: Option<Box<ExtractFn>>,
    renderer: Box<dyn RenderRejection>,
    clock: Option<Box<ClockFn>>,
    usage_store: Option<Box<dyn UsageStore>>,
    lease: Duration,
    commit_when: Option<Box<CommitWhen>>,
    commit_dropped: bool,
    alerts: Option<Alerts>,
    rates: Option<Box<dyn RateStore>>,
}

impl PlanLimitLayer {
    /// Starts configuring a layer that reads plans and subscribers from `store`.
    ///
    /// The defaults: base `/`, case-insensitive matching, `plans_ttl` 60 minutes, `max_stale`
    /// 24 hours, no user cache, `store_timeout` 5 seconds, failing closed, the
    /// [`Allowed`](crate::Allowed) extension on, no grace period, no default plan, the user from
    /// the [`UserId`] request extension, and [`JsonRejection`].
    pub fn builder(store: impl PlanStore) -> PlanLimitLayerBuilder {
        PlanLimitLayerBuilder {
            store: Box::new(store),
            routes: RouteConfig::new(),
            plans_ttl: DEFAULT_PLANS_TTL,
            max_stale: DEFAULT_MAX_STALE,
            user_cache: None,
            store_timeout: DEFAULT_STORE_TIMEOUT,
            fail_open: false,
            allowed_extension: true,
            rate_limit_headers: false,
            grace_period: Duration::ZERO,
            default_plan: None,
            extractor: None,
            renderer: Box::new(JsonRejection),
            clock: None,
            usage_store: None,
            lease: DEFAULT_LEASE,
            commit_when: None,
            commit_dropped: false,
            alerts: None,
            rates: None,
        }
    }

    /// What `user` may do: the effective plan, its state and expiry, and every limit with its
    /// usage, remaining amount and reset (see [`Entitlements`]).
    ///
    /// It reads what a request of the user would read: the catalog and the record through this
    /// layer's caches (loading them when they are not cached), the counts from its usage store
    /// when it [counts usage](PlanLimitLayerBuilder::count_usage), with the same store timeout
    /// and clock. [`entitlements_service`](Self::entitlements_service) answers it as JSON.
    ///
    /// # Errors
    /// [`Unavailable`] when the plan store or the usage store fails or times out (the error is
    /// logged). An unknown user is not an error: they have no plan
    /// ([`Standing::None`](crate::entitlements::Standing::None)), or the default plan.
    pub fn entitlements(
        &self,
        user: impl Into<UserId>,
    ) -> impl Future<Output = Result<Entitlements, Unavailable>> + Send + 'static {
        let inner = Arc::clone(&self.shared);
        let user = user.into();
        async move { crate::entitlements::read(&inner, user).await }
    }

    /// A service that answers a request with its user's [`entitlements`](Self::entitlements)
    /// as JSON, for a front end: route it at `GET /entitlements`, say, behind the same
    /// authentication as the governed routes. See [`EntitlementsService`].
    ///
    /// ```
    /// # use tower_plans::{Catalog, MemoryStore, PlanLimitLayer};
    /// # let store = MemoryStore::new(Catalog::default());
    /// let layer = PlanLimitLayer::builder(store).base("/api").build()?;
    /// let app: axum::Router = axum::Router::new()
    ///     .route_service("/entitlements", layer.entitlements_service());
    /// # Ok::<(), tower_plans::ConfigError>(())
    /// ```
    pub fn entitlements_service(&self) -> EntitlementsService {
        EntitlementsService::new(Arc::clone(&self.shared))
    }

    /// A service that answers the usage page: HTML that fetches
    /// [`entitlements_service`](Self::entitlements_service)'s JSON, at `entitlements` beside
    /// the page, and shows it to the signed-in user (see [`usage_page`](crate::usage_page)).
    /// Route it at `GET /account`, say, next to `GET /entitlements`.
    #[cfg(feature = "usage-page")]
    #[cfg_attr(docsrs, doc(cfg(feature = "usage-page")))]
    pub fn usage_page(&self) -> crate::usage_page::UsagePage {
        crate::usage_page::UsagePage::new()
    }

    /// A handle that drops cached users or the cached catalog of this layer (and of every service
    /// it made), for a webhook or a message bus to call when rights change.
    pub fn invalidator(&self) -> Invalidator {
        Invalidator::new(Arc::clone(&self.shared))
    }
}

impl<S> Layer<S> for PlanLimitLayer {
    type Service = PlanLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PlanLimit::new(inner, Arc::clone(&self.shared))
    }
}

impl fmt::Debug for PlanLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanLimitLayer")
            .field("config", &*self.shared)
            .finish()
    }
}

impl fmt::Debug for PlanLimitLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanLimitLayerBuilder")
            .field("routes", &self.routes)
            .field("plans_ttl", &self.plans_ttl)
            .field("max_stale", &self.max_stale)
            .field("user_cache", &self.user_cache)
            .field("store_timeout", &self.store_timeout)
            .field("fail_open", &self.fail_open)
            .field("allowed_extension", &self.allowed_extension)
            .field("rate_limit_headers", &self.rate_limit_headers)
            .field("grace_period", &self.grace_period)
            .field("default_plan", &self.default_plan)
            .field("custom_extractor", &self.extractor.is_some())
            .field("custom_clock", &self.clock.is_some())
            .field("counting", &self.usage_store.is_some())
            .field("lease", &self.lease)
            .field("custom_commit_when", &self.commit_when.is_some())
            .field("commit_dropped", &self.commit_dropped)
            .finish_non_exhaustive()
    }
}

impl PlanLimitLayerBuilder {
    /// The base path below which resources live (default `/`): `api`, `/api/` and `//api` all
    /// mean `/api`.
    ///
    /// Paths outside the base, the configured [`path`](Self::path)s and the custom
    /// [`route`](Self::route)s can never be governed: they pass without touching the store, even
    /// before the catalog is loaded. With the base `/` every path could be governed (see
    /// [`PlanLimitLayer`](PlanLimitLayer#what-could-be-governed)).
    pub fn base(mut self, base: impl Into<String>) -> Self {
        self.routes = self.routes.base(base);
        self
    }

    /// An explicit collection path for `resource`: absolute if it starts with `/`, otherwise
    /// relative to the base. Without one, a resource lives at `base/resource`.
    pub fn path(mut self, resource: impl Into<Arc<str>>, template: impl Into<String>) -> Self {
        self.routes = self.routes.path(resource, template);
        self
    }

    /// A custom route: `method` on `template` performs `action` on `resource`. Custom routes take
    /// precedence over the generated ones.
    pub fn route(
        mut self,
        method: Method,
        template: impl Into<String>,
        resource: impl Into<Arc<str>>,
        action: Action,
    ) -> Self {
        self.routes = self.routes.route(method, template, resource, action);
        self
    }

    /// Whether path matching is case-sensitive (default `false`).
    pub fn case_sensitive(mut self, yes: bool) -> Self {
        self.routes = self.routes.case_sensitive(yes);
        self
    }

    /// How long a loaded catalog is used before it is fetched again (default 60 minutes).
    ///
    /// Once a catalog is loaded, no request waits for a refresh: the first request after the
    /// time-to-live that [could be governed](PlanLimitLayer#what-could-be-governed) starts one
    /// in the background and is decided with the loaded catalog meanwhile. Only one refresh runs
    /// at a time. After a failed refresh, the next one starts no sooner than the time-to-live or
    /// 5 seconds later, whichever is shorter; requests keep the last good catalog meanwhile.
    ///
    /// Outside a Tokio runtime there is no background to run the refresh in: the request that
    /// starts it runs it inline and waits for it.
    ///
    /// Zero disables the cache: every request that could be governed fetches the catalog and is
    /// resolved with it.
    pub fn plans_ttl(mut self, ttl: Duration) -> Self {
        self.plans_ttl = ttl;
        self
    }

    /// How long past its time-to-live the last good catalog keeps serving while refreshes fail
    /// (default 24 hours). After that, requests that could be governed wait for a fetch, and a
    /// failing fetch is a store failure (see [`fail_open`](Self::fail_open)). Failed refreshes
    /// are logged at warn level.
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// Caches subscriber records between requests (default: off, every governed request asks
    /// the store, since usage changes). Unknown users are cached too. Concurrent misses for one
    /// user make one store call; a request that starts after [`Invalidator::user`] or
    /// [`Invalidator::all_users`] never shares a call that began before it, and what such a call
    /// returns is not cached.
    pub fn user_cache(mut self, cache: UserCache) -> Self {
        self.user_cache = Some(cache);
        self
    }

    /// How long one store call may take before it counts as a failure (default 5 seconds).
    ///
    /// The timeout runs on Tokio's timer, from the moment a call first has to wait: a store that
    /// answers at once (such as [`MemoryStore`](crate::MemoryStore)) never sets a timer. Outside
    /// any Tokio runtime there is no timer: store calls are awaited without a timeout, however
    /// long the store takes.
    ///
    /// # Panics
    /// A store call that has to wait inside a Tokio runtime built without timers
    /// (`enable_time`) panics. `#[tokio::main]` enables them.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// What a governed request gets when the store fails or times out: `false` (the default)
    /// answers `503` with `{"reason":"plan_store_unavailable"}`; `true` lets the request through
    /// and logs a warning. The store's error text is logged, never sent.
    pub fn fail_open(mut self, yes: bool) -> Self {
        self.fail_open = yes;
        self
    }

    /// Whether an allowed request reaches the inner service with its [`Allowed`](crate::Allowed)
    /// decision in the request extensions (default `true`), for handlers to read the plan, the
    /// limit and the usage.
    ///
    /// Inserting it is the one allocation of a request decided from the caches; turn it off when
    /// no handler reads it.
    pub fn allowed_extension(mut self, yes: bool) -> Self {
        self.allowed_extension = yes;
        self
    }

    /// Whether the responses of limited actions carry the `RateLimit-Policy` and `RateLimit`
    /// header fields of the IETF httpapi draft (default `false`): allowed responses (whatever
    /// the inner service answers) and `403` denials alike, for every action with a finite
    /// limit.
    ///
    /// The policy is named `resource.action`, and `q` is the limit; `r` is what is left after
    /// the request (0 on a denial). A [quota](crate::catalog::Limit::Periodic) adds the length
    /// of its current period in seconds (`w`) and the seconds until it resets (`t`):
    ///
    /// ```text
    /// RateLimit-Policy: "clients.create";q=3
    /// RateLimit: "clients.create";r=2
    /// RateLimit-Policy: "reports.create";q=20;w=86400
    /// RateLimit: "reports.create";r=19;t=43200
    /// ```
    ///
    /// The fields are appended, so those of another limiter stay. Resource and action names
    /// outside printable ASCII get no fields. Writing them allocates (the two field values), so
    /// with this on a limited request decided from the caches is no longer allocation-free. A quota's denial carries `Retry-After` whether
    /// this is on or not. Counted requests report the count they reserved against; a request
    /// whose unit is then released (it failed) leaves one more than its `r` said.
    pub fn rate_limit_headers(mut self, yes: bool) -> Self {
        self.rate_limit_headers = yes;
        self
    }

    /// Time added to every expiry before a plan counts as expired (default zero).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }

    /// The plan that applies to a user without an active plan (default none: such users are
    /// denied every governed action).
    pub fn default_plan(mut self, plan: impl Into<Arc<str>>) -> Self {
        self.default_plan = Some(plan.into());
        self
    }

    /// Finds the user with `extract` instead of the [`UserId`] request extension. The extractor
    /// sees the request head; the id it returns is also inserted into the request extensions.
    /// It runs only for governed requests.
    ///
    /// ```
    /// use tower_plans::{PlanLimitLayer, RequestHead, UserId};
    /// # use std::sync::Arc;
    /// # struct Store;
    /// # use tower_plans::store::StoreFuture;
    /// # impl tower_plans::PlanStore for Store {
    /// #     fn plans(&self) -> StoreFuture<'_, Arc<tower_plans::Catalog>> { StoreFuture::ready(Err("none".into())) }
    /// #     fn user<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<Arc<tower_plans::Subscriber>>> { StoreFuture::ready(Ok(None)) }
    /// # }
    ///
    /// #[derive(Clone)]
    /// struct Session {
    ///     account: String,
    /// }
    ///
    /// let layer = PlanLimitLayer::builder(Store)
    ///     .extract_user(|head: &RequestHead<'_>| {
    ///         let session = head.extensions().get::<Session>()?;
    ///         Some(UserId::from(session.account.as_str()))
    ///     })
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_plans::ConfigError>(())
    /// ```
    pub fn extract_user<F>(mut self, extract: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> Option<UserId> + Send + Sync + 'static,
    {
        self.extractor = Some(Box::new(extract));
        self
    }

    /// Replaces the rendering of rejections (default [`JsonRejection`]). The
    /// [`Rejection`](crate::Rejection), and for a denial the [`Denial`](crate::Denial) itself, are
    /// inserted into the response extensions whatever the renderer returns.
    pub fn render_rejection(mut self, renderer: impl RenderRejection) -> Self {
        self.renderer = Box::new(renderer);
        self
    }

    /// The clock of the decision, in milliseconds since the Unix epoch (default the system
    /// clock). Trials and expiries are judged against it; cache lifetimes are not.
    pub fn clock<F>(mut self, now_ms: F) -> Self
    where
        F: Fn() -> u64 + Send + Sync + 'static,
    {
        self.clock = Some(Box::new(now_ms));
        self
    }

    /// Counts usage in `store`: the layer keeps the counts, atomically, instead of reading them
    /// from the subscriber records (default: off, usage is read from the records).
    ///
    /// With counting on, an allowed governed request that is counted reserves before the inner
    /// service is called (one unit, or its cost and its credits for a metered request, see
    /// [Metered plans](crate::guide::metering)), and its response settles it: a success (2xx,
    /// see [`commit_when`](Self::commit_when)) commits it (what a reported meter reported),
    /// anything else releases it. So concurrent requests at `limit - 1` let exactly one
    /// through, and a failed request costs nothing.
    /// What is counted: a create raises the resource's item count and a successful delete
    /// lowers it (never below 0), on every plan; any other action with a finite limit counts
    /// its successful calls. Counters that do not exist yet start from the record's usage.
    /// A denial reports the counted usage (used and held), and [`Allowed`](crate::Allowed)
    /// tells the handler the same.
    ///
    /// A usage store failure follows the failure policy ([`fail_open`](Self::fail_open)); a
    /// commit or release that fails is logged and leaves the response as it is.
    /// [`MemoryStore`](crate::MemoryStore) serves as both stores: give the layer two clones.
    pub fn count_usage(mut self, store: impl UsageStore) -> Self {
        self.usage_store = Some(Box::new(store));
        self
    }

    /// How long a reservation holds its units when it is never settled, for example because the
    /// instance that made it crashed (default 5 minutes). Stores that outlive the process honour
    /// it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Which response statuses commit a reservation (default: `2xx`); any other status
    /// releases it.
    pub fn commit_when<F>(mut self, commits: F) -> Self
    where
        F: Fn(StatusCode) -> bool + Send + Sync + 'static,
    {
        self.commit_when = Some(Box::new(commits));
        self
    }

    /// What a request whose response future is dropped while the inner service runs (the
    /// client went away, a timeout layer gave up) does to its reservation: `false` (the
    /// default) releases it, `true` commits it.
    ///
    /// The handler may already have written when its future is dropped. Releasing then counts
    /// one less than the user has, so a later request may pass that the plan would refuse (an
    /// application can correct the count with [`UsageStore::adjust`](crate::UsageStore::adjust));
    /// committing counts one more than the user has when the handler had not written yet, so
    /// the count never falls behind. Once the inner service has answered, its answer settles
    /// the reservation even if the response future is dropped meanwhile.
    pub fn commit_dropped(mut self, yes: bool) -> Self {
        self.commit_dropped = yes;
        self
    }

    /// Raises usage alerts: when a committed request brings a user's count to one of
    /// `thresholds` of a finite limit it counted on (its action's, or its credit pool's),
    /// `handler` receives a [`UsageAlert`](crate::alerts::UsageAlert), once per counter,
    /// period and threshold across every instance sharing the usage store. Thresholds are
    /// percents of the limit (`[80, 100]`) or [`Threshold::Remaining`] units. Needs
    /// [`count_usage`](Self::count_usage) (without it `build` fails), and a usage store that
    /// keeps markers ([`UsageStore::mark`](crate::UsageStore::mark): the memory, Redis and
    /// Postgres stores do). See [`alerts`](crate::alerts).
    ///
    /// [`Threshold::Remaining`]: crate::alerts::Threshold::Remaining
    pub fn alerts<T: Into<Threshold>>(
        mut self,
        thresholds: impl IntoIterator<Item = T>,
        handler: impl AlertHandler,
    ) -> Self {
        let thresholds = thresholds.into_iter().map(Into::into);
        self.alerts = Some(Alerts::new(thresholds, handler));
        self
    }

    /// Where the plans' rates ([`Rate`](crate::catalog::Rate)) are kept: by default in this
    /// layer's memory ([`MemoryRates`]), which is exact for one instance; give every instance
    /// the same shared store (with the `redis` feature, `RedisConnection::rate_store()`) to
    /// enforce a rate across them.
    pub fn rate_store(mut self, store: impl RateStore) -> Self {
        self.rates = Some(Box::new(store));
        self
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    /// A [`ConfigError`] when a path template is invalid or two routes conflict, when the store
    /// timeout or the lease is zero, when the user cache has a zero capacity or a lifetime that is zero or
    /// longer than 1000 years, when the default plan's name is empty, or when alerts are set
    /// without counted usage.
    pub fn build(self) -> Result<PlanLimitLayer, ConfigError> {
        self.routes.validate()?;
        let scope = Scope::new(&self.routes)?;
        if self.lease.is_zero() {
            return Err(ConfigError::InvalidOption {
                option: "lease",
                reason: "must be greater than zero".to_owned(),
            });
        }
        if self.store_timeout.is_zero() {
            return Err(ConfigError::InvalidOption {
                option: "store_timeout",
                reason: "must be greater than zero".to_owned(),
            });
        }
        if let Some(plan) = &self.default_plan {
            if plan.is_empty() {
                return Err(ConfigError::InvalidOption {
                    option: "default_plan",
                    reason: "the plan name is empty".to_owned(),
                });
            }
        }
        if self.alerts.is_some() && self.usage_store.is_none() {
            return Err(ConfigError::InvalidOption {
                option: "alerts",
                reason: "usage alerts need counted usage (`count_usage`)".to_owned(),
            });
        }
        let users = match self.user_cache {
            Some(config) => Some(Users::new(config)?),
            None => None,
        };
        let mut policy = Policy::new().with_grace_period(self.grace_period);
        if let Some(plan) = self.default_plan {
            policy = policy.with_default_plan(plan);
        }
        Ok(PlanLimitLayer {
            shared: Arc::new(Shared {
                store: self.store,
                routes: self.routes,
                scope,
                policy,
                store_timeout: self.store_timeout,
                fail_open: self.fail_open,
                allowed_extension: self.allowed_extension,
                rate_limit_headers: self.rate_limit_headers,
                extractor: self.extractor,
                renderer: self.renderer,
                clock: self.clock,
                catalog: CatalogCache::new(self.plans_ttl, self.max_stale),
                users,
                counting: self.usage_store.map(|store| {
                    Arc::new(Counting {
                        store,
                        lease: self.lease,
                        timeout: self.store_timeout,
                        commit_when: self.commit_when,
                        commit_dropped: self.commit_dropped,
                        alerts: self.alerts.map(Arc::new),
                    })
                }),
                rates: self
                    .rates
                    .unwrap_or_else(|| Box::new(MemoryRates::default())),
            }),
        })
    }
}

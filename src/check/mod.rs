//! The check of one request: the layer's shared state ([`Shared`]) and the one place where a
//! request is decided ([`Shared::check`]).
//!
//! A check answers with [`Check::Ready`] when everything it needs is at hand (the cached
//! catalog, and a user cache hit or stores that answer at once) or with [`Check::Waiting`], one
//! boxed future that owns the request until it is decided. Either way the answer is final: a
//! [`Checked`] that says to pass the request on, to call the inner service with what its
//! response then settles, or to answer with a refusal. Nothing calls back into the check.
//!
//! - [`load`] brings the catalog and the user's record (caches, store calls);
//! - [`judge`] turns them into the answer: the decision, counted usage, the one place that
//!   builds the [`Allowed`](crate::Allowed) extension.
//!
//! Every store call is bounded by `store_timeout` ([`timed`](crate::timeout::timed)).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tokio::time::Instant;
use tracing::Instrument;

use crate::cache::{CatalogCache, Loaded, Users, View};
use crate::count::{Counting, Reservation};
use crate::decision::Policy;
use crate::headers::ResponseFields;
use crate::metrics::{self, Cache, Decided, RouteKeys};
use crate::rate::RateStore;
use crate::response::{Rejection, RenderRejection};
use crate::routes::{RouteConfig, RouteIndex, Scope};
use crate::store::PlanStore;
use crate::user::{extract_user, ExtractFn, UserId};

mod judge;
mod load;
mod rates;

pub(crate) use load::Source;

/// The clock of the decision: milliseconds since the Unix epoch.
pub(crate) type ClockFn = dyn Fn() -> u64 + Send + Sync + 'static;

/// What every service of one layer shares, behind one `Arc`: the configuration and the caches.
pub(crate) struct Shared {
    pub(crate) store: Box<dyn PlanStore>,
    pub(crate) routes: RouteConfig,
    /// Where governed routes can be, whatever the catalog.
    pub(crate) scope: Scope,
    pub(crate) policy: Policy,
    pub(crate) store_timeout: Duration,
    pub(crate) fail_open: bool,
    /// Whether an allowed request carries its [`Allowed`](crate::Allowed) decision.
    pub(crate) allowed_extension: bool,
    /// Whether responses of limited actions carry the `RateLimit` header fields.
    pub(crate) rate_limit_headers: bool,
    pub(crate) extractor: Option<Box<ExtractFn>>,
    pub(crate) renderer: Box<dyn RenderRejection>,
    pub(crate) clock: Option<Box<ClockFn>>,
    pub(crate) catalog: CatalogCache,
    pub(crate) users: Option<Users>,
    /// Counted usage, when a usage store is configured.
    pub(crate) counting: Option<Arc<Counting>>,
    /// Where the plans' rates are kept.
    pub(crate) rates: Box<dyn RateStore>,
}

/// What a check decided: the final answer for one request.
pub(crate) enum Checked {
    /// Call the inner service as it is (ungoverned after all, or failing open).
    Pass,
    /// Call the inner service (the request carries its [`Allowed`](crate::Allowed) extension
    /// when that is on); its response settles the reservation of a counted request and
    /// carries the `RateLimit` fields when they are on.
    Allow(Option<Reservation>, Option<Box<ResponseFields>>),
    /// Answer with this response, without calling the inner service.
    Reject(Box<Response<Full<Bytes>>>),
}

/// A check that waits for a store: it owns the request until it is decided.
pub(crate) type Waiting<B> = Pin<Box<dyn Future<Output = (Request<B>, Checked)> + Send>>;

/// The answer of [`Shared::check`].
// `Ready` is the common case, and boxing its request would allocate for every request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Check<B> {
    /// Decided without waiting.
    Ready(Request<B>, Checked),
    /// To be decided once the stores answer.
    Waiting(Waiting<B>),
}

impl Shared {
    /// Checks `request`: at once when the cached catalog, the user cache or stores that answer
    /// at once are enough, else as one future.
    pub(crate) fn check<B: Send + 'static>(self: &Arc<Self>, mut request: Request<B>) -> Check<B> {
        let now = Instant::now();
        let current = self.catalog.read();
        let (loaded, stale) = match self.catalog.view(&current, now) {
            View::Usable { loaded, stale } => (loaded, stale),
            View::Load => {
                if !self.could_be_governed(&request) {
                    return Check::Ready(request, Checked::Pass);
                }
                metrics::cache(Cache::Catalog, false);
                return self.resolving(Source::Load, request);
            }
        };
        let index = loaded
            .table
            .resolve_index(request.method(), request.uri().path());
        if stale && (index.is_some() || self.could_be_governed(&request)) {
            if let Some(refresh) = self.refresh_in_background(now) {
                metrics::cache(Cache::Catalog, false);
                return self.resolving(Source::Refresh(refresh, Arc::clone(loaded)), request);
            }
        }
        let Some(index) = index else {
            return Check::Ready(request, Checked::Pass);
        };
        metrics::cache(Cache::Catalog, true);
        let route = loaded.route(index);
        let span = metrics::request_span(route.resource, &route.action.normalised());
        let entered = span.enter();
        let Some(user) = extract_user(self.extractor.as_deref(), &mut request) else {
            let checked = self.unauthenticated(loaded, index);
            return Check::Ready(request, checked);
        };
        tracing::debug!(user = %user, "governed request");
        let record = match self.record_now(&user) {
            Some(Ok(record)) => record,
            Some(Err(())) => {
                let checked = self.store_unavailable(loaded.keys.route(index));
                return Check::Ready(request, checked);
            }
            None => {
                drop(entered);
                let waiting =
                    Arc::clone(self).decide(Arc::clone(loaded), index, user, None, request);
                return Check::Waiting(Box::pin(waiting.instrument(span)));
            }
        };
        match self.judge_now(loaded, index, record.as_deref(), &user, &mut request) {
            Some(checked) => Check::Ready(request, checked),
            None => {
                drop(entered);
                // The usage store has to be awaited: decide again, waiting for it.
                let waiting =
                    Arc::clone(self).decide(Arc::clone(loaded), index, user, Some(record), request);
                Check::Waiting(Box::pin(waiting.instrument(span)))
            }
        }
    }

    /// A check of a request that no usable catalog resolved: get a catalog from `source`,
    /// then resolve and decide the request with it.
    fn resolving<B: Send + 'static>(
        self: &Arc<Self>,
        source: Source,
        request: Request<B>,
    ) -> Check<B> {
        Check::Waiting(Box::pin(Arc::clone(self).resolve(source, request)))
    }

    /// Resolves `request` with a catalog from `source`, then decides it.
    async fn resolve<B: Send + 'static>(
        self: Arc<Self>,
        source: Source,
        mut request: Request<B>,
    ) -> (Request<B>, Checked) {
        let Some(loaded) = self.catalog_from(source).await else {
            let checked = self.store_unavailable(RouteKeys::unknown());
            return (request, checked);
        };
        let Some(index) = loaded
            .table
            .resolve_index(request.method(), request.uri().path())
        else {
            return (request, Checked::Pass);
        };
        let route = loaded.route(index);
        let span = metrics::request_span(route.resource, &route.action.normalised());
        let Some(user) = extract_user(self.extractor.as_deref(), &mut request) else {
            let checked = span.in_scope(|| self.unauthenticated(&loaded, index));
            return (request, checked);
        };
        span.in_scope(|| tracing::debug!(user = %user, "governed request"));
        self.decide(loaded, index, user, None, request)
            .instrument(span)
            .await
    }

    /// Decides a governed request of `user`, waiting for the stores: the user's record (unless
    /// it is given), then the reservation of a counted request.
    async fn decide<B: Send + 'static>(
        self: Arc<Self>,
        loaded: Arc<Loaded>,
        index: RouteIndex,
        user: UserId,
        record: Option<Option<Arc<crate::Subscriber>>>,
        mut request: Request<B>,
    ) -> (Request<B>, Checked) {
        let record = match record {
            Some(record) => record,
            None => match self.record(&user).await {
                Some(record) => record,
                None => {
                    let checked = self.store_unavailable(loaded.keys.route(index));
                    return (request, checked);
                }
            },
        };
        let checked = self
            .judge(&loaded, index, record.as_deref(), &user, &mut request)
            .await;
        (request, checked)
    }

    /// Whether some catalog could govern `request` (see [`Scope`]).
    pub(crate) fn could_be_governed<B>(&self, request: &Request<B>) -> bool {
        self.scope.covers(request.method(), request.uri().path())
    }

    /// The current time for the decision, in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> u64 {
        match &self.clock {
            Some(clock) => clock(),
            None => crate::time::now_ms(),
        }
    }

    /// The `401` of a governed request without a user.
    fn unauthenticated(&self, loaded: &Loaded, index: RouteIndex) -> Checked {
        metrics::decision(Decided::Unauthenticated, loaded.keys.route(index));
        Checked::Reject(self.reject(Rejection::Unauthenticated))
    }
}

impl AsRef<CatalogCache> for Shared {
    fn as_ref(&self) -> &CatalogCache {
        &self.catalog
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanLimitConfig")
            .field("routes", &self.routes)
            .field("policy", &self.policy)
            .field("plans_ttl", &self.catalog.ttl())
            .field("max_stale", &self.catalog.max_stale())
            .field("user_cache", &self.users.as_ref().map(Users::config))
            .field("store_timeout", &self.store_timeout)
            .field("fail_open", &self.fail_open)
            .field("allowed_extension", &self.allowed_extension)
            .field("custom_extractor", &self.extractor.is_some())
            .field("custom_clock", &self.clock.is_some())
            .field("counting", &self.counting)
            .finish_non_exhaustive()
    }
}

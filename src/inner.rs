//! The layer's shared state and the check of a request: what every [`PlanLimit`] service of one
//! layer holds behind one `Arc`, and the store calls and decision between a request and the
//! inner service.
//!
//! [`PlanLimit`]: crate::PlanLimit

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use tokio::time::Instant;
use tracing::Instrument;

use crate::cache::{CatalogCache, Fetch, Loaded, Record, Refresh, Users, View};
use crate::catalog::{Action, Limit, Window};
use crate::count::{Answer, Counting, Reservation, Reserved, Tally};
use crate::decision::{check, terms, Allowed, Denial, Granted, PlanState, Policy, State};
use crate::headers::{retry_after, RateLimitFields};
use crate::metrics::{self, Call, Decided, Stopwatch};
use crate::response::{Rejection, RenderRejection};
use crate::routes::{RouteConfig, RouteIndex, Scope};
use crate::store::{timed, PlanStore, StoreError};
use crate::subscriber::Subscriber;
use crate::user::{extract_user, ExtractFn, UserId};

/// The clock of the decision: milliseconds since the Unix epoch.
pub(crate) type ClockFn = dyn Fn() -> u64 + Send + Sync + 'static;

/// What every service of one layer shares: the configuration and the caches.
pub(crate) struct Inner {
    pub(crate) store: Box<dyn PlanStore>,
    pub(crate) routes: RouteConfig,
    /// Where governed routes can be, whatever the catalog.
    pub(crate) scope: Scope,
    pub(crate) policy: Policy,
    pub(crate) store_timeout: Duration,
    pub(crate) fail_open: bool,
    /// Whether an allowed request carries its [`Allowed`] decision.
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
}

/// The store calls of one request, boxed.
pub(crate) type CheckFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// What a check decided.
// `Judged` is the common case; boxing it would cost every store-checked request an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome {
    /// What to do with the request, and the [`Allowed`] extension of an allowed one (when it is
    /// on): the [`Grant`] of its judgement completed with the route (see [`Outcome::judged`]).
    Judged(Judgement, Option<Allowed>),
    /// The request turned out to be governed once a catalog was loaded: find its user (from the
    /// request, which the response future holds), then check the user.
    Identify(Governed),
}

impl Outcome {
    /// The outcome of `judgement`: an allowed request's grant is taken from the judgement and
    /// completed into its [`Allowed`] extension with the resource and the action that `route`
    /// gives (called only then).
    fn judged(mut judgement: Judgement, route: impl FnOnce() -> (Arc<str>, Action)) -> Outcome {
        let allowed = match &mut judgement {
            Judgement::Allow(grant, ..) => grant.take().map(|grant| {
                let (resource, action) = route();
                grant.allowed(resource, action)
            }),
            _ => None,
        };
        Outcome::Judged(judgement, allowed)
    }
}

/// What to do with a governed request, once its user is known.
///
/// Small enough to move without a `memcpy` (at most 128 bytes): an allowed request carries its
/// [`Grant`], not the whole [`Allowed`] extension, whose resource and action the caller has.
pub(crate) enum Judgement {
    /// Call the inner service as is (ungoverned after all, or failing open).
    Pass,
    /// Call the inner service, with the decision in the request extensions when there is one
    /// (the [`Allowed`] extension is on), the reservation its response settles when it is
    /// counted, and the `RateLimit` fields its response carries when they are on.
    Allow(
        Option<Grant>,
        Option<Reservation>,
        Option<Box<RateLimitFields>>,
    ),
    /// Answer with this response (boxed, as the response future holds it).
    Reject(Box<Response<Full<Bytes>>>),
    /// The plan allows the action, but it is counted, and the usage store has to be awaited
    /// for the reservation (see [`Inner::reserving`]): a store that answers at once has
    /// answered already.
    Count(Box<Pending>),
}

/// An allowed request's [`Allowed`] extension without the resource and the action, which
/// whoever holds the request knows (the route it resolved).
pub(crate) struct Grant {
    plan: Arc<str>,
    state: PlanState,
    limit: Limit,
    usage: u64,
    window: Option<Window>,
}

impl Grant {
    /// The [`Allowed`] extension of an allowed request to `action` of `resource`.
    #[inline]
    pub(crate) fn allowed(self, resource: Arc<str>, action: Action) -> Allowed {
        Allowed {
            plan: self.plan,
            state: self.state,
            resource,
            action,
            limit: self.limit,
            usage: self.usage,
            window: self.window,
        }
    }
}

/// An allowed request that waits for its reservation: what the [`Allowed`] extension or the
/// [`Denial`] will say, and what to reserve.
pub(crate) struct Pending {
    counting: Arc<Counting>,
    tally: Tally,
    user: UserId,
    plan: Arc<str>,
    state: PlanState,
    resource: Arc<str>,
    action: Action,
    limit: Limit,
    /// The current period of a quota.
    window: Option<Window>,
    /// The request's span, entered while the reservation is made and concluded.
    span: tracing::Span,
}

/// What the decision on a counted request names, borrowed: from the catalog and the record
/// when the usage store answers at once, from its [`Pending`] when it was awaited. Only an
/// [`Allowed`] extension or a [`Denial`] clones it.
#[derive(Clone, Copy)]
struct Counted<'a> {
    user: &'a UserId,
    plan: &'a Arc<str>,
    state: State<'a>,
    resource: &'a Arc<str>,
    action: &'a Action,
    limit: Limit,
    window: Option<Window>,
}

/// A governed request's route, and the catalog whose table resolved it.
pub(crate) struct Governed {
    loaded: Arc<Loaded>,
    index: RouteIndex,
}

/// Where the catalog of a request that no usable catalog resolved comes from.
pub(crate) enum Source {
    /// A load, shared with the concurrent requests that need one.
    Load,
    /// The refresh of this stale catalog, run by the request itself for want of a runtime to run
    /// it in the background; the stale catalog serves if it fails.
    Refresh(Refresh<Inner>, Arc<Loaded>),
}

impl AsRef<CatalogCache> for Inner {
    fn as_ref(&self) -> &CatalogCache {
        &self.catalog
    }
}

impl Inner {
    /// The current time for the decision, in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> u64 {
        match &self.clock {
            Some(clock) => clock(),
            None => crate::time::now_ms(),
        }
    }

    /// What a fetch of the catalog needs.
    fn fetch(&self) -> Fetch<'_> {
        Fetch {
            store: &*self.store,
            timeout: self.store_timeout,
            routes: &self.routes,
        }
    }

    /// Whether some catalog could govern `request` (see [`Scope`]).
    pub(crate) fn could_be_governed<B>(&self, request: &Request<B>) -> bool {
        self.scope.covers(request.method(), request.uri().path())
    }

    /// Claims the refresh of the stale catalog at `now` and runs it in the background on the
    /// current Tokio runtime. Without a runtime the claim comes back, for the request to run it.
    pub(crate) fn refresh_in_background(self: &Arc<Self>, now: Instant) -> Option<Refresh<Inner>> {
        let refresh = CatalogCache::begin_refresh(self, now)?;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    refresh.run(refresh.owner().fetch()).await;
                });
                None
            }
            Err(_) => Some(refresh),
        }
    }

    /// Gets a catalog from `source` and resolves the request with it.
    pub(crate) async fn resolve(
        self: Arc<Self>,
        source: Source,
        method: Method,
        path: String,
    ) -> Outcome {
        let loaded = match source {
            Source::Load => match self.catalog.load(self.fetch()).await {
                Some(loaded) => loaded,
                None => return Outcome::Judged(self.store_unavailable(None), None),
            },
            Source::Refresh(refresh, stale) => refresh.run(self.fetch()).await.unwrap_or(stale),
        };
        let Some(index) = loaded.table.resolve_index(&method, &path) else {
            return Outcome::Judged(Judgement::Pass, None);
        };
        Outcome::Identify(Governed { loaded, index })
    }

    /// The check of the user of a request [`resolve`](Self::resolve) found governed (a `401`
    /// when there is no user). Only requests that no usable catalog resolved come here.
    pub(crate) fn identify<B>(
        self: &Arc<Self>,
        governed: Governed,
        request: &mut Request<B>,
    ) -> CheckFuture {
        let user = extract_user(self.extractor.as_deref(), request);
        let inner = Arc::clone(self);
        let route = governed.loaded.table.route(governed.index);
        let span = metrics::request_span(route.resource, &route.action.normalised());
        let check = async move {
            let Governed { loaded, index } = governed;
            let Some(user) = user else {
                let route = loaded.table.route(index);
                let action = route.action.normalised();
                metrics::decision(Decided::Unauthenticated, Some((route.resource, &action)));
                return Outcome::Judged(
                    Judgement::Reject(inner.reject(Rejection::Unauthenticated)),
                    None,
                );
            };
            tracing::debug!(user = %user, "governed request");
            inner.check_routed(&loaded, index, &user).await
        };
        Box::pin(check.instrument(span))
    }

    /// The decision from the user cache alone, when it holds the user's record.
    pub(crate) fn judge_cached(
        &self,
        loaded: &Loaded,
        index: RouteIndex,
        user: &UserId,
    ) -> Option<Judgement> {
        self.users.as_ref()?.with_cached(user, |record| {
            self.judge(loaded, index, record.subscriber(), user)
        })
    }

    /// The decision without a user cache when the store answers at once (an in-memory store,
    /// through [`PlanStore::with_user_now`], or [`PlanStore::user_now`] for a counted request);
    /// `None` when it has to be awaited.
    pub(crate) fn judge_now(
        &self,
        loaded: &Loaded,
        index: RouteIndex,
        user: &UserId,
    ) -> Option<Judgement> {
        if self.users.is_some() {
            return None;
        }
        if self.counting.is_none() {
            return self.judge_lent(loaded, index, user);
        }
        let stopwatch = Stopwatch::start();
        // `(*self.store)`: straight to the store through the trait object.
        let answer = (*self.store).user_now(user.as_str())?;
        stopwatch.stop_now(Call::USER, &answer);
        match answer {
            Ok(subscriber) => Some(self.judge(loaded, index, subscriber.as_deref(), user)),
            Err(error) => self.user_failed(loaded, index, user, &*error),
        }
    }

    /// [`judge_now`](Self::judge_now) on the record as the store lends it
    /// ([`PlanStore::with_user_now`]): a request that is not counted, whose decision calls
    /// nothing in a store while the record is lent (a usage store that is the plan store would
    /// wait for its own lock).
    fn judge_lent(&self, loaded: &Loaded, index: RouteIndex, user: &UserId) -> Option<Judgement> {
        let mut stopwatch = Some(Stopwatch::start());
        let mut judgement = None;
        // `(*self.store)`: straight to the store through the trait object.
        let answer = (*self.store).with_user_now(user.as_str(), &mut |subscriber| {
            if let Some(stopwatch) = stopwatch.take() {
                stopwatch.stop_now::<(), ()>(Call::USER, &Ok(()));
            }
            judgement = Some(self.judge(loaded, index, subscriber, user));
        })?;
        match answer {
            // A store that answered without lending the record is asked again, and waited for.
            Ok(()) => judgement,
            Err(error) => {
                if let Some(stopwatch) = stopwatch {
                    stopwatch.stop_now::<(), ()>(Call::USER, &Err(()));
                }
                self.user_failed(loaded, index, user, &*error)
            }
        }
    }

    /// The answer to a request whose user the store failed to return.
    #[cold]
    fn user_failed(
        &self,
        loaded: &Loaded,
        index: RouteIndex,
        user: &UserId,
        error: &(dyn std::error::Error + Send + Sync),
    ) -> Option<Judgement> {
        tracing::debug!(user = %user, "plan store failed to return the user");
        tracing::warn!(%error, "plan store failed to return a user");
        let route = loaded.table.route(index);
        let action = route.action.normalised();
        Some(self.store_unavailable(Some((route.resource, &action))))
    }

    /// The catalog as a governed request would find it: the cached one while it is usable
    /// (a stale one starts its refresh), else a load; `None` when the store failed and no
    /// catalog may serve.
    pub(crate) async fn catalog(self: &Arc<Self>) -> Option<Arc<Loaded>> {
        let now = Instant::now();
        let usable = match self.catalog.view(&self.catalog.read(), now) {
            View::Usable { loaded, stale } => Some((Arc::clone(loaded), stale)),
            View::Load => None,
        };
        match usable {
            Some((loaded, false)) => Some(loaded),
            Some((stale, true)) => match self.refresh_in_background(now) {
                Some(refresh) => Some(refresh.run(self.fetch()).await.unwrap_or(stale)),
                None => Some(stale),
            },
            None => self.catalog.load(self.fetch()).await,
        }
    }

    /// Fetches the user's record (through the user cache when there is one) and decides.
    pub(crate) async fn check_user(
        &self,
        loaded: &Loaded,
        index: RouteIndex,
        user: &UserId,
    ) -> Judgement {
        let Some(record) = self.record(user).await else {
            let route = loaded.table.route(index);
            let action = route.action.normalised();
            return self.store_unavailable(Some((route.resource, &action)));
        };
        self.judge(loaded, index, record.subscriber(), user)
    }

    /// [`check_user`](Self::check_user) as the outcome of a check: an allowed request's grant
    /// is completed with the route into its [`Allowed`] extension.
    pub(crate) async fn check_routed(
        &self,
        loaded: &Loaded,
        index: RouteIndex,
        user: &UserId,
    ) -> Outcome {
        let judgement = self.check_user(loaded, index, user).await;
        Outcome::judged(judgement, || {
            let route = loaded.table.route(index);
            // This thread's copy of the resource's name (see `crate::local`).
            let resource = crate::local::name(route.resource);
            (resource, route.action.normalised().into_owned())
        })
    }

    /// The user's record, through the user cache when there is one; `None` when the store
    /// failed (the failure is logged).
    pub(crate) async fn record(&self, user: &UserId) -> Option<Record> {
        match &self.users {
            Some(users) => users.get(&*self.store, self.store_timeout, user).await.ok(),
            // `(*self.store)`: the call goes straight to the store through the trait object.
            // `self.store.user` would pick `impl PlanStore for Box<T>`, whose future boxes the
            // store's own: one more allocation per request.
            None => match timed(
                Call::USER,
                self.store_timeout,
                (*self.store).user(user.as_str()),
            )
            .await
            {
                Ok(subscriber) => Some(Record::from(subscriber)),
                Err(error) => {
                    tracing::debug!(user = %user, "plan store failed to return the user");
                    tracing::warn!(%error, "plan store failed to return a user");
                    None
                }
            },
        }
    }

    /// Reserves the unit of a counted request, waiting for the usage store.
    pub(crate) fn reserving(self: &Arc<Self>, pending: Box<Pending>) -> CheckFuture {
        let state = Arc::clone(self);
        let span = pending.span.clone();
        let check = async move {
            let answer = pending.counting.reserve(&pending.tally).await;
            let Pending {
                counting,
                tally,
                user,
                plan,
                state: plan_state,
                resource,
                action,
                limit,
                window,
                span: _,
            } = *pending;
            let counted = Counted {
                user: &user,
                plan: &plan,
                state: plan_state.borrowed(),
                resource: &resource,
                action: &action,
                limit,
                window,
            };
            let judgement = state.conclude(counted, counting, tally, answer);
            // The pending request's names are this thread's copies already.
            Outcome::judged(judgement, || (resource, action))
        };
        Box::pin(check.instrument(span))
    }

    /// Decides a counted request with the usage store's answer to `tally`. `counting` is this
    /// thread's copy of the configuration (see [`Counting::local`]), which a held reservation
    /// keeps.
    #[inline]
    fn conclude(
        &self,
        counted: Counted<'_>,
        counting: Arc<Counting>,
        tally: Tally,
        answer: Result<Answer, StoreError>,
    ) -> Judgement {
        let Counted {
            user,
            plan,
            state,
            resource,
            action,
            limit,
            window,
        } = counted;
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                tracing::debug!(user = %user, "usage store failed to reserve for the user");
                tracing::warn!(resource = %resource, %error, "usage store failed to reserve");
                return self.store_unavailable(Some((resource, action)));
            }
        };
        match counting.conclude(tally, answer) {
            Reserved::Held { reservation, usage } => {
                tracing::debug!(
                    user = %user,
                    plan = %plan,
                    resource = %resource,
                    action = %action,
                    usage,
                    "plan allows the request; one unit reserved"
                );
                metrics::decision(Decided::Allow, Some((resource, action)));
                let headers = self.rate_limit_fields(resource, action, limit, usage, window);
                // This thread's copy of the plan's name (see `crate::local`).
                let grant = self.allowed_extension.then(|| Grant {
                    plan: crate::local::name(plan),
                    state: state.into_plan_state(),
                    limit,
                    usage,
                    window,
                });
                Judgement::Allow(grant, Some(reservation), headers)
            }
            Reserved::Refused { usage } => {
                let denial = Denial::LimitReached {
                    plan: crate::local::name(plan),
                    resource: crate::local::name(resource),
                    action: action.clone(),
                    // A refusal means a finite limit.
                    maximum: limit.maximum().unwrap_or(u64::MAX),
                    usage,
                    window,
                };
                tracing::debug!(user = %user, "plan denies the user's request");
                tracing::info!(?denial, "plan denies the request (counted usage)");
                metrics::decision(Decided::Deny(&denial), Some((resource, action)));
                Judgement::Reject(self.reject(Rejection::Denied(denial)))
            }
        }
    }

    /// Decides on the route `index` of `loaded`, and logs the decision. With counting on, a
    /// counted request whose plan applies is not decided here: it waits for its reservation.
    fn judge(
        &self,
        loaded: &Loaded,
        index: RouteIndex,
        subscriber: Option<&Subscriber>,
        user: &UserId,
    ) -> Judgement {
        let route = loaded.table.route(index);
        let (resource, normalised) = (route.resource, route.action.normalised());
        let action = &*normalised;
        let usage = subscriber.map(|s| &s.usage);
        let terms = terms(
            &loaded.catalog,
            subscriber,
            || self.now_ms(),
            &self.policy,
            resource,
            action,
        );
        let verdict = match terms {
            Ok(terms) => {
                metrics::plan(terms.plan);
                if let Some(counting) = &self.counting {
                    if let Some(tally) = Tally::of(&terms, usage, user.as_arc(), resource, action) {
                        // A usage store that answers at once (in memory) is asked here, in the
                        // request's span, and the decision borrows what it names; only a
                        // request that waits for its store owns (and boxes) it.
                        let Some(answer) = counting.reserve_now(&tally) else {
                            return Judgement::Count(Box::new(Pending {
                                // This thread's copy (see `Counting::local`).
                                counting: counting.local(),
                                tally,
                                user: user.clone(),
                                // This thread's copies (see `crate::local`).
                                plan: crate::local::name(terms.plan),
                                state: terms.state.into_plan_state(),
                                resource: crate::local::name(resource),
                                action: action.clone(),
                                limit: terms.limit,
                                window: terms.window,
                                span: metrics::current_span(),
                            }));
                        };
                        let counted = Counted {
                            user,
                            plan: terms.plan,
                            state: terms.state,
                            resource,
                            action,
                            limit: terms.limit,
                            window: terms.window,
                        };
                        return self.conclude(counted, counting.local(), tally, answer);
                    }
                }
                check(terms, usage, resource, action)
            }
            Err(inactive) => inactive,
        };
        let denial = match verdict.into_denial(resource, action) {
            Ok(denial) => denial,
            Err(granted) => {
                let Granted {
                    plan,
                    state,
                    limit,
                    usage,
                    window,
                } = granted;
                tracing::debug!(
                    user = %user,
                    plan = %plan,
                    resource = %resource,
                    action = %action,
                    usage,
                    "plan allows the request"
                );
                metrics::decision(Decided::Allow, Some((resource, action)));
                let headers = self.rate_limit_fields(resource, action, limit, usage, window);
                // This thread's copy of the plan's name (see `crate::local`): every allowed
                // request clones it.
                let grant = self.allowed_extension.then(|| Grant {
                    plan: crate::local::name(plan),
                    state: state.into_plan_state(),
                    limit,
                    usage,
                    window,
                });
                return Judgement::Allow(grant, None, headers);
            }
        };
        metrics::decision(Decided::Deny(&denial), Some((resource, action)));
        tracing::debug!(user = %user, "plan denies the user's request");
        tracing::info!(
            resource = %resource,
            action = %action,
            ?denial,
            "plan denies the request"
        );
        Judgement::Reject(self.reject(Rejection::Denied(denial)))
    }

    /// The judgement when a store failed (the failure itself is logged where it happened).
    fn store_unavailable(&self, route: Option<(&Arc<str>, &Action)>) -> Judgement {
        if self.fail_open {
            metrics::decision(Decided::PassOpen, route);
            tracing::warn!("plan store unavailable; failing open, the request passes unchecked");
            Judgement::Pass
        } else {
            metrics::decision(Decided::StoreUnavailable, route);
            tracing::debug!("plan store unavailable; failing closed");
            Judgement::Reject(self.reject(Rejection::StoreUnavailable))
        }
    }

    /// The `RateLimit` fields of an allowed request, when they are on and the limit is
    /// finite: `usage` is the count before the request, which takes one more. Inlined: with
    /// the fields off, as by default, it is one test.
    #[inline]
    fn rate_limit_fields(
        &self,
        resource: &str,
        action: &Action,
        limit: Limit,
        usage: u64,
        window: Option<Window>,
    ) -> Option<Box<RateLimitFields>> {
        if !self.rate_limit_headers {
            return None;
        }
        let max = limit.maximum()?;
        let remaining = max.saturating_sub(usage).saturating_sub(1);
        let fields = RateLimitFields::new(resource, action, max, remaining, window, self.now_ms());
        fields.map(Box::new)
    }

    /// [`rendered`](Self::rendered), boxed, as a judgement and the response future carry it.
    pub(crate) fn reject(&self, rejection: Rejection) -> Box<Response<Full<Bytes>>> {
        Box::new(self.rendered(rejection))
    }

    /// Renders `rejection` and attaches it (and a denial's [`Denial`](crate::Denial)) to the
    /// response extensions. A quota's denial carries `Retry-After`; with the `RateLimit` fields
    /// on, a denial by a limit carries them too.
    pub(crate) fn rendered(&self, rejection: Rejection) -> Response<Full<Bytes>> {
        let mut response = self.renderer.render(&rejection);
        if let Rejection::Denied(denial) = &rejection {
            if let Denial::LimitReached {
                resource,
                action,
                maximum,
                usage,
                window,
                ..
            } = denial
            {
                let headers = response.headers_mut();
                if window.is_some() || self.rate_limit_headers {
                    let now = self.now_ms();
                    if let Some(window) = window {
                        retry_after(headers, *window, now);
                    }
                    if self.rate_limit_headers {
                        let remaining = maximum.saturating_sub(*usage);
                        let fields = RateLimitFields::new(
                            resource, action, *maximum, remaining, *window, now,
                        );
                        if let Some(fields) = fields {
                            fields.append_to(headers);
                        }
                    }
                }
            }
            response.extensions_mut().insert(denial.clone());
        }
        response.extensions_mut().insert(rejection);
        response
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
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
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_judgement_moves_without_a_memcpy() {
        // Every request decided at once returns one through two or three calls; above 128
        // bytes, each of those moves calls `memcpy`.
        assert!(
            std::mem::size_of::<Judgement>() <= 128,
            "a judgement is {} bytes",
            std::mem::size_of::<Judgement>()
        );
        assert!(std::mem::size_of::<Option<Judgement>>() <= 128);
    }
}

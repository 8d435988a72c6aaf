//! From a catalog and a record to a [`Checked`]: the decision, counted usage, and the one place
//! that builds what an allowed request carries.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

use super::{Checked, Shared};
use crate::cache::{Loaded, Route};
use crate::catalog::Action;
use crate::count::{Answer, Counting, Meter, Outcome, Reservation, Tally};
use crate::decision::{terms, Denial, Terms};
use crate::headers::{retry_after, RateLimitFields};
use crate::metrics::{self, Decided, RouteKeys};
use crate::response::Rejection;
use crate::routes::RouteIndex;
use crate::subscriber::Subscriber;
use crate::timeout::StoreError;
use crate::user::UserId;

/// The prefix of a credit pool's `RateLimit` policy name: `credits.ai`.
const CREDITS: &str = "credits";

/// What an allowed request found used before it: of its action's count and of its pool.
#[derive(Clone, Copy)]
struct Usages {
    action: u64,
    pool: u64,
}

/// What the record decides, before any reservation. Lives for one call: its size is no
/// concern.
#[allow(clippy::large_enum_variant)]
enum Step<'a> {
    /// The answer, from the record alone.
    Decided(Checked),
    /// A counted request whose plan applies: its reservation decides.
    Count {
        terms: Terms<'a>,
        tally: Tally,
        counting: &'a Arc<Counting>,
    },
}

impl Shared {
    /// Decides the request on route `index` of `loaded` for `user` with the `subscriber`
    /// record, when the usage store answers at once; `None` when a counted request has to wait
    /// for its reservation (see [`judge`](Self::judge)).
    pub(super) fn judge_now<B>(
        &self,
        loaded: &Loaded,
        index: RouteIndex,
        subscriber: Option<&Subscriber>,
        user: &UserId,
        request: &mut Request<B>,
    ) -> Option<Checked> {
        let route = loaded.route(index);
        match self.step(loaded, route, subscriber, user, request) {
            Step::Decided(checked) => Some(checked),
            Step::Count {
                terms,
                tally,
                counting,
            } => {
                let answer = counting.reserve_now(&tally)?;
                Some(self.counted(&terms, route, tally, counting, answer, user, request))
            }
        }
    }

    /// [`judge_now`](Self::judge_now), waiting for the usage store.
    pub(super) async fn judge<B>(
        &self,
        loaded: &Loaded,
        index: RouteIndex,
        subscriber: Option<&Subscriber>,
        user: &UserId,
        request: &mut Request<B>,
    ) -> Checked {
        let route = loaded.route(index);
        match self.step(loaded, route, subscriber, user, request) {
            Step::Decided(checked) => checked,
            Step::Count {
                terms,
                tally,
                counting,
            } => {
                let answer = counting.reserve(&tally).await;
                self.counted(&terms, route, tally, counting, answer, user, request)
            }
        }
    }

    /// The decision on the record (rules of [`decide`](crate::decision::decide)): the answer,
    /// or the reservation a counted request must make first.
    fn step<'a, B>(
        &'a self,
        loaded: &'a Loaded,
        route: Route<'a>,
        subscriber: Option<&'a Subscriber>,
        user: &UserId,
        request: &mut Request<B>,
    ) -> Step<'a> {
        let resource = route.resource;
        let action = &*route.action.normalised();
        let usage = subscriber.map(|subscriber| &subscriber.usage);
        let terms = terms(
            &loaded.catalog,
            subscriber,
            || self.now_ms(),
            &self.policy,
            resource,
            action,
        );
        let terms = match terms {
            Ok(terms) => terms,
            Err(refusal) => {
                let denial = refusal.denial(resource, action);
                return Step::Decided(self.deny(denial, route, user));
            }
        };
        metrics::plan(terms.plan);
        // The clock, for the grants of a pool.
        let now = if terms.pool.is_some() {
            self.now_ms()
        } else {
            0
        };
        if let Some(counting) = &self.counting {
            if let Some(tally) = Tally::of(&terms, subscriber, now, user.as_arc(), resource, action)
            {
                return Step::Count {
                    terms,
                    tally,
                    counting,
                };
            }
        }
        let used = terms.usage(usage, resource, action);
        if terms.limit_is_reached(used) {
            let denial = terms.limit_reached(resource, action, used);
            return Step::Decided(self.deny(denial, route, user));
        }
        if let Some(denial) = terms.uncounted_credits_denial(subscriber, now) {
            return Step::Decided(self.deny(denial, route, user));
        }
        let allowed = Usages {
            action: used,
            pool: 0,
        };
        Step::Decided(self.allow(&terms, route, allowed, None, None, user, request))
    }

    /// The answer to a counted request from the usage store's `answer` to its `tally`.
    #[allow(clippy::too_many_arguments)]
    fn counted<B>(
        &self,
        terms: &Terms<'_>,
        route: Route<'_>,
        tally: Tally,
        counting: &Arc<Counting>,
        answer: Result<Answer, StoreError>,
        user: &UserId,
        request: &mut Request<B>,
    ) -> Checked {
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                tracing::debug!(user = %user, "usage store failed to reserve for the user");
                tracing::warn!(resource = %route.resource, %error, "usage store failed to reserve");
                return self.store_unavailable(route.keys);
            }
        };
        match counting.conclude(tally, answer) {
            Outcome::Reserved {
                reservation,
                usage,
                pool_usage,
                meter,
            } => {
                let usages = Usages {
                    action: usage,
                    pool: pool_usage,
                };
                self.allow(
                    terms,
                    route,
                    usages,
                    Some(reservation),
                    meter,
                    user,
                    request,
                )
            }
            Outcome::Refused { pool, usage } => {
                let action = route.action.normalised();
                let denial = match terms.credits_exhausted(usage) {
                    Some(denial) if pool => denial,
                    _ => terms.limit_reached(route.resource, &action, usage),
                };
                self.deny(denial, route, user)
            }
        }
    }

    /// An allowed request: the one place that builds the [`Allowed`](crate::Allowed) extension
    /// (when it is on), puts the [`Meter`] of a reported request in the extensions, and makes
    /// the `RateLimit` fields of its response.
    #[allow(clippy::too_many_arguments)]
    fn allow<B>(
        &self,
        terms: &Terms<'_>,
        route: Route<'_>,
        usages: Usages,
        reservation: Option<Reservation>,
        meter: Option<Meter>,
        user: &UserId,
        request: &mut Request<B>,
    ) -> Checked {
        let action = route.action.normalised();
        tracing::debug!(
            user = %user,
            plan = %terms.plan,
            resource = %route.resource,
            action = %action,
            usage = usages.action,
            counted = reservation.is_some(),
            "plan allows the request"
        );
        metrics::decision(Decided::Allow, route.keys);
        let headers = self.rate_limit_fields(route.resource, &action, terms, usages);
        if let Some(meter) = meter {
            request.extensions_mut().insert(meter);
        }
        if self.allowed_extension {
            let allowed = terms.allowed(
                Arc::clone(route.resource),
                action.into_owned(),
                usages.action,
                usages.pool,
            );
            request.extensions_mut().insert(allowed);
        }
        Checked::Allow(reservation, headers)
    }

    /// A denied request.
    fn deny(&self, denial: Denial, route: Route<'_>, user: &UserId) -> Checked {
        metrics::decision(Decided::Deny(&denial), route.keys);
        tracing::debug!(user = %user, "plan denies the user's request");
        tracing::info!(?denial, "plan denies the request");
        Checked::Reject(self.reject(Rejection::Denied(denial)))
    }

    /// The answer when a store failed (the failure itself is logged where it happened), on the
    /// route whose decisions are counted under `route` ([`RouteKeys::unknown`] when the
    /// catalog could not be loaded).
    pub(super) fn store_unavailable(&self, route: &RouteKeys) -> Checked {
        if self.fail_open {
            metrics::decision(Decided::PassOpen, route);
            tracing::warn!("plan store unavailable; failing open, the request passes unchecked");
            Checked::Pass
        } else {
            metrics::decision(Decided::StoreUnavailable, route);
            tracing::debug!("plan store unavailable; failing closed");
            Checked::Reject(self.reject(Rejection::StoreUnavailable))
        }
    }

    /// The `RateLimit` fields of an allowed request, when they are on: one policy for a finite
    /// limit of the action, one for the credit pool it draws from (named `credits.<pool>`),
    /// each with what remains after the request.
    fn rate_limit_fields(
        &self,
        resource: &str,
        action: &Action,
        terms: &Terms<'_>,
        usages: Usages,
    ) -> Option<Box<RateLimitFields>> {
        if !self.rate_limit_headers {
            return None;
        }
        let now = self.now_ms();
        let own = terms.limit.maximum().and_then(|max| {
            let remaining = max
                .saturating_sub(usages.action)
                .saturating_sub(terms.action_units());
            RateLimitFields::new(resource, action.as_str(), max, remaining, terms.window, now)
        });
        let pool = terms.pool.and_then(|pool| {
            let max = pool.limit.maximum()?;
            let remaining = max.saturating_sub(usages.pool).saturating_sub(terms.units);
            RateLimitFields::new(CREDITS, pool.name, max, remaining, pool.window, now)
        });
        match (own, pool) {
            (Some(mut own), Some(pool)) => {
                own.push(pool);
                Some(Box::new(own))
            }
            (own, pool) => own.or(pool).map(Box::new),
        }
    }

    /// [`rendered`](Self::rendered), boxed, as the response future carries it.
    pub(crate) fn reject(&self, rejection: Rejection) -> Box<Response<Full<Bytes>>> {
        Box::new(self.rendered(rejection))
    }

    /// Renders `rejection` and attaches it (and a denial's [`Denial`]) to the response
    /// extensions. A quota's denial carries `Retry-After`; with the `RateLimit` fields on, a
    /// denial by a limit carries them too.
    pub(crate) fn rendered(&self, rejection: Rejection) -> Response<Full<Bytes>> {
        let mut response = self.renderer.render(&rejection);
        if let Rejection::Denied(denial) = &rejection {
            let named = match denial {
                Denial::LimitReached {
                    resource,
                    action,
                    maximum,
                    usage,
                    window,
                    ..
                } => Some(((&**resource, action.as_str()), *maximum, *usage, *window)),
                Denial::Credits {
                    pool,
                    maximum,
                    usage,
                    window,
                    ..
                } => Some(((CREDITS, &**pool), *maximum, *usage, *window)),
                Denial::Expired { .. } | Denial::NoPlan { .. } => None,
            };
            if let Some(((prefix, name), maximum, usage, window)) = named {
                let headers = response.headers_mut();
                if window.is_some() || self.rate_limit_headers {
                    let now = self.now_ms();
                    if let Some(window) = window {
                        retry_after(headers, window, now);
                    }
                    if self.rate_limit_headers {
                        let remaining = maximum.saturating_sub(usage);
                        let fields =
                            RateLimitFields::new(prefix, name, maximum, remaining, window, now);
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

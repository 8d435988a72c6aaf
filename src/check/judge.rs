//! From a catalog and a record to a [`Checked`]: the decision, counted usage, and the one place
//! that builds what an allowed request carries.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

use super::{Checked, Shared};
use crate::cache::{Loaded, Route};
use crate::catalog::Action;
use crate::count::{Answer, Counting, Held, Reservation, Tally};
use crate::decision::{terms, Denial, Terms};
use crate::headers::{retry_after, RateLimitFields};
use crate::metrics::{self, Decided, RouteKeys};
use crate::response::Rejection;
use crate::routes::RouteIndex;
use crate::subscriber::Subscriber;
use crate::timeout::StoreError;
use crate::user::UserId;

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
        if let Some(counting) = &self.counting {
            if let Some(tally) = Tally::of(&terms, usage, user.as_arc(), resource, action) {
                return Step::Count {
                    terms,
                    tally,
                    counting,
                };
            }
        }
        let used = terms.usage(usage, resource, action);
        let checked = match terms.limit.maximum() {
            Some(maximum) if used >= maximum => {
                self.deny(terms.limit_reached(resource, action, used), route, user)
            }
            _ => self.allow(&terms, route, used, None, user, request),
        };
        Step::Decided(checked)
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
        match counting.hold(tally, answer) {
            Held::Reserved { reservation, usage } => {
                self.allow(terms, route, usage, Some(reservation), user, request)
            }
            Held::Refused { usage } => {
                let action = route.action.normalised();
                self.deny(
                    terms.limit_reached(route.resource, &action, usage),
                    route,
                    user,
                )
            }
        }
    }

    /// An allowed request: the one place that builds the [`Allowed`](crate::Allowed) extension
    /// (when it is on) and the `RateLimit` fields of its response. `usage` is the count before
    /// the request.
    fn allow<B>(
        &self,
        terms: &Terms<'_>,
        route: Route<'_>,
        usage: u64,
        reservation: Option<Reservation>,
        user: &UserId,
        request: &mut Request<B>,
    ) -> Checked {
        let action = route.action.normalised();
        tracing::debug!(
            user = %user,
            plan = %terms.plan,
            resource = %route.resource,
            action = %action,
            usage,
            counted = reservation.is_some(),
            "plan allows the request"
        );
        metrics::decision(Decided::Allow, route.keys);
        let headers = self.rate_limit_fields(route.resource, &action, terms, usage);
        if self.allowed_extension {
            let allowed = terms.allowed(Arc::clone(route.resource), action.into_owned(), usage);
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

    /// The `RateLimit` fields of an allowed request, when they are on and the limit is
    /// finite: `usage` is the count before the request, which takes one more.
    fn rate_limit_fields(
        &self,
        resource: &str,
        action: &Action,
        terms: &Terms<'_>,
        usage: u64,
    ) -> Option<Box<RateLimitFields>> {
        if !self.rate_limit_headers {
            return None;
        }
        let max = terms.limit.maximum()?;
        let remaining = max.saturating_sub(usage).saturating_sub(1);
        let fields = RateLimitFields::new(
            resource,
            action,
            max,
            remaining,
            terms.window,
            self.now_ms(),
        );
        fields.map(Box::new)
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

//! From a catalog and a record to a [`Checked`]: the decision, counted usage, and the one place
//! that builds what an allowed request carries.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

use super::rates::{self, Took};
use super::{Checked, Shared};
use smallvec::SmallVec;

use crate::alerts::{Subject, Watch, Watched};
use crate::cache::{Loaded, Route};
use crate::catalog::Action;
use crate::count::{
    overage_counter as overage_counter_of, Answer, Counting, Meter, Outcome, Reservation, Tally,
};
use crate::decision::{terms, Denial, PoolUsage, Terms};
use crate::headers::{retry_after, retry_after_seconds, ResponseFields};
use crate::metrics::{self, Decided, RouteKeys};
use crate::response::Rejection;
use crate::routes::RouteIndex;
use crate::store::Held;
use crate::subscriber::Subscriber;
use crate::timeout::StoreError;
use crate::user::UserId;

/// The prefix of a credit pool's `RateLimit` policy name: `credits.ai`.
const CREDITS: &str = "credits";

/// What an allowed request found used before it: of its action's count and of its pool.
#[derive(Clone, Copy)]
struct Usages {
    action: u64,
    pool: PoolUsage,
}

/// What usage alerts watch of a reservation: its action's line under a finite limit and its
/// pool's line under a finite allowance, with their counts before.
fn watch(
    terms: &Terms<'_>,
    route: Route<'_>,
    (action_line, pool_line): (Option<usize>, Option<usize>),
    usage: u64,
    pool_usage: u64,
    user: &UserId,
) -> Watch {
    let mut lines = SmallVec::new();
    if let (Some(line), Some(max)) = (action_line, terms.limit.maximum()) {
        lines.push(Watched {
            line,
            max,
            subject: Subject::Action {
                resource: Arc::clone(route.resource),
                action: route.action.normalised().into_owned(),
            },
            before: usage,
        });
    }
    if let (Some(line), Some(pool)) = (pool_line, terms.pool) {
        if let Some(max) = pool.limit.maximum() {
            lines.push(Watched {
                line,
                max,
                subject: Subject::Pool(Arc::clone(pool.name)),
                before: pool_usage,
            });
        }
    }
    Watch {
        user: user.clone(),
        plan: Arc::clone(terms.plan),
        lines,
    }
}

/// The counter of the pool's overage that `answer` to `tally` makes worth reading: when the
/// request drew from a soft pool past its allowance.
fn overage_counter(
    terms: &Terms<'_>,
    tally: &Tally,
    answer: &Result<Answer, StoreError>,
    user: &UserId,
) -> Option<crate::store::Counter> {
    let pool = terms.pool?;
    let max = pool.limit.maximum()?;
    if !pool.overage.is_soft() {
        return None;
    }
    let Ok(Some(Held::Reserved(counts))) = answer else {
        return None;
    };
    let before = counts.get(tally.pool_line?)?.total();
    if before.saturating_add(terms.units) <= max {
        return None;
    }
    let mut counter = overage_counter_of(user.as_arc(), pool.name);
    counter.period = pool.window;
    Some(counter)
}

/// What the record decides, before any rate or reservation. Lives for one call: its size is
/// no concern.
#[allow(clippy::large_enum_variant)]
enum Step<'a> {
    /// The answer, from the record alone: a denial, or an uncounted request under no rate,
    /// allowed.
    Decided(Checked),
    /// Allowed by the record, at this usage; its rates decide.
    Allow { terms: Terms<'a>, used: u64 },
    /// A counted request whose plan applies: its rates and its reservation decide.
    Count {
        terms: Terms<'a>,
        tally: Tally,
        counting: &'a Arc<Counting>,
    },
}

impl Step<'_> {
    fn terms(&self) -> Option<&Terms<'_>> {
        match self {
            Step::Decided(_) => None,
            Step::Allow { terms, .. } | Step::Count { terms, .. } => Some(terms),
        }
    }
}

impl Shared {
    /// Decides the request on route `index` of `loaded` for `user` with the `subscriber`
    /// record, when the rate and usage stores answer at once; `None` when a rate or a counted
    /// request has to wait for its store (see [`judge`](Self::judge)), with nothing taken.
    pub(super) fn judge_now<B>(
        &self,
        loaded: &Loaded,
        index: RouteIndex,
        subscriber: Option<&Subscriber>,
        user: &UserId,
        request: &mut Request<B>,
    ) -> Option<Checked> {
        let route = loaded.route(index);
        let step = self.step(loaded, route, subscriber, user, request);
        let Some(terms) = step.terms() else {
            let Step::Decided(checked) = step else {
                return None;
            };
            return Some(checked);
        };
        let takings = rates::takings(terms, route, user);
        let taken = match self.take_rates_now(&takings)? {
            Took::All(taken) => taken,
            refused => return Some(self.rate_refused(terms, route, &takings, refused, user)),
        };
        let rate_fields = rates::rate_fields(route, &takings, &taken);
        let checked = match step {
            Step::Decided(checked) => checked,
            Step::Allow { terms, used } => {
                self.allow_uncounted(&terms, route, used, rate_fields, user, request)
            }
            Step::Count {
                terms,
                tally,
                counting,
            } => {
                let Some(answer) = counting.reserve_now(&tally) else {
                    self.refund_now(&takings);
                    return None;
                };
                let over = overage_counter(&terms, &tally, &answer, user).map_or(0, |counter| {
                    match counting.count_now(&counter) {
                        Some(Ok(count)) => count.map_or(0, |count| count.total()),
                        // Not at once, or failed: the reservation stands, the flag is left out.
                        _ => {
                            tracing::debug!(%counter, "the pool's overage could not be read at once");
                            0
                        }
                    }
                });
                let checked = self.counted(
                    &terms,
                    route,
                    tally,
                    counting,
                    answer,
                    over,
                    rate_fields,
                    user,
                    request,
                );
                if let Checked::Reject(_) = checked {
                    self.refund_now(&takings);
                }
                checked
            }
        };
        Some(checked)
    }

    /// [`judge_now`](Self::judge_now), waiting for the rate and usage stores.
    pub(super) async fn judge<B>(
        &self,
        loaded: &Loaded,
        index: RouteIndex,
        subscriber: Option<&Subscriber>,
        user: &UserId,
        request: &mut Request<B>,
    ) -> Checked {
        let route = loaded.route(index);
        let step = self.step(loaded, route, subscriber, user, request);
        let Some(terms) = step.terms() else {
            let Step::Decided(checked) = step else {
                return Checked::Pass;
            };
            return checked;
        };
        let takings = rates::takings(terms, route, user);
        let taken = match self.take_rates(&takings).await {
            Took::All(taken) => taken,
            refused => return self.rate_refused(terms, route, &takings, refused, user),
        };
        let rate_fields = rates::rate_fields(route, &takings, &taken);
        match step {
            Step::Decided(checked) => checked,
            Step::Allow { terms, used } => {
                self.allow_uncounted(&terms, route, used, rate_fields, user, request)
            }
            Step::Count {
                terms,
                tally,
                counting,
            } => {
                let answer = counting.reserve(&tally).await;
                let over = match overage_counter(&terms, &tally, &answer, user) {
                    Some(counter) => match counting.count(&counter).await {
                        Ok(count) => count.map_or(0, |count| count.total()),
                        Err(error) => {
                            tracing::warn!(%error, "usage store failed to read a pool's overage");
                            0
                        }
                    },
                    None => 0,
                };
                let checked = self.counted(
                    &terms,
                    route,
                    tally,
                    counting,
                    answer,
                    over,
                    rate_fields,
                    user,
                    request,
                );
                if let Checked::Reject(_) = checked {
                    self.refund(&takings).await;
                }
                checked
            }
        }
    }

    /// An allowed request that counts nothing, its action's usage `used`.
    fn allow_uncounted<B>(
        &self,
        terms: &Terms<'_>,
        route: Route<'_>,
        used: u64,
        rate_fields: Option<ResponseFields>,
        user: &UserId,
        request: &mut Request<B>,
    ) -> Checked {
        let usages = Usages {
            action: used,
            pool: PoolUsage::default(),
        };
        self.allow(terms, route, usages, None, None, rate_fields, user, request)
    }

    /// The answer when the request's rates did not all let it through: a `429`, or the store
    /// failure's answer.
    fn rate_refused(
        &self,
        terms: &Terms<'_>,
        route: Route<'_>,
        takings: &rates::Takings,
        took: Took,
        user: &UserId,
    ) -> Checked {
        match took {
            Took::Limited {
                index,
                retry_after_ms,
            } => match takings.get(index) {
                Some(taking) => {
                    let denial = rates::rate_denial(terms, route, taking, retry_after_ms);
                    self.deny(denial, route, user)
                }
                None => self.store_unavailable(route.keys),
            },
            Took::Failed(error) => {
                tracing::warn!(resource = %route.resource, %error, "rate store failed");
                self.store_unavailable(route.keys)
            }
            Took::All(_) => self.store_unavailable(route.keys),
        }
    }

    /// The decision on the record (rules of [`decide`](crate::decision::decide)): a denial, an
    /// uncounted request under no rate allowed, or what decides next (the rates, and the
    /// reservation of a counted request).
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
        if terms.rate.is_none() && terms.plan_rate.is_none() {
            // Nothing more to take: allowed now, without going through the rates.
            let checked = self.allow_uncounted(&terms, route, used, None, user, request);
            return Step::Decided(checked);
        }
        Step::Allow { terms, used }
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
        pool_overage: u64,
        rate_fields: Option<ResponseFields>,
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
        let lines = (tally.action_line, tally.pool_line);
        match counting.conclude(tally, answer) {
            Outcome::Reserved {
                mut reservation,
                usage,
                pool_usage,
                meter,
            } => {
                if counting.alerts.is_some() {
                    reservation.watch(watch(terms, route, lines, usage, pool_usage, user));
                }
                let usages = Usages {
                    action: usage,
                    pool: PoolUsage {
                        usage: pool_usage,
                        overage: pool_overage,
                    },
                };
                self.allow(
                    terms,
                    route,
                    usages,
                    Some(reservation),
                    meter,
                    rate_fields,
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
        rate_fields: Option<ResponseFields>,
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
        let headers = self.response_fields(route.resource, &action, terms, usages, rate_fields);
        if let Some(meter) = meter {
            request.extensions_mut().insert(meter);
        }
        if self.allowed_extension {
            let allowed = terms.allowed(
                route.resource,
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

    /// The header fields of an allowed request: `Plan-Overage` past a soft limit, and when the
    /// `RateLimit` fields are on, one policy for a finite limit of the action and one for the
    /// credit pool it draws from (named `credits.<pool>`), each with what remains after the
    /// request.
    fn response_fields(
        &self,
        resource: &str,
        action: &Action,
        terms: &Terms<'_>,
        usages: Usages,
        rate_fields: Option<ResponseFields>,
    ) -> Option<Box<ResponseFields>> {
        let overage = terms.overage_after(usages.action);
        let own_overage = (overage > 0)
            .then(|| ResponseFields::overage(resource, action.as_str(), overage))
            .flatten();
        let pool_overage = terms
            .pool
            .filter(|_| usages.pool.overage > 0)
            .and_then(|pool| ResponseFields::overage(CREDITS, pool.name, usages.pool.overage));
        let overages = ResponseFields::join(own_overage, pool_overage);
        if !self.rate_limit_headers {
            return overages.map(Box::new);
        }
        let overages = ResponseFields::join(rate_fields, overages);
        let now = self.now_ms();
        let own = terms.limit.maximum().and_then(|max| {
            let remaining = max
                .saturating_sub(usages.action)
                .saturating_sub(terms.action_units());
            ResponseFields::new(resource, action.as_str(), max, remaining, terms.window, now)
        });
        let pool = terms.pool.and_then(|pool| {
            let max = pool.limit.maximum()?;
            let remaining = max
                .saturating_sub(usages.pool.usage)
                .saturating_sub(terms.units);
            ResponseFields::new(CREDITS, pool.name, max, remaining, pool.window, now)
        });
        let fields = ResponseFields::join(ResponseFields::join(own, pool), overages);
        fields.map(Box::new)
    }

    /// [`rendered`](Self::rendered), boxed, as the response future carries it.
    pub(crate) fn reject(&self, rejection: Rejection) -> Box<Response<Full<Bytes>>> {
        Box::new(self.rendered(rejection))
    }

    /// Renders `rejection` and attaches it (and a denial's [`Denial`]) to the response
    /// extensions. A quota's (or a rate's) denial carries `Retry-After`; with the `RateLimit`
    /// fields on, a denial by a limit, a pool or a rate carries them too.
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
                Denial::RateLimited {
                    resource,
                    action,
                    plan_wide,
                    maximum,
                    per,
                    retry_after_ms,
                    ..
                } => {
                    let headers = response.headers_mut();
                    let seconds = retry_after_ms.div_ceil(1000);
                    retry_after_seconds(headers, seconds);
                    if self.rate_limit_headers {
                        let action = action.as_str();
                        let parts: &[&str] = if *plan_wide {
                            &["rate"]
                        } else {
                            &[resource, action, "rate"]
                        };
                        let per = per.duration().as_secs();
                        if let Some(fields) =
                            ResponseFields::rate(parts, *maximum, per, 0, seconds.max(1))
                        {
                            fields.append_to(headers);
                        }
                    }
                    None
                }
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
                            ResponseFields::new(prefix, name, maximum, remaining, window, now);
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

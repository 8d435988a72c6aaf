//! The rates a request takes ([`Taking`]): the plan's rate on its action and the plan-wide one,
//! taken before its reservation and given back when anything else refuses it.

use std::sync::Arc;

use smallvec::SmallVec;

use super::Shared;
use crate::cache::Route;
use crate::catalog::Rate;
use crate::decision::{Denial, Terms};
use crate::headers::ResponseFields;
use crate::metrics::{Call, Stopwatch};
use crate::rate::{Gcra, RateDecision, RateKey, RateScope};
use crate::timeout::{timed, StoreError};
use crate::user::UserId;

/// One rate a request takes.
pub(super) struct Taking {
    key: RateKey,
    gcra: Gcra,
    rate: Rate,
}

/// The rates of one request: at most the action's and the plan-wide one.
pub(super) type Takings = SmallVec<[Taking; 2]>;

/// What taking a request's rates found.
pub(super) enum Took {
    /// Every rate let it through: what remains of each and when it is whole again (ms).
    All(SmallVec<[(u64, u64); 2]>),
    /// The rate at this index refused it; the ones before were given back.
    Limited { index: usize, retry_after_ms: u64 },
    /// The rate store failed; the ones before were given back.
    Failed(StoreError),
}

/// The rates `terms` set on the request of `route` by `user`: its action's, then the
/// plan-wide one. Empty (and free) without rates.
pub(super) fn takings(terms: &Terms<'_>, route: Route<'_>, user: &UserId) -> Takings {
    let mut takings = Takings::new();
    let mut push = |rate: Rate, scope: RateScope| {
        // The catalog checked every rate; one that still cannot be used is left out.
        let Some(gcra) = Gcra::new(rate.max, rate.per.duration(), rate.burst) else {
            tracing::warn!(?rate, "a rate the limiter cannot use; ignored");
            return;
        };
        let key = RateKey {
            user: Arc::clone(user.as_arc()),
            scope,
        };
        takings.push(Taking { key, gcra, rate });
    };
    if let Some(rate) = terms.rate {
        let scope = RateScope::Action {
            resource: Arc::clone(route.resource),
            action: route.action.normalised().into_owned(),
        };
        push(rate, scope);
    }
    if let Some(rate) = terms.plan_rate {
        push(rate, RateScope::Plan);
    }
    takings
}

impl Taking {
    fn is_plan_wide(&self) -> bool {
        matches!(self.key.scope, RateScope::Plan)
    }
}

impl Shared {
    /// Takes every rate of `takings` when the rate store answers at once; `None` when one has
    /// to be awaited (nothing is taken then).
    pub(super) fn take_rates_now(&self, takings: &Takings) -> Option<Took> {
        if takings.is_empty() {
            // No clock read for a request without rates.
            return Some(Took::All(SmallVec::new()));
        }
        let now = self.now_ms();
        let mut taken = SmallVec::new();
        for (index, taking) in takings.iter().enumerate() {
            let stopwatch = Stopwatch::start();
            let answer = self
                .rates
                .acquire(&taking.key, taking.gcra, now)
                .into_ready();
            let Ok(answer) = answer else {
                self.refund_now(&takings[..index]);
                return None;
            };
            stopwatch.stop_now(Call::RATE, &answer);
            match answer {
                Ok(RateDecision::Allowed {
                    remaining,
                    reset_ms,
                }) => taken.push((remaining, reset_ms)),
                Ok(RateDecision::Limited { retry_after_ms }) => {
                    self.refund_now(&takings[..index]);
                    return Some(Took::Limited {
                        index,
                        retry_after_ms,
                    });
                }
                Err(error) => {
                    self.refund_now(&takings[..index]);
                    return Some(Took::Failed(StoreError::Failed(error)));
                }
            }
        }
        Some(Took::All(taken))
    }

    /// [`take_rates_now`](Self::take_rates_now), waiting for the rate store.
    pub(super) async fn take_rates(&self, takings: &Takings) -> Took {
        if takings.is_empty() {
            return Took::All(SmallVec::new());
        }
        let now = self.now_ms();
        let mut taken = SmallVec::new();
        for (index, taking) in takings.iter().enumerate() {
            let call = self.rates.acquire(&taking.key, taking.gcra, now);
            match timed(Call::RATE, self.store_timeout, call).await {
                Ok(RateDecision::Allowed {
                    remaining,
                    reset_ms,
                }) => taken.push((remaining, reset_ms)),
                Ok(RateDecision::Limited { retry_after_ms }) => {
                    self.refund(&takings[..index]).await;
                    return Took::Limited {
                        index,
                        retry_after_ms,
                    };
                }
                Err(error) => {
                    self.refund(&takings[..index]).await;
                    return Took::Failed(error);
                }
            }
        }
        Took::All(taken)
    }

    /// Gives back the rates of `takings` that were taken, when the store answers at once (a
    /// store that does not gets them back as time passes).
    pub(super) fn refund_now(&self, takings: &[Taking]) {
        for taking in takings {
            match self.rates.refund(&taking.key, taking.gcra).into_ready() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "rate store failed to give a request back");
                }
                Err(_) => {
                    tracing::debug!("rate store could not give a request back at once");
                }
            }
        }
    }

    /// Gives back the rates of `takings`, waiting for the rate store.
    pub(super) async fn refund(&self, takings: &[Taking]) {
        for taking in takings {
            let call = self.rates.refund(&taking.key, taking.gcra);
            if let Err(error) = timed(Call::REFUND, self.store_timeout, call).await {
                tracing::warn!(%error, "rate store failed to give a request back");
            }
        }
    }
}

/// The denial of the request of `route` under `terms` by the rate `taking`, which lets the
/// next request through after `retry_after_ms`.
pub(super) fn rate_denial(
    terms: &Terms<'_>,
    route: Route<'_>,
    taking: &Taking,
    retry_after_ms: u64,
) -> Denial {
    Denial::RateLimited {
        plan: Arc::clone(terms.plan),
        resource: Arc::clone(route.resource),
        action: route.action.normalised().into_owned(),
        plan_wide: taking.is_plan_wide(),
        maximum: taking.rate.max,
        per: taking.rate.per,
        retry_after_ms,
    }
}

/// The `RateLimit` fields of the rates an allowed request took: `"clients.create.rate"` (or
/// `"rate"` for the plan-wide one), with what remains and when each is whole again.
pub(super) fn rate_fields(
    route: Route<'_>,
    takings: &Takings,
    taken: &[(u64, u64)],
) -> Option<ResponseFields> {
    let action = route.action.normalised();
    let mut fields: Option<ResponseFields> = None;
    for (taking, (remaining, reset_ms)) in takings.iter().zip(taken) {
        let parts: &[&str] = if taking.is_plan_wide() {
            &["rate"]
        } else {
            &[route.resource, action.as_str(), "rate"]
        };
        let per = taking.rate.per.duration().as_secs();
        let field = ResponseFields::rate(
            parts,
            taking.rate.max,
            per,
            *remaining,
            reset_ms.div_ceil(1000),
        );
        fields = ResponseFields::join(fields, field);
    }
    fields
}

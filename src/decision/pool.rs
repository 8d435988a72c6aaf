//! Credit pools as a request finds them ([`Pool`]): the allowance of the plan that applies,
//! raised by the active add-ons, its overage and its current period (on the calendar or the
//! subscription's cycle), and the active grants that top it up.

use std::sync::Arc;

use smallvec::SmallVec;

use super::terms::{applicable, ActiveAddons, Now};
use super::Policy;
use crate::catalog::{Anchor, Catalog, Limit, Overage, Period, Rule, Window};
use crate::subscriber::{CreditGrant, Subscriber};

/// A credit pool that applies to a request: its name, the allowance (the plan's, raised by the
/// active add-ons; 0 when the plan has no such pool), how far past it requests may go, and its
/// current period.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pool<'a> {
    pub(crate) name: &'a Arc<str>,
    pub(crate) limit: Limit,
    pub(crate) overage: Overage,
    pub(crate) window: Option<Window>,
}

/// What a request that draws credits found of its pool: the allowance's count before it, and
/// how far past the allowance and the grants the pool's count is with it (see
/// [`Credits::overage`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PoolUsage {
    pub(crate) usage: u64,
    pub(crate) overage: u64,
}

impl Pool<'_> {
    /// The most the pool's count may reach: the allowance plus the overage, `None` without end.
    pub(crate) fn hard_maximum(&self) -> Option<u64> {
        self.overage.past(self.limit.maximum()?)
    }
}

/// The period `per` that holds `now_ms` for `subscriber`: on the calendar, or from the
/// subscription's anchor (the record's `cycle_anchor`, else the plan's `joined`) when `anchor`
/// says so and the record has one.
pub(crate) fn window(
    per: Period,
    anchor: Anchor,
    subscriber: Option<&Subscriber>,
    now_ms: u64,
) -> Window {
    let anchor_ms = match anchor {
        Anchor::Calendar => None,
        Anchor::Subscription => subscriber.and_then(|subscriber| {
            subscriber.cycle_anchor.or_else(|| {
                subscriber
                    .assignment
                    .as_ref()
                    .and_then(|assignment| assignment.joined)
            })
        }),
    };
    match anchor_ms {
        Some(anchor_ms) => per.anchored_window(anchor_ms, now_ms),
        None => per.window(now_ms),
    }
}

/// The credit pool `name` for `subscriber`: the `allowance` of the plan that applies (0 without
/// one), raised by the active add-ons, and its current period.
pub(super) fn pool_terms<'a, F: FnOnce() -> u64>(
    catalog: &'a Catalog,
    subscriber: Option<&'a Subscriber>,
    now: &mut Now<F>,
    policy: &Policy,
    rule: Rule,
    anchor: Anchor,
    name: &'a Arc<str>,
) -> Pool<'a> {
    let mut allowance = rule.limit;
    let mut addons = ActiveAddons {
        catalog,
        grants: subscriber.map_or(&[][..], |s| &s.addons).iter(),
        grace_ms: crate::time::millis(policy.grace_period),
        user: subscriber.and_then(|s| s.name.as_deref()).unwrap_or(""),
    };
    // The add-ons raise the allowance as they raise limits.
    while allowance != Limit::Unlimited {
        let Some((extra, quantity)) = addons.next(now, |addon| addon.credits(name)) else {
            break;
        };
        allowance = allowance.plus(extra, quantity);
    }
    Pool {
        name,
        limit: allowance,
        overage: rule.overage,
        window: allowance
            .period()
            .map(|per| window(per, anchor, subscriber, now.get())),
    }
}

/// The credit pool `name` for `subscriber` at `now_ms`, as a request drawing from it finds it,
/// with whether anything gives the user some of it (the plan that applies, an active add-on or
/// an active grant): what [`entitlements`](crate::entitlements) list.
pub(crate) fn pool_at<'a>(
    catalog: &'a Catalog,
    subscriber: Option<&'a Subscriber>,
    now_ms: u64,
    policy: &Policy,
    name: &'a Arc<str>,
) -> (Pool<'a>, bool) {
    let mut now = Now::new(|| now_ms);
    let plan = applicable(catalog, subscriber, &mut now, policy).ok();
    let declared = plan.and_then(|(plan, _)| plan.credit_rule(name));
    let anchor = declared
        .and_then(|rule| rule.anchor)
        .or(plan.and_then(|(plan, _)| plan.anchor()))
        .unwrap_or_default();
    let pool = pool_terms(
        catalog,
        subscriber,
        &mut now,
        policy,
        declared.unwrap_or(Rule::new(Limit::Limited(0))),
        anchor,
        name,
    );
    let given = declared.is_some()
        || pool.limit != Limit::Limited(0)
        || !active_grants(subscriber, name, now_ms).is_empty();
    (pool, given)
}

/// The grants of credits of `pool` in `subscriber`'s record that are active at `now_ms`, in the
/// order they are spent: the one that expires soonest first (one without an end last), then in
/// the record's order.
pub(crate) fn active_grants<'a>(
    subscriber: Option<&'a Subscriber>,
    pool: &str,
    now_ms: u64,
) -> SmallVec<[&'a CreditGrant; 4]> {
    let mut grants: SmallVec<[&'a CreditGrant; 4]> = subscriber
        .map_or(&[][..], |subscriber| &subscriber.grants)
        .iter()
        .filter(|grant| {
            *grant.pool == *pool
                && grant.amount > 0
                && !grant.id.starts_with('$')
                && grant.is_active_at(now_ms)
        })
        .collect();
    // A stable sort: equal ends keep the record's order.
    grants.sort_by_key(|grant| grant.expires.unwrap_or(u64::MAX));
    grants
}

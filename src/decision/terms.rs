//! What applies to one request: the effective plan and limit ([`Terms`]), or why no plan
//! applies ([`Refusal`]). Rules 1 to 10 of [`decide`](super::decide)(super::decide), in one place for the
//! decision, the layer, counted usage and entitlements.

use std::sync::Arc;

use super::pool::{active_grants, pool_terms, window, Pool, PoolUsage};
use super::{Allowed, Credits, Denial, Name, PlanState, Policy};
use crate::catalog::{
    Action, Addon, Anchor, Catalog, Cost, Limit, Overage, Plan, Rate, ResourceLimits, Rule, Window,
};
use crate::subscriber::{AddonGrant, Assignment, Subscriber, Usage};

/// [`PlanState`], borrowed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum State<'a> {
    Active,
    Trial,
    Fallback(&'a Arc<str>),
    Default,
    Addons,
}

impl State<'_> {
    pub(crate) fn to_plan_state(self) -> PlanState {
        match self {
            State::Active => PlanState::Active,
            State::Trial => PlanState::Trial,
            State::Fallback(trial) => PlanState::Fallback {
                trial: Arc::clone(trial),
            },
            State::Default => PlanState::Default,
            State::Addons => PlanState::Addons,
        }
    }
}

/// The clock of one decision: read once, and only when asked.
pub(super) struct Now<F> {
    read: Option<F>,
    at: u64,
}

impl<F: FnOnce() -> u64> Now<F> {
    pub(super) fn new(read: F) -> Self {
        Self {
            read: Some(read),
            at: 0,
        }
    }

    /// The time, read on the first call.
    pub(super) fn get(&mut self) -> u64 {
        if let Some(read) = self.read.take() {
            self.at = read();
        }
        self.at
    }
}

/// What applies to one user, resource and action (already normalised): the effective limit,
/// the name and state the decision reports, and which count a `PATCH` is compared with.
///
/// [`terms`] computes it in one place for the decision, for the layer and for counted usage
/// (`Tally::of`), so that they never disagree.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Terms<'a> {
    /// The plan the decision names (an add-on's name in the [`State::Addons`] state).
    pub(crate) plan: &'a Arc<str>,
    pub(crate) state: State<'a>,
    /// The plan's limit raised by the active add-ons (rules 5, 8 and 10 of [`decide`](super::decide)).
    pub(crate) limit: Limit,
    /// Whether the action is a `PATCH` limited through the `update` limit, and so compared with
    /// (and counted on) the update count (rules 6, 9 and 10 of [`decide`](super::decide)).
    pub(crate) patch_counts_updates: bool,
    /// The current period of a quota.
    pub(crate) window: Option<Window>,
    /// What the request costs, when the catalog meters it.
    pub(crate) cost: Option<&'a Cost>,
    /// The units the request takes: the meter's, else 1.
    pub(crate) units: u64,
    /// The credit pool the request draws from, when its meter names one.
    pub(crate) pool: Option<Pool<'a>>,
    /// How far past the limit the plan lets requests go.
    pub(crate) overage: Overage,
    /// What the quota's periods follow (the limit's anchor, else the plan's).
    pub(crate) anchor: Anchor,
    /// The plan's rate on the action, and the plan-wide rate.
    pub(crate) rate: Option<Rate>,
    pub(crate) plan_rate: Option<Rate>,
}

/// The [`Terms`] for `action` (already normalised) on `resource`, or the [`Refusal`] when
/// neither a plan nor an add-on applies. Rules 1 to 4 and 7 to 10 of [`decide`](super::decide); the clock is
/// read at most once, for a plan that ends or an add-on grant with bounds that could change the
/// limit.
pub(crate) fn terms<'a>(
    catalog: &'a Catalog,
    subscriber: Option<&'a Subscriber>,
    now_ms: impl FnOnce() -> u64,
    policy: &Policy,
    resource: &str,
    action: &Action,
) -> Result<Terms<'a>, Refusal<'a>> {
    let mut now = Now::new(now_ms);
    let grants: &'a [AddonGrant] = subscriber.map_or(&[], |s| &s.addons);
    let mut addons = ActiveAddons {
        catalog,
        grants: grants.iter(),
        grace_ms: crate::time::millis(policy.grace_period),
        user: subscriber.and_then(|s| s.name.as_deref()).unwrap_or(""),
    };
    // The plan's allowance of the pool a metered request draws from.
    let cost = catalog.cost(resource, action);
    let pool = cost.and_then(Cost::pool_arc);
    let mut allowance = Rule::new(Limit::Limited(0));
    let mut plan_anchor = None;
    let mut terms = match applicable(catalog, subscriber, &mut now, policy) {
        Ok((plan, state)) => {
            if let Some(pool) = pool {
                allowance = plan.credit_rule(pool).unwrap_or(allowance);
            }
            plan_anchor = plan.anchor();
            // One lookup of the resource for its limit, the terms around it and how it reads
            // `patch`.
            let limits = plan.resource(resource);
            let rule = limits.and_then(|limits| limits.rule(action));
            let mut limit = rule.map_or(Limit::Unlimited, |rule| rule.limit);
            // Unlimited stays unlimited: no add-on can change it, and none needs the clock.
            if limit != Limit::Unlimited {
                while let Some((extra, quantity)) =
                    addons.next(&mut now, |addon| addon.limit(resource, action))
                {
                    limit = limit.plus(extra, quantity);
                    if limit == Limit::Unlimited {
                        break;
                    }
                }
            }
            Terms {
                plan: plan.name_arc(),
                state,
                limit,
                patch_counts_updates: *action == Action::Patch
                    && limits.is_some_and(patch_uses_update_limit),
                window: None,
                cost,
                units: 1,
                pool: None,
                overage: rule.map_or(Overage::Off, |rule| rule.overage),
                anchor: rule
                    .and_then(|rule| rule.anchor)
                    .or(plan_anchor)
                    .unwrap_or_default(),
                rate: rule.and_then(|rule| rule.rate),
                plan_rate: plan.rate(),
            }
        }
        Err(refusal) => {
            let mut first: Option<&'a Arc<str>> = None;
            let mut limit: Option<Limit> = None;
            let (mut sets_patch, mut sets_update) = (false, false);
            while let Some(((name, limits), quantity)) = addons.next(&mut now, |addon| {
                Some((addon.name_arc(), addon.resource(resource)?))
            }) {
                first.get_or_insert(name);
                if let Some(extra) = limits.declared(action) {
                    limit = Some(limit.unwrap_or(Limit::Limited(0)).plus(extra, quantity));
                }
                sets_patch |= limits.get(&Action::Patch).is_some();
                sets_update |= limits.get(&Action::Update).is_some();
            }
            match first {
                Some(name) => Terms {
                    plan: name,
                    state: State::Addons,
                    limit: limit.unwrap_or(Limit::Unlimited),
                    patch_counts_updates: *action == Action::Patch && !sets_patch && sets_update,
                    window: None,
                    cost,
                    units: 1,
                    pool: None,
                    overage: Overage::Off,
                    anchor: Anchor::Calendar,
                    rate: None,
                    plan_rate: None,
                },
                None => return Err(refusal),
            }
        }
    };
    // A quota's period: the clock is read for it (once, as for everything else).
    terms.window = terms
        .limit
        .period()
        .map(|per| window(per, terms.anchor, subscriber, now.get()));
    if let Some(cost) = cost {
        terms.units = cost.units();
    }
    if let Some(name) = pool {
        let anchor = allowance.anchor.or(plan_anchor).unwrap_or_default();
        terms.pool = Some(pool_terms(
            catalog, subscriber, &mut now, policy, allowance, anchor, name,
        ));
    }
    Ok(terms)
}

/// The plan that applies to `subscriber` at `now_ms` (rules 1 to 4 of [`decide`](super::decide)), or the
/// denial when none does: what [`entitlements`](crate::entitlements) report as the standing.
pub(crate) fn plan_at<'a>(
    catalog: &'a Catalog,
    subscriber: Option<&'a Subscriber>,
    now_ms: u64,
    policy: &Policy,
) -> Result<(&'a Plan, State<'a>), Refusal<'a>> {
    applicable(catalog, subscriber, &mut Now::new(|| now_ms), policy)
}

/// When the plan that [`plan_at`] found in `state` stops applying, grace included: `None`
/// when it never does (a regular plan without `expires`, a fallback or a default plan).
pub(crate) fn applies_until(
    catalog: &Catalog,
    subscriber: Option<&Subscriber>,
    state: State<'_>,
    policy: &Policy,
) -> Option<u64> {
    if !matches!(state, State::Active | State::Trial) {
        return None;
    }
    let assignment = subscriber.and_then(|s| s.assignment.as_ref())?;
    match end_of(assignment, catalog) {
        End::At(end) => Some(end.saturating_add(crate::time::millis(policy.grace_period))),
        End::Never | End::Unknown => None,
    }
}

/// The active add-ons of `subscriber` at `now_ms` that add to `action` (already normalised) on
/// `resource`: each add-on's name, what one unit adds, and the quantity granted, in record
/// order. What [`terms`] adds up, listed for [`entitlements`](crate::entitlements).
pub(crate) fn addon_sources<'a>(
    catalog: &'a Catalog,
    subscriber: Option<&'a Subscriber>,
    now_ms: u64,
    policy: &Policy,
    resource: &str,
    action: &Action,
) -> Vec<(&'a Arc<str>, Limit, u64)> {
    let mut addons = ActiveAddons {
        catalog,
        grants: subscriber.map_or(&[][..], |s| &s.addons).iter(),
        grace_ms: crate::time::millis(policy.grace_period),
        user: subscriber.and_then(|s| s.name.as_deref()).unwrap_or(""),
    };
    let mut now = Now::new(|| now_ms);
    let mut sources = Vec::new();
    while let Some(((name, limit), quantity)) = addons.next(&mut now, |addon| {
        Some((addon.name_arc(), addon.limit(resource, action)?))
    }) {
        sources.push((name, limit, quantity));
    }
    sources
}

/// The active add-on grants of a record, with their add-ons.
pub(super) struct ActiveAddons<'a, 'r> {
    pub(super) catalog: &'a Catalog,
    pub(super) grants: std::slice::Iter<'a, AddonGrant>,
    pub(super) grace_ms: u64,
    pub(super) user: &'r str,
}

impl<'a> ActiveAddons<'a, '_> {
    /// What `select` takes from the add-on of the next grant that it selects from, has a
    /// quantity above 0 and is active, with the grant's quantity. The clock is read only for a
    /// grant that passed the other tests and has bounds.
    pub(super) fn next<T, F: FnOnce() -> u64>(
        &mut self,
        now: &mut Now<F>,
        select: impl Fn(&'a Addon) -> Option<T>,
    ) -> Option<(T, u64)> {
        for grant in self.grants.by_ref() {
            let Some(addon) = self.catalog.addon(&grant.name) else {
                tracing::warn!(
                    user = self.user,
                    addon = &*grant.name,
                    "the user's add-on is not in the catalog; ignored"
                );
                continue;
            };
            if grant.quantity == 0 {
                continue;
            }
            let Some(selected) = select(addon) else {
                continue;
            };
            if grant.is_timed() && !grant.is_active_at(now.get(), self.grace_ms) {
                continue;
            }
            return Some((selected, grant.quantity));
        }
        None
    }
}

/// The plan that applies to `subscriber` (rules 1 to 4 of [`decide`](super::decide)), or why none does.
pub(super) fn applicable<'a, F: FnOnce() -> u64>(
    catalog: &'a Catalog,
    subscriber: Option<&'a Subscriber>,
    now: &mut Now<F>,
    policy: &Policy,
) -> Result<(&'a Plan, State<'a>), Refusal<'a>> {
    let assignment = subscriber.and_then(|s| s.assignment.as_ref());
    let inactive = match effective_plan(catalog, subscriber, assignment, now, policy) {
        Effective::Plan(plan, state) => return Ok((plan, state)),
        Effective::Inactive(inactive) => inactive,
    };
    if let Some(default) = policy.default_plan.as_deref() {
        match catalog.plan(default) {
            Some(plan) => return Ok((plan, State::Default)),
            None => tracing::warn!(
                plan = default,
                "the default plan is not in the catalog; users without an active plan are denied"
            ),
        }
    }
    Err(inactive)
}

/// The plan that applies before the default plan is considered.
enum Effective<'a> {
    Plan(&'a Plan, State<'a>),
    Inactive(Refusal<'a>),
}

/// Why no plan applies to a user: the denial of rule 4 of [`decide`](super::decide).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Refusal<'a> {
    /// The plan (and no fallback) expired at `date`, grace included.
    Expired { plan: &'a Arc<str>, date: u64 },
    /// No plan at all.
    NoPlan,
}

impl Refusal<'_> {
    /// The denial of `action` (already normalised) on `resource`.
    pub(crate) fn denial(self, resource: &Arc<str>, action: &Action) -> Denial {
        match self {
            Refusal::Expired { plan, date } => Denial::Expired {
                plan: Arc::clone(plan),
                date,
            },
            Refusal::NoPlan => Denial::NoPlan {
                resource: Arc::clone(resource),
                action: action.clone(),
            },
        }
    }
}

/// When an assignment ends, before grace.
enum End {
    Never,
    At(u64),
    /// A trial with neither `joined` nor `expires`.
    Unknown,
}

fn effective_plan<'a, F: FnOnce() -> u64>(
    catalog: &'a Catalog,
    subscriber: Option<&Subscriber>,
    assignment: Option<&'a Assignment>,
    now: &mut Now<F>,
    policy: &Policy,
) -> Effective<'a> {
    let Some(assignment) = assignment else {
        return Effective::Inactive(Refusal::NoPlan);
    };
    let user = subscriber.and_then(|s| s.name.as_deref()).unwrap_or("");
    let Some(plan) = catalog.plan(&assignment.plan) else {
        tracing::warn!(
            user,
            plan = &*assignment.plan,
            "the user's plan is not in the catalog; treated as no plan"
        );
        return Effective::Inactive(Refusal::NoPlan);
    };
    let state = if assignment.trial {
        State::Trial
    } else {
        State::Active
    };
    let end = match end_of(assignment, catalog) {
        End::Never => return Effective::Plan(plan, state),
        End::At(end) => end.saturating_add(crate::time::millis(policy.grace_period)),
        End::Unknown => {
            tracing::warn!(
                user,
                plan = &*assignment.plan,
                "a trial without `joined` or `expires`; treated as no plan"
            );
            return Effective::Inactive(Refusal::NoPlan);
        }
    };
    if now.get() < end {
        return Effective::Plan(plan, state);
    }
    if assignment.trial {
        let fallback = catalog
            .trial()
            .and_then(|t| t.fallback())
            .and_then(|name| catalog.plan(name));
        if let Some(fallback) = fallback {
            return Effective::Plan(fallback, State::Fallback(&assignment.plan));
        }
    }
    Effective::Inactive(Refusal::Expired {
        plan: &assignment.plan,
        date: end,
    })
}

/// When `assignment` ends, without grace.
fn end_of(assignment: &Assignment, catalog: &Catalog) -> End {
    if let Some(expires) = assignment.expires {
        return End::At(expires);
    }
    if !assignment.trial {
        return End::Never;
    }
    match (assignment.joined, catalog.trial()) {
        (Some(joined), Some(trial)) => End::At(joined.saturating_add(trial.duration_ms())),
        // A catalog without trials gives a trial without `expires` no time at all.
        (Some(joined), None) => End::At(joined),
        (None, _) => End::Unknown,
    }
}

impl Terms<'_> {
    /// The usage of `usage` counted against the limit on `action` (already normalised) of
    /// `resource`, 0 without a record (rules 5 and 6 of [`decide`](super::decide)).
    pub(crate) fn usage(&self, usage: Option<&Usage>, resource: &str, action: &Action) -> u64 {
        let Some(usage) = usage else {
            return 0;
        };
        if *action == Action::Patch && self.patch_counts_updates {
            return usage
                .action_count(resource, &Action::Patch)
                .or_else(|| usage.action_count(resource, &Action::Update))
                .or_else(|| usage.count(resource))
                .unwrap_or(0);
        }
        usage.get(resource, action)
    }

    /// The [`Allowed`] decision on `action` (already normalised) of `resource` at this usage
    /// (and, for a request that draws credits, this usage of the pool).
    pub(crate) fn allowed(
        &self,
        resource: &Arc<str>,
        action: Action,
        usage: u64,
        pool: PoolUsage,
    ) -> Allowed {
        Allowed {
            plan: Name::from(self.plan),
            state: self.state.to_plan_state(),
            resource: Name::from(resource),
            action,
            limit: self.limit,
            usage,
            window: self.window,
            cost: self.units,
            overage: self.overage_after(usage),
            credits: self.pool.map(|terms| Credits {
                pool: Name::from(terms.name),
                limit: terms.limit,
                usage: pool.usage,
                overage: pool.overage,
                window: terms.window,
            }),
        }
    }

    /// The most the action's count may reach: the limit plus the overage, `None` without end.
    pub(crate) fn hard_maximum(&self) -> Option<u64> {
        self.overage.past(self.limit.maximum()?)
    }

    /// How far past the (soft) limit a request that found `usage` brings the count: 0 within
    /// the limit.
    pub(crate) fn overage_after(&self, usage: u64) -> u64 {
        self.limit.maximum().map_or(0, |max| {
            usage
                .saturating_add(self.action_units())
                .saturating_sub(max)
        })
    }

    /// Whether `usage` leaves no room under the action's limit (and its overage) for the units
    /// the request takes on it (rules 5 and 6 of [`decide`](super::decide): a limit of 0 always
    /// denies).
    pub(crate) fn limit_is_reached(&self, usage: u64) -> bool {
        self.hard_maximum().is_some_and(|max| {
            max.checked_sub(usage)
                .is_none_or(|left| left < self.action_units())
        })
    }

    /// The units the request takes on its action's own limit: its cost when it draws from no
    /// pool, else one.
    pub(crate) fn action_units(&self) -> u64 {
        if self.pool.is_some() {
            1
        } else {
            self.units
        }
    }

    /// The denial of a request whose pool cannot cover its cost when nothing counts what pools
    /// spent: only the allowance and `subscriber`'s grants active at `now_ms` decide.
    pub(crate) fn uncounted_credits_denial(
        &self,
        subscriber: Option<&Subscriber>,
        now_ms: u64,
    ) -> Option<Denial> {
        let pool = self.pool?;
        let max = pool.hard_maximum()?;
        let granted = active_grants(subscriber, pool.name, now_ms)
            .iter()
            .fold(0u64, |sum, grant| sum.saturating_add(grant.amount));
        if self.units <= max.saturating_add(granted) {
            return None;
        }
        self.credits_exhausted(0)
    }

    /// The denial of a request whose pool cannot cover its cost, at this usage of the pool.
    pub(crate) fn credits_exhausted(&self, usage: u64) -> Option<Denial> {
        let pool = self.pool?;
        Some(Denial::Credits {
            plan: Arc::clone(self.plan),
            pool: Arc::clone(pool.name),
            maximum: pool.limit.maximum().unwrap_or(u64::MAX),
            usage,
            cost: self.units,
            window: pool.window,
        })
    }

    /// The denial of `action` (already normalised) of `resource` at this usage, which reached
    /// the limit.
    pub(crate) fn limit_reached(&self, resource: &Arc<str>, action: &Action, usage: u64) -> Denial {
        Denial::LimitReached {
            plan: Arc::clone(self.plan),
            resource: Arc::clone(resource),
            action: action.clone(),
            // Only a finite limit is reached.
            maximum: self.limit.maximum().unwrap_or(u64::MAX),
            usage,
            window: self.window,
            cost: self.action_units(),
        }
    }
}

/// Whether a `PATCH` of a resource with these limits is limited by its `update` limit: they set
/// no `patch` limit but an `update` limit.
fn patch_uses_update_limit(limits: &ResourceLimits) -> bool {
    limits.get(&Action::Patch).is_none() && limits.get(&Action::Update).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Trial;

    const DAY: u64 = 86_400_000;

    fn catalog(trial: Option<Trial>) -> Catalog {
        let mut builder = Catalog::builder()
            .plan(Plan::new("free").create_limit("clients", 3))
            .plan(Plan::new("pro").create_limit("clients", 30));
        if let Some(trial) = trial {
            builder = builder.trial(trial);
        }
        builder.build().unwrap()
    }

    #[test]
    fn ends() {
        let with_trial = catalog(Some(Trial::days(14)));
        let without = catalog(None);
        let regular = Assignment::new("pro").joined_at(5);
        assert!(matches!(end_of(&regular, &with_trial), End::Never));
        let expiring = regular.clone().expires_at(9);
        assert!(matches!(end_of(&expiring, &with_trial), End::At(9)));
        let trial = Assignment::new("pro").as_trial().joined_at(5);
        assert!(matches!(end_of(&trial, &with_trial), End::At(t) if t == 5 + 14 * DAY));
        assert!(matches!(end_of(&trial, &without), End::At(5)));
        let extended = trial.clone().expires_at(20 * DAY);
        assert!(matches!(end_of(&extended, &with_trial), End::At(t) if t == 20 * DAY));
        let invalid = Assignment::new("pro").as_trial();
        assert!(matches!(end_of(&invalid, &with_trial), End::Unknown));
        let late = Assignment::new("pro").as_trial().joined_at(u64::MAX - 1);
        assert!(matches!(end_of(&late, &with_trial), End::At(u64::MAX)));
    }
}

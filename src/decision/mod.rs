//! The decision: a pure function from a catalog, a subscriber record and the time to allow or deny.
//!
//! [`decide`]'s docs give the rules; [`Denial`]'s give the JSON bodies.

use std::sync::Arc;
use std::time::Duration;

use crate::catalog::{Action, Catalog};
use crate::subscriber::Subscriber;
#[cfg(doc)]
use crate::{
    catalog::{Addon, Limit, Plan},
    subscriber::{AddonGrant, Usage},
};

mod name;
mod outcome;
mod pool;
mod terms;

pub use name::Name;
pub use outcome::{Allowed, Credits, Denial, PlanState};
pub(crate) use pool::{active_grants, pool_at, Pool, PoolUsage};
pub(crate) use terms::{addon_sources, applies_until, plan_at, terms, Refusal, State, Terms};

/// Settings of the decision that do not come from the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    grace_period: Duration,
    default_plan: Option<Arc<str>>,
}

impl Policy {
    /// No grace period and no default plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the time added to every expiry before a plan counts as expired (default zero).
    #[must_use]
    pub fn with_grace_period(mut self, grace_period: Duration) -> Self {
        self.grace_period = grace_period;
        self
    }

    /// Sets the plan that applies to a user without an active plan (default none: such users are
    /// denied every governed action).
    #[must_use]
    pub fn with_default_plan(mut self, plan: impl Into<Arc<str>>) -> Self {
        self.default_plan = Some(plan.into());
        self
    }

    /// The grace period.
    pub fn grace_period(&self) -> Duration {
        self.grace_period
    }

    /// The default plan's name.
    pub fn default_plan(&self) -> Option<&str> {
        self.default_plan.as_deref()
    }
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The request may proceed.
    Allow(Allowed),
    /// The request is denied.
    Deny(Denial),
}

/// Decides whether `subscriber` may perform `action` on `resource` at `now_ms` (milliseconds since
/// the Unix epoch).
///
/// This is a pure function: no I/O, no clock, and no allocation on the allow path.
///
/// # The rules
///
/// 1. No record, or a record without a plan: the user has no plan. A plan name the catalog does
///    not know is treated the same way, and logged at warn level.
/// 2. When the plan ends: `expires` if set (this is also how a trial is extended); otherwise,
///    for a trial, `joined` plus the catalog's trial duration; a regular plan without `expires`
///    never ends. A trial in a catalog without a trial policy, and without `expires`, ended when
///    it began (`joined`). The policy's [grace period](Policy::with_grace_period) is added to every end
///    (saturating). A trial with neither `joined` nor `expires` is invalid data: treated as no
///    plan, with a warning.
/// 3. The plan has expired when `now_ms >= end`: at the end's very millisecond it no longer
///    applies. An expired trial falls back to the catalog's fallback plan, if there is one, with
///    only the fallback's limits ([`PlanState::Fallback`]); any other expired plan leaves the
///    user without an active plan.
/// 4. Without an active plan, the policy's [default plan](Policy::with_default_plan) applies
///    ([`PlanState::Default`]) when it is set and the catalog knows it. Otherwise the request is
///    denied: [`Denial::Expired`] (its `date` is the end, grace included: the first millisecond
///    the plan no longer applied) or [`Denial::NoPlan`].
/// 5. The effective plan's limit on (`resource`, `action`), see [`Plan::limit`]: unlimited
///    allows. Otherwise the usage ([`Usage::get`]; 0 without a record) must be below the limit:
///    `usage >= limit` is [`Denial::LimitReached`], so a limit of 0 always denies. For a
///    [`Limit::Periodic`] quota the record's usage is taken as the current period's (the layer
///    counts per period itself when it counts usage), and the decision names the period that
///    holds `now_ms`, so that a denial says when the count resets.
/// 6. A `PATCH` limited by the `update` limit (the plan sets no `patch` limit on the resource)
///    counts the `patch` count if the store gave one, else the `update` count, else the
///    resource count, else 0. So a user whose updates reached the limit can no more PATCH than
///    PUT, even when the store counts only updates. With an explicit `patch` limit, the usage is
///    the `patch` count as usual (else the resource count, else 0).
///
/// # Add-ons
///
/// 7. A grant of an [add-on](crate::catalog::Addon) in the record
///    ([`AddonGrant`]) is *active* when `starts <= now_ms < expires + grace`
///    ([`AddonGrant::is_active_at`]): a missing `starts` has always started, a missing `expires`
///    never ends, and the grace period is the plan's. A grant of quantity 0, an inactive grant
///    and a grant of an add-on the catalog does not know (logged at warn level) count for
///    nothing.
/// 8. The limit of rule 5 is the effective plan's (also a fallback or default plan) raised by
///    every active grant: each add-on's limit on the action ([`Addon::limit`]; `patch` reads
///    the add-on's `update` limit when it sets no `patch` limit) is added `quantity` times.
///    Unlimited on either side stays unlimited, so an add-on raises nothing that the plan leaves
///    unlimited (including a resource the plan does not name), and an add-on that sets an action
///    to `null` makes it unlimited. A plan limit of 0 is raised like any other. The arithmetic
///    saturates. The denial still names the plan, with the combined `maximum`.
/// 9. A `PATCH` is counted as rule 6 says according to the plan alone: an add-on raises a
///    limit, it never changes which count a `PATCH` is compared with.
/// 10. Without an active plan (rules 1 to 4 found none and no default plan applies), active
///     grants of add-ons that name the resource give their limits alone ([`PlanState::Addons`]),
///     read as a plan's would be: an action that none of them sets is unlimited, the limits of
///     those that set it add up, and a `PATCH` is counted with the updates when none sets a
///     `patch` limit and one sets an `update` limit. The decision names the first of these
///     add-ons, in the record's order, as its plan. A resource no active add-on names is denied
///     as rule 4 says ([`Denial::Expired`] or [`Denial::NoPlan`]).
///
/// The clock (`now_ms` here, the layer's clock in the middleware) matters only for a plan that
/// ends and for an add-on grant with a start or an end that could change the limit.
///
/// An [`Action::Custom`] carrying a REST name (`Action::Custom("destroy".into())`) is that REST
/// action ([`Action::Delete`]) throughout: its limit, its usage, and the action the [`Allowed`]
/// or [`Denial`] reports.
///
/// ```
/// use std::sync::Arc;
/// use tower_plans::{Action, Catalog, Subscriber, decision::{decide, Decision, Policy}};
///
/// let catalog = Catalog::from_json(r#"[{"name": "free", "clients": 3}]"#)?;
/// let john = Subscriber::from_json(r#"{"name": "john", "plan": "free", "clients": 3}"#)?;
/// let clients: Arc<str> = Arc::from("clients");
///
/// let decision = decide(&catalog, Some(&john), 0, &clients, &Action::Create, &Policy::new());
/// let Decision::Deny(denial) = decision else { panic!("john has 3 clients already") };
/// assert_eq!(
///     serde_json::to_string(&denial)?,
///     r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3}"#
/// );
///
/// // Listing them is not limited.
/// let decision = decide(&catalog, Some(&john), 0, &clients, &Action::Index, &Policy::new());
/// assert!(matches!(decision, Decision::Allow(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decide(
    catalog: &Catalog,
    subscriber: Option<&Subscriber>,
    now_ms: u64,
    resource: &Arc<str>,
    action: &Action,
    policy: &Policy,
) -> Decision {
    // A custom action with a REST name is that REST action; the REST variants hold no data, so
    // this allocates nothing.
    let normalised = action.normalised();
    let action = &*normalised;
    let terms = match terms(catalog, subscriber, || now_ms, policy, resource, action) {
        Ok(terms) => terms,
        Err(refusal) => return Decision::Deny(refusal.denial(resource, action)),
    };
    let usage = terms.usage(subscriber.map(|s| &s.usage), resource, action);
    if terms.limit_is_reached(usage) {
        return Decision::Deny(terms.limit_reached(resource, action, usage));
    }
    // Nothing counts what a pool spent: only its allowance and the user's active grants say
    // whether a request's cost fits.
    if let Some(denial) = terms.uncounted_credits_denial(subscriber, now_ms) {
        return Decision::Deny(denial);
    }
    Decision::Allow(terms.allowed(resource, action.clone(), usage, PoolUsage::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Plan;
    use crate::subscriber::Assignment;

    fn catalog() -> Catalog {
        Catalog::builder()
            .plan(Plan::new("free").create_limit("clients", 3))
            .plan(Plan::new("pro").create_limit("clients", 30))
            .build()
            .unwrap()
    }

    #[test]
    fn grace_saturates() {
        let catalog = catalog();
        let user = Subscriber::new().with_plan(Assignment::new("pro").expires_at(u64::MAX - 5));
        let policy = Policy::new().with_grace_period(Duration::MAX);
        let clients: Arc<str> = Arc::from("clients");
        let decision = decide(
            &catalog,
            Some(&user),
            u64::MAX - 1,
            &clients,
            &Action::Create,
            &policy,
        );
        assert!(matches!(decision, Decision::Allow(_)));
    }
}

//! The decision: a pure function from a catalog, a subscriber record and the time to allow or deny.
//!
//! [`decide`]'s docs give the rules; [`Denial`]'s give the JSON bodies.

use std::sync::Arc;
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::catalog::{Action, Addon, Catalog, Limit, Plan, ResourceLimits, Window};
use crate::subscriber::{AddonGrant, Assignment, Subscriber, Usage};

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

/// How the user came to be on the effective plan.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanState {
    /// A regular plan that has not expired.
    Active,
    /// A free trial that has not expired (possibly extended).
    Trial,
    /// A trial of `trial` that expired; the catalog's fallback plan applies.
    Fallback {
        /// The plan that was on trial.
        trial: Arc<str>,
    },
    /// The user had no active plan; the policy's default plan applies.
    Default,
    /// The user has no active plan (and no default plan applies), but active add-ons name the
    /// resource: their limits alone apply, and the decision names the first of them (in the
    /// record's order) as its plan.
    Addons,
}

/// An allowed request: what a handler can read from the request extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Allowed {
    /// The plan that applied; in the [`PlanState::Addons`] state, the name of the first active
    /// add-on that names the resource.
    pub plan: Arc<str>,
    /// How the user came to be on it.
    pub state: PlanState,
    /// The resource the request touches.
    pub resource: Arc<str>,
    /// The action the request performs.
    pub action: Action,
    /// The limit on that action: the plan's, raised by the user's active add-ons.
    pub limit: Limit,
    /// The user's usage counted against the limit (in the current period, for a
    /// [`Limit::Periodic`] quota), before this request.
    pub usage: u64,
    /// The current period of a [`Limit::Periodic`] quota: its `end` is when the count resets.
    pub window: Option<Window>,
}

impl Allowed {
    /// How many more the limit allows after this usage (`None` when unlimited).
    pub fn remaining(&self) -> Option<u64> {
        self.limit
            .maximum()
            .map(|max| max.saturating_sub(self.usage))
    }

    /// When the count of a [`Limit::Periodic`] quota resets, in milliseconds since the Unix
    /// epoch.
    pub fn resets(&self) -> Option<u64> {
        self.window.map(|window| window.end())
    }
}

/// A denied request, rendered by default as a 403 with a JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// The user's plan expired (and no fallback applies).
    Expired {
        /// The expired plan.
        plan: Arc<str>,
        /// When it expired (grace included), in milliseconds since the Unix epoch.
        date: u64,
    },
    /// The user has no plan.
    NoPlan {
        /// The resource the request touches.
        resource: Arc<str>,
        /// The action the request performs.
        action: Action,
    },
    /// The limit is reached.
    LimitReached {
        /// The plan that applied (in the [`PlanState::Addons`] state, the first active add-on
        /// that names the resource).
        plan: Arc<str>,
        /// The resource the request touches.
        resource: Arc<str>,
        /// The action the request performs.
        action: Action,
        /// The limit: the plan's, raised by the user's active add-ons (per period, for a
        /// quota).
        maximum: u64,
        /// The user's usage (in the current period, for a quota).
        usage: u64,
        /// The current period of a [`Limit::Periodic`] quota; its `end` is when the count
        /// resets, which the JSON body gives as `resets`.
        window: Option<Window>,
    },
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
    evaluate(catalog, subscriber, || now_ms, resource, action, policy)
        .into_decision(resource, action)
}

/// A decision that borrows what it names from the catalog and the record: what [`decide`]
/// returns, before anything is cloned. The layer makes the [`Allowed`] extension and the
/// [`Denial`] from it only when it needs them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Verdict<'a> {
    Allow(Granted<'a>),
    LimitReached {
        plan: &'a Arc<str>,
        maximum: u64,
        usage: u64,
        window: Option<Window>,
    },
    Expired {
        plan: &'a Arc<str>,
        date: u64,
    },
    NoPlan,
}

/// An allowing [`Verdict`]: what the [`Allowed`] extension says, borrowed, but the resource
/// and the action.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Granted<'a> {
    pub(crate) plan: &'a Arc<str>,
    pub(crate) state: State<'a>,
    pub(crate) limit: Limit,
    pub(crate) usage: u64,
    pub(crate) window: Option<Window>,
}

/// [`PlanState`], borrowed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum State<'a> {
    Active,
    Trial,
    Fallback(&'a Arc<str>),
    Default,
    Addons,
}

impl PlanState {
    /// This state, borrowed.
    pub(crate) fn borrowed(&self) -> State<'_> {
        match self {
            PlanState::Active => State::Active,
            PlanState::Trial => State::Trial,
            PlanState::Fallback { trial } => State::Fallback(trial),
            PlanState::Default => State::Default,
            PlanState::Addons => State::Addons,
        }
    }
}

impl State<'_> {
    pub(crate) fn into_plan_state(self) -> PlanState {
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

impl<'a> Verdict<'a> {
    /// The owned decision on `action` (already normalised) of `resource`.
    pub(crate) fn into_decision(self, resource: &Arc<str>, action: &Action) -> Decision {
        match self.into_denial(resource, action) {
            Ok(denial) => Decision::Deny(denial),
            Err(granted) => Decision::Allow(Allowed {
                plan: Arc::clone(granted.plan),
                state: granted.state.into_plan_state(),
                resource: Arc::clone(resource),
                action: action.clone(),
                limit: granted.limit,
                usage: granted.usage,
                window: granted.window,
            }),
        }
    }

    /// The owned denial of `action` (already normalised) on `resource`, or what allows it.
    /// Inlined: on the allow path it is one test.
    #[inline]
    pub(crate) fn into_denial(
        self,
        resource: &Arc<str>,
        action: &Action,
    ) -> Result<Denial, Granted<'a>> {
        match self {
            Verdict::Allow(granted) => Err(granted),
            Verdict::LimitReached {
                plan,
                maximum,
                usage,
                window,
            } => Ok(Denial::LimitReached {
                plan: Arc::clone(plan),
                resource: Arc::clone(resource),
                action: action.clone(),
                maximum,
                usage,
                window,
            }),
            Verdict::Expired { plan, date } => Ok(Denial::Expired {
                plan: Arc::clone(plan),
                date,
            }),
            Verdict::NoPlan => Ok(Denial::NoPlan {
                resource: Arc::clone(resource),
                action: action.clone(),
            }),
        }
    }
}

/// [`decide`] without cloning anything, for `action` already normalised. The clock is read only
/// when the decision depends on the time (see [`terms`]).
pub(crate) fn evaluate<'a>(
    catalog: &'a Catalog,
    subscriber: Option<&'a Subscriber>,
    now_ms: impl FnOnce() -> u64,
    resource: &str,
    action: &Action,
    policy: &Policy,
) -> Verdict<'a> {
    match terms(catalog, subscriber, now_ms, policy, resource, action) {
        Ok(terms) => check(terms, subscriber.map(|s| &s.usage), resource, action),
        Err(verdict) => verdict,
    }
}

/// The clock of one decision: read once, and only when asked.
struct Now<F> {
    read: Option<F>,
    at: u64,
}

impl<F: FnOnce() -> u64> Now<F> {
    fn new(read: F) -> Self {
        Self {
            read: Some(read),
            at: 0,
        }
    }

    /// The time, read on the first call.
    fn get(&mut self) -> u64 {
        if let Some(read) = self.read.take() {
            self.at = read();
        }
        self.at
    }
}

/// What applies to one user, resource and action (already normalised): the effective limit,
/// the name and state the decision reports, and which count a `PATCH` is compared with.
///
/// [`terms`] computes it in one place for the decision ([`check`]) and for counted usage
/// (`Tally::of`), so that the two never disagree.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Terms<'a> {
    /// The plan the decision names (an add-on's name in the [`State::Addons`] state).
    pub(crate) plan: &'a Arc<str>,
    pub(crate) state: State<'a>,
    /// The plan's limit raised by the active add-ons (rules 5, 8 and 10 of [`decide`]).
    pub(crate) limit: Limit,
    /// Whether the action is a `PATCH` limited through the `update` limit, and so compared with
    /// (and counted on) the update count (rules 6, 9 and 10 of [`decide`]).
    pub(crate) patch_counts_updates: bool,
    /// The current period of a quota.
    pub(crate) window: Option<Window>,
}

/// The [`Terms`] for `action` (already normalised) on `resource`, or the denial when neither a
/// plan nor an add-on applies ([`Verdict::Expired`] or [`Verdict::NoPlan`]). Rules 1 to 4 and
/// 7 to 10 of [`decide`]; the clock is read at most once, for a plan that ends or an add-on
/// grant with bounds that could change the limit.
pub(crate) fn terms<'a>(
    catalog: &'a Catalog,
    subscriber: Option<&'a Subscriber>,
    now_ms: impl FnOnce() -> u64,
    policy: &Policy,
    resource: &str,
    action: &Action,
) -> Result<Terms<'a>, Verdict<'a>> {
    let mut now = Now::new(now_ms);
    let grants: &'a [AddonGrant] = subscriber.map_or(&[], |s| &s.addons);
    let mut addons = ActiveAddons {
        catalog,
        grants: grants.iter(),
        grace_ms: crate::time::millis(policy.grace_period),
        user: subscriber.and_then(|s| s.name.as_deref()).unwrap_or(""),
    };
    let mut terms = match applicable(catalog, subscriber, &mut now, policy) {
        Ok((plan, state)) => {
            // One lookup of the resource for both its limit and how it reads `patch`.
            let limits = plan.resource(resource);
            let mut limit = limits.map_or(Limit::Unlimited, |limits| limits.limit(action));
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
                },
                None => return Err(refusal),
            }
        }
    };
    // A quota's period: the clock is read for it (once, as for everything else).
    terms.window = terms.limit.period().map(|per| per.window(now.get()));
    Ok(terms)
}

/// The plan that applies to `subscriber` at `now_ms` (rules 1 to 4 of [`decide`]), or the
/// denial when none does: what [`entitlements`](crate::entitlements) report as the standing.
pub(crate) fn plan_at<'a>(
    catalog: &'a Catalog,
    subscriber: Option<&'a Subscriber>,
    now_ms: u64,
    policy: &Policy,
) -> Result<(&'a Plan, State<'a>), Verdict<'a>> {
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
struct ActiveAddons<'a, 'r> {
    catalog: &'a Catalog,
    grants: std::slice::Iter<'a, AddonGrant>,
    grace_ms: u64,
    user: &'r str,
}

impl<'a> ActiveAddons<'a, '_> {
    /// What `select` takes from the add-on of the next grant that it selects from, has a
    /// quantity above 0 and is active, with the grant's quantity. The clock is read only for a
    /// grant that passed the other tests and has bounds.
    fn next<T, F: FnOnce() -> u64>(
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

/// The plan that applies to `subscriber` (rules 1 to 4 of [`decide`]), or the denial when none
/// does ([`Verdict::Expired`] or [`Verdict::NoPlan`]).
fn applicable<'a, F: FnOnce() -> u64>(
    catalog: &'a Catalog,
    subscriber: Option<&'a Subscriber>,
    now: &mut Now<F>,
    policy: &Policy,
) -> Result<(&'a Plan, State<'a>), Verdict<'a>> {
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
    Err(match inactive {
        Inactive::Expired { plan, date } => Verdict::Expired { plan, date },
        Inactive::NoPlan => Verdict::NoPlan,
    })
}

/// The plan that applies before the default plan is considered.
enum Effective<'a> {
    Plan(&'a Plan, State<'a>),
    Inactive(Inactive<'a>),
}

/// Why no plan applies.
enum Inactive<'a> {
    NoPlan,
    Expired { plan: &'a Arc<str>, date: u64 },
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
        return Effective::Inactive(Inactive::NoPlan);
    };
    let user = subscriber.and_then(|s| s.name.as_deref()).unwrap_or("");
    let Some(plan) = catalog.plan(&assignment.plan) else {
        tracing::warn!(
            user,
            plan = &*assignment.plan,
            "the user's plan is not in the catalog; treated as no plan"
        );
        return Effective::Inactive(Inactive::NoPlan);
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
            return Effective::Inactive(Inactive::NoPlan);
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
    Effective::Inactive(Inactive::Expired {
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

/// Compares the usage with the limit of `terms`.
pub(crate) fn check<'a>(
    terms: Terms<'a>,
    usage: Option<&Usage>,
    resource: &str,
    action: &Action,
) -> Verdict<'a> {
    let usage = usage.map_or(0, |u| usage_of(&terms, u, resource, action));
    match terms.limit.maximum() {
        Some(maximum) if usage >= maximum => Verdict::LimitReached {
            plan: terms.plan,
            maximum,
            usage,
            window: terms.window,
        },
        _ => Verdict::Allow(Granted {
            plan: terms.plan,
            state: terms.state,
            limit: terms.limit,
            usage,
            window: terms.window,
        }),
    }
}

/// The usage counted against the limit on `action` (already normalised) of `resource`.
pub(crate) fn usage_of(terms: &Terms<'_>, usage: &Usage, resource: &str, action: &Action) -> u64 {
    if *action == Action::Patch && terms.patch_counts_updates {
        return usage
            .action_count(resource, &Action::Patch)
            .or_else(|| usage.action_count(resource, &Action::Update))
            .or_else(|| usage.count(resource))
            .unwrap_or(0);
    }
    usage.get(resource, action)
}

/// Whether a `PATCH` of a resource with these limits is limited by its `update` limit: they set
/// no `patch` limit but an `update` limit.
fn patch_uses_update_limit(limits: &ResourceLimits) -> bool {
    limits.get(&Action::Patch).is_none() && limits.get(&Action::Update).is_some()
}

impl PlanState {
    /// The state's name: `"active"`, `"trial"`, `"fallback"`, `"default"` or `"addons"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PlanState::Active => "active",
            PlanState::Trial => "trial",
            PlanState::Fallback { .. } => "fallback",
            PlanState::Default => "default",
            PlanState::Addons => "addons",
        }
    }
}

impl Serialize for PlanState {
    /// The state's name, as [`PlanState::as_str`] gives it.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Serialize for Allowed {
    /// `{"plan":"pro","state":"fallback","trial":"gold","item":"clients","action":"create",
    /// "limit":3,"usage":1,"remaining":2}`; `trial` only in the fallback state, `limit` and
    /// `remaining` `null` when unlimited. A quota's `limit` is `{"max":20,"per":"day"}`, and
    /// `resets` follows `remaining`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("plan", &*self.plan)?;
        map.serialize_entry("state", &self.state)?;
        if let PlanState::Fallback { trial } = &self.state {
            map.serialize_entry("trial", &**trial)?;
        }
        map.serialize_entry("item", &*self.resource)?;
        map.serialize_entry("action", &self.action)?;
        map.serialize_entry("limit", &self.limit)?;
        map.serialize_entry("usage", &self.usage)?;
        map.serialize_entry("remaining", &self.remaining())?;
        if let Some(resets) = self.resets() {
            map.serialize_entry("resets", &resets)?;
        }
        map.end()
    }
}

impl Denial {
    /// The `reason` of every denial's JSON body: `"subscription"`.
    pub const REASON: &'static str = "subscription";

    /// When the count of the quota that was reached resets, in milliseconds since the Unix
    /// epoch; `None` unless the limit is a [`Limit::Periodic`] quota.
    pub fn resets(&self) -> Option<u64> {
        match self {
            Denial::LimitReached {
                window: Some(window),
                ..
            } => Some(window.end()),
            _ => None,
        }
    }

    /// The plan the denial names: the expired plan or the plan whose limit was reached; `None`
    /// for [`Denial::NoPlan`].
    pub fn plan(&self) -> Option<&str> {
        match self {
            Denial::Expired { plan, .. } | Denial::LimitReached { plan, .. } => Some(plan),
            Denial::NoPlan { .. } => None,
        }
    }

    /// The JSON body of the denial, as its [`Serialize`] implementation writes it.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        match serde_json::to_vec(self) {
            Ok(json) => json,
            // Serialising a map of strings and numbers into memory does not fail; should it
            // ever, the client still gets the reason.
            Err(error) => {
                tracing::error!(%error, "could not serialize a denial");
                br#"{"reason":"subscription"}"#.to_vec()
            }
        }
    }
}

impl Serialize for Denial {
    /// The JSON body, keys in this order:
    ///
    /// * expired: `{"reason":"subscription","plan":"basic","expired":true,"date":1700000000000}`
    /// * no plan: `{"reason":"subscription","plan":null,"item":"clients","action":"create"}`
    /// * limit reached: `{"reason":"subscription","plan":"free","item":"clients",
    ///   "action":"create","maximum":3,"usage":3}`, and for a quota `"resets"` last, when its
    ///   count starts again (milliseconds since the Unix epoch)
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("reason", Denial::REASON)?;
        match self {
            Denial::Expired { plan, date } => {
                map.serialize_entry("plan", &**plan)?;
                map.serialize_entry("expired", &true)?;
                map.serialize_entry("date", date)?;
            }
            Denial::NoPlan { resource, action } => {
                map.serialize_entry("plan", &None::<&str>)?;
                map.serialize_entry("item", &**resource)?;
                map.serialize_entry("action", action)?;
            }
            Denial::LimitReached {
                plan,
                resource,
                action,
                maximum,
                usage,
                window,
            } => {
                map.serialize_entry("plan", &**plan)?;
                map.serialize_entry("item", &**resource)?;
                map.serialize_entry("action", action)?;
                map.serialize_entry("maximum", maximum)?;
                map.serialize_entry("usage", usage)?;
                if let Some(window) = window {
                    map.serialize_entry("resets", &window.end())?;
                }
            }
        }
        map.end()
    }
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

    #[test]
    fn grace_saturates() {
        let catalog = catalog(None);
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

    #[test]
    fn plan_states_and_allowed_serialise() {
        let allowed = Allowed {
            plan: Arc::from("free"),
            state: PlanState::Fallback {
                trial: Arc::from("pro"),
            },
            resource: Arc::from("clients"),
            action: Action::Create,
            limit: Limit::Limited(3),
            usage: 1,
            window: None,
        };
        assert_eq!(
            serde_json::to_string(&allowed).unwrap(),
            r#"{"plan":"free","state":"fallback","trial":"pro","item":"clients","action":"create","limit":3,"usage":1,"remaining":2}"#
        );
        let unlimited = Allowed {
            state: PlanState::Active,
            limit: Limit::Unlimited,
            ..allowed
        };
        assert_eq!(
            serde_json::to_string(&unlimited).unwrap(),
            r#"{"plan":"free","state":"active","item":"clients","action":"create","limit":null,"usage":1,"remaining":null}"#
        );
        assert_eq!(PlanState::Trial.as_str(), "trial");
        assert_eq!(PlanState::Default.as_str(), "default");
    }

    #[test]
    fn denial_bytes_and_plan() {
        let denial = Denial::NoPlan {
            resource: Arc::from("clients"),
            action: Action::custom("archive"),
        };
        assert_eq!(
            denial.to_json_bytes(),
            br#"{"reason":"subscription","plan":null,"item":"clients","action":"archive"}"#
        );
        assert_eq!(denial.plan(), None);
        let expired = Denial::Expired {
            plan: Arc::from("basic"),
            date: 1,
        };
        assert_eq!(expired.plan(), Some("basic"));
    }
}

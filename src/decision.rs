//! The decision: a pure function from a catalog, a subscriber record and the time to allow or deny.

use std::sync::Arc;
use std::time::Duration;

use crate::catalog::{Action, Catalog, Limit};
use crate::subscriber::Subscriber;

/// Settings of the decision that do not come from the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    grace: Duration,
    default_plan: Option<Arc<str>>,
}

impl Policy {
    /// No grace period and no default plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Time added to every expiry before a plan counts as expired (default zero).
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The plan that applies to a user without an active plan (default none: such users are
    /// denied every governed action).
    #[must_use]
    pub fn default_plan(mut self, plan: impl Into<Arc<str>>) -> Self {
        self.default_plan = Some(plan.into());
        self
    }

    /// The grace period.
    pub fn grace_period(&self) -> Duration {
        self.grace
    }

    /// The default plan's name.
    pub fn default_plan_name(&self) -> Option<&str> {
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
}

/// An allowed request: what a handler can read from the request extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    /// The plan that applied.
    pub plan: Arc<str>,
    /// How the user came to be on it.
    pub state: PlanState,
    /// The resource the request touches.
    pub resource: Arc<str>,
    /// The action the request performs.
    pub action: Action,
    /// The plan's limit on that action.
    pub limit: Limit,
    /// The user's usage counted against the limit.
    pub usage: u64,
}

impl Allowed {
    /// How many more the limit allows after this usage (`None` when unlimited).
    pub fn remaining(&self) -> Option<u64> {
        match self.limit {
            Limit::Unlimited => None,
            Limit::Limited(max) => Some(max.saturating_sub(self.usage)),
        }
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
    /// The plan's limit is reached.
    LimitReached {
        /// The plan that applied.
        plan: Arc<str>,
        /// The resource the request touches.
        resource: Arc<str>,
        /// The action the request performs.
        action: Action,
        /// The plan's limit.
        maximum: u64,
        /// The user's usage.
        usage: u64,
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
pub fn decide(
    catalog: &Catalog,
    subscriber: Option<&Subscriber>,
    now_ms: u64,
    resource: &Arc<str>,
    action: &Action,
    policy: &Policy,
) -> Decision {
    let _ = (catalog, subscriber, now_ms, resource, action, policy);
    todo!("decision")
}

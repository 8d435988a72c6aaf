//! [`MemoryStoreHook`]: entitlement events applied to a [`MemoryStore`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Effect, EntitlementEvent, EntitlementHook};
use crate::store::{BoxError, MemoryStore};
use crate::subscriber::Assignment;

/// An [`EntitlementHook`] that applies events to a [`MemoryStore`].
///
/// - A grant (`ACTIVATE` with an active or absent status) assigns the event's `plan` to the user,
///   creating the user when unknown and keeping their usage. `joined` is the event's
///   `purchased_at_ms`. No expiry is set by default: the sender announces the end of an
///   entitlement with a `DEACTIVATE`, and a renewal date can lag behind a late renewal. With
///   [`expiry_margin`](Self::expiry_margin), `expires` is `effective_next_renewal_at_ms` plus the
///   margin, a safety net for a `DEACTIVATE` that never arrives.
/// - A revoke (`DEACTIVATE`, or `ACTIVATE` with an inactive status) removes the user's plan, but
///   only when it is the event's plan (or the event names none): a late `DEACTIVATE` of the plan
///   a user upgraded from leaves the new plan alone. An unknown user is left unknown.
///
/// The event's `plan` is the billing platform's id; it names the catalog plan of the same name
/// unless [`map_plan`](Self::map_plan) says otherwise. A grant of a plan the store's catalog does
/// not know, or without a plan, is an error: the event is answered `500` and retried, rather than
/// acknowledged and lost.
#[derive(Clone)]
pub struct MemoryStoreHook {
    store: MemoryStore,
    plans: HashMap<String, Arc<str>>,
    expiry_margin: Option<Duration>,
}

impl MemoryStoreHook {
    /// A hook that applies events to `store` (a clone shares the store's state).
    pub fn new(store: MemoryStore) -> Self {
        Self {
            store,
            plans: HashMap::new(),
            expiry_margin: None,
        }
    }

    /// Maps the billing platform's plan id `billing_plan` to the catalog plan `plan`.
    #[must_use]
    pub fn map_plan(mut self, billing_plan: impl Into<String>, plan: impl Into<Arc<str>>) -> Self {
        self.plans.insert(billing_plan.into(), plan.into());
        self
    }

    /// Sets a granted plan's expiry to the event's `effective_next_renewal_at_ms` plus `margin`
    /// (no expiry by default, or when the event has no renewal date).
    #[must_use]
    pub fn expiry_margin(mut self, margin: Duration) -> Self {
        self.expiry_margin = Some(margin);
        self
    }

    /// The store the hook writes to.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    fn plan_name(&self, billing_plan: &str) -> Arc<str> {
        match self.plans.get(billing_plan) {
            Some(plan) => Arc::clone(plan),
            None => Arc::from(billing_plan),
        }
    }
}

impl fmt::Debug for MemoryStoreHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStoreHook")
            .field("plans", &self.plans)
            .field("expiry_margin", &self.expiry_margin)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl EntitlementHook for MemoryStoreHook {
    async fn apply(&self, event: &EntitlementEvent) -> Result<(), BoxError> {
        let Some(user) = event.user() else {
            return Ok(());
        };
        match event.effect() {
            Effect::Grant => {
                let Some(billing_plan) = event.plan.as_deref() else {
                    return Err(
                        format!("{} for user `{user}` names no plan", event.event_name).into(),
                    );
                };
                let plan = self.plan_name(billing_plan);
                if self.store.catalog().plan(&plan).is_none() {
                    return Err(format!(
                        "the catalog has no plan `{plan}` (billing plan `{billing_plan}`)"
                    )
                    .into());
                }
                let expires = match (self.expiry_margin, event.effective_next_renewal_at_ms) {
                    (Some(margin), Some(renewal)) => {
                        Some(renewal.saturating_add(crate::time::millis(margin)))
                    }
                    _ => None,
                };
                let assignment = Assignment {
                    plan,
                    trial: false,
                    joined: event.purchased_at_ms,
                    expires,
                };
                self.store.set_plan(user, Some(assignment));
            }
            Effect::Revoke => {
                let plan = event.plan.as_deref().map(|p| self.plan_name(p));
                self.store.remove_plan_if(user, |current| match &plan {
                    Some(plan) => current.plan == *plan,
                    None => true,
                });
            }
            _ => {}
        }
        Ok(())
    }
}

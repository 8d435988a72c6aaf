//! [`MemoryStoreHook`]: entitlement events applied to a [`MemoryStore`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Effect, EntitlementEvent, EntitlementHook, Replacement};
use crate::store::{BoxError, MemoryStore};
use crate::subscriber::{AddonGrant, Assignment};

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
/// - An add-on grant (`ADDON_ACTIVATE` with an active or absent status) grants the event's
///   `addon` with [`MemoryStore::grant_addon`]: it replaces the user's grants of that add-on, so
///   that a renewal or a redelivery leaves one grant. The grant starts at `purchased_at_ms`,
///   counts `quantity` units (1 when absent) and, unlike a plan, ends at
///   `effective_next_renewal_at_ms` (plus the [`expiry_margin`](Self::expiry_margin), if set)
///   when the event has one: a pack bought for a month or a promotion until Friday ends on its
///   date without a further event. The user is created when unknown.
/// - An add-on revoke (`ADDON_DEACTIVATE`, or `ADDON_ACTIVATE` with an inactive status) takes
///   every grant of the event's `addon` away. An unknown user is left unknown.
///
/// The event's `plan` is the billing platform's id; it names the catalog plan of the same name
/// unless [`map_plan`](Self::map_plan) says otherwise, and its `addon` names a catalog add-on in
/// the same way ([`map_addon`](Self::map_addon)). A grant of a plan or an add-on the store's
/// catalog does not know, or an event that names none, is an error: the event is answered `500`
/// and retried, rather than acknowledged and lost.
///
/// A [`Replacement`] (from the `stripe` feature's receiver) is applied with
/// [`Replacement::apply_to`] on the user's record, under the store's lock: the plan, the
/// source's add-on grants and the cycle anchor are replaced, the usage and other grants kept.
/// Its names are catalog names already (the receiver maps them), so `map_plan` and `map_addon`
/// do not apply; a plan or an add-on the catalog does not know is an error, and nothing
/// changes. A user is created when the rights grant something; rights that grant nothing leave
/// an unknown user unknown.
#[derive(Clone)]
pub struct MemoryStoreHook {
    store: MemoryStore,
    plans: HashMap<String, Arc<str>>,
    addons: HashMap<String, Arc<str>>,
    expiry_margin: Option<Duration>,
}

impl MemoryStoreHook {
    /// A hook that applies events to `store` (a clone shares the store's state).
    pub fn new(store: MemoryStore) -> Self {
        Self {
            store,
            plans: HashMap::new(),
            addons: HashMap::new(),
            expiry_margin: None,
        }
    }

    /// Maps the billing platform's add-on id `billing_addon` to the catalog add-on `addon`.
    #[must_use]
    pub fn map_addon(
        mut self,
        billing_addon: impl Into<String>,
        addon: impl Into<Arc<str>>,
    ) -> Self {
        self.addons.insert(billing_addon.into(), addon.into());
        self
    }

    /// Maps the billing platform's plan id `billing_plan` to the catalog plan `plan`.
    #[must_use]
    pub fn map_plan(mut self, billing_plan: impl Into<String>, plan: impl Into<Arc<str>>) -> Self {
        self.plans.insert(billing_plan.into(), plan.into());
        self
    }

    /// Sets a granted plan's expiry to the event's `effective_next_renewal_at_ms` plus `margin`
    /// (no expiry by default, or when the event has no renewal date). An add-on grant ends at
    /// that date in any case; the margin is added to it too.
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

    fn addon_name(&self, billing_addon: &str) -> Arc<str> {
        match self.addons.get(billing_addon) {
            Some(addon) => Arc::clone(addon),
            None => Arc::from(billing_addon),
        }
    }

    /// The event's add-on, mapped; an error when it names none.
    fn addon_of(&self, event: &EntitlementEvent, user: &str) -> Result<Arc<str>, BoxError> {
        match event.addon.as_deref() {
            Some(addon) => Ok(self.addon_name(addon)),
            None => Err(format!("{} for user `{user}` names no add-on", event.event_name).into()),
        }
    }
}

impl fmt::Debug for MemoryStoreHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStoreHook")
            .field("plans", &self.plans)
            .field("addons", &self.addons)
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
            Effect::GrantAddon => {
                let addon = self.addon_of(event, user)?;
                let margin = self.expiry_margin.map_or(0, crate::time::millis);
                let grant = AddonGrant {
                    name: addon,
                    starts: event.purchased_at_ms,
                    expires: event
                        .effective_next_renewal_at_ms
                        .map(|end| end.saturating_add(margin)),
                    quantity: event.quantity.unwrap_or(1),
                    source: None,
                };
                if let Err(unknown) = self.store.grant_addon(user, grant) {
                    let billing = event.addon.as_deref().unwrap_or_default();
                    return Err(format!("{unknown} (billing add-on `{billing}`)").into());
                }
            }
            Effect::RevokeAddon => {
                let addon = self.addon_of(event, user)?;
                self.store.revoke_addon(user, &addon);
            }
            _ => {}
        }
        Ok(())
    }

    async fn replace(&self, rights: &Replacement) -> Result<(), BoxError> {
        let catalog = self.store.catalog();
        if let Some(assignment) = &rights.plan {
            if catalog.plan(&assignment.plan).is_none() {
                return Err(format!(
                    "the catalog has no plan `{}` (rights of `{}` from {})",
                    assignment.plan, rights.user, rights.source
                )
                .into());
            }
        }
        if let Some(grant) = rights
            .addons
            .iter()
            .find(|grant| catalog.addon(&grant.name).is_none())
        {
            return Err(format!(
                "the catalog has no add-on `{}` (rights of `{}` from {})",
                grant.name, rights.user, rights.source
            )
            .into());
        }
        if rights.grants_anything() || self.store.subscriber(&rights.user).is_some() {
            self.store
                .update_user(&rights.user, |subscriber| rights.apply_to(subscriber));
        }
        Ok(())
    }
}

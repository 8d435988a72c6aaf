//! From a subscription to the rights it grants: the mapping, the status, the periods.

use std::time::Duration;

use super::config::Target;
use super::{StripeConfig, StripeEvent, StripeEventKind, SubscriptionItem, SubscriptionStatus};
use crate::subscriber::{AddonGrant, Assignment};
use crate::time::millis;
use crate::webhook::Replacement;

/// The source that marks the add-on grants of the Stripe receiver.
pub const SOURCE: &str = "stripe";

impl StripeConfig {
    /// The rights `event`'s subscription grants `user`, as the receiver passes them to
    /// [`EntitlementHook::replace`](crate::webhook::EntitlementHook::replace); `None` when the
    /// event carries no subscription or none of its items is mapped (the receiver then
    /// acknowledges the event without applying it).
    ///
    /// Each item is mapped by its price id, else its price's `lookup_key`, else its product id.
    /// The first item mapped to a plan gives the plan; each item mapped to an add-on grants it,
    /// `quantity` units (1 when absent). Then by status (see the [module docs](super) for the
    /// table): `trialing` grants the plan as a trial until `trial_end`; `active` until
    /// `current_period_end` plus the [grace](super::StripeConfigBuilder::grace); `past_due`
    /// until `current_period_end` plus the
    /// [past-due grace](super::StripeConfigBuilder::past_due_grace); every other status, and a
    /// `customer.subscription.deleted` event, grants nothing. An item's periods are read from
    /// the item (API versions from 2025-03-31), else from the subscription. Add-ons end when
    /// the plan would. The rights' `cycle_anchor` is the subscription's
    /// `billing_cycle_anchor` when it is not after the current period's start (so that a cycle
    /// anchored on the 31st runs to the 28th, then to the 31st, as Stripe bills), else the
    /// current period's start.
    ///
    /// ```
    /// use tower_plans::stripe::{StripeConfig, StripeEvent};
    ///
    /// let config = StripeConfig::builder()
    ///     .secret("whsec_test")
    ///     .plan("pro_monthly", "pro") // a lookup key
    ///     .addon("price_seat", "seats")
    ///     .build()?;
    /// let event = StripeEvent::from_slice(br#"{
    ///     "id": "evt_1", "type": "customer.subscription.updated", "created": 1714000000,
    ///     "data": {"object": {"id": "sub_1", "status": "active", "customer": "cus_1",
    ///         "billing_cycle_anchor": 1711929600,
    ///         "items": {"data": [
    ///             {"price": {"id": "price_1", "lookup_key": "pro_monthly"}, "quantity": 1,
    ///              "current_period_start": 1711929600, "current_period_end": 1714521600},
    ///             {"price": {"id": "price_seat"}, "quantity": 4,
    ///              "current_period_start": 1711929600, "current_period_end": 1714521600}]}}}}"#)?;
    /// let rights = config.replacement(&event, "john").expect("mapped");
    /// let plan = rights.plan.as_ref().expect("active");
    /// assert_eq!(&*plan.plan, "pro");
    /// // The period's end, plus the default grace of one day.
    /// assert_eq!(plan.expires, Some((1_714_521_600 + 86_400) * 1000));
    /// assert_eq!(rights.addons[0].quantity, 4);
    /// assert_eq!(rights.addons[0].source.as_deref(), Some("stripe"));
    /// assert_eq!(rights.cycle_anchor, Some(1_711_929_600_000));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn replacement(&self, event: &StripeEvent, user: impl Into<String>) -> Option<Replacement> {
        let subscription = event.subscription.as_ref()?;
        let mapped: Vec<(&SubscriptionItem, &Target)> = subscription
            .items
            .iter()
            .filter_map(|item| self.target(item).map(|target| (item, target)))
            .collect();
        if mapped.is_empty() {
            return None;
        }
        if subscription.more_items {
            tracing::warn!(
                subscription = %subscription.id,
                "the Stripe event lists only some of the subscription's items; \
                 the others grant nothing"
            );
        }
        let created = seconds_to_ms(event.created);
        let mut rights = Replacement::new(user, SOURCE);
        rights.event_id = Some(event.id.clone());
        rights.event_created = Some(created);
        rights.subscription = Some(subscription.id.clone());
        rights.customer = subscription.customer.clone();
        rights.status = Some(subscription.status.as_str().to_owned());

        let status = &subscription.status;
        let granting = matches!(
            status,
            SubscriptionStatus::Trialing | SubscriptionStatus::Active | SubscriptionStatus::PastDue
        );
        if event.kind() == StripeEventKind::Deleted || !granting {
            return Some(rights);
        }

        let period_start = |item: &SubscriptionItem| {
            item.current_period_start
                .or(subscription.current_period_start)
        };
        let period_end =
            |item: &SubscriptionItem| item.current_period_end.or(subscription.current_period_end);
        let plus =
            |seconds: u64, grace: Duration| seconds_to_ms(seconds).saturating_add(millis(grace));
        // When an item's rights end, by status.
        let ends = |item: &SubscriptionItem| match status {
            SubscriptionStatus::Trialing => subscription
                .trial_end
                .or_else(|| period_end(item))
                .map(seconds_to_ms),
            SubscriptionStatus::PastDue => Some(plus(
                period_end(item).unwrap_or(event.created),
                self.inner.past_due_grace,
            )),
            _ => period_end(item).map(|end| plus(end, self.inner.grace)),
        };

        let mut plans = mapped.iter().filter_map(|(item, target)| match target {
            Target::Plan(plan) => Some((*item, plan)),
            Target::Addon(_) => None,
        });
        let plan_item = plans.next();
        if plans.next().is_some() {
            tracing::warn!(
                subscription = %subscription.id,
                "several items of the Stripe subscription map to a plan; the first one counts"
            );
        }
        if let Some((item, plan)) = plan_item {
            let mut assignment = Assignment::new(plan.clone());
            assignment.expires = ends(item);
            if *status == SubscriptionStatus::Trialing {
                assignment.trial = true;
                assignment.joined = subscription
                    .trial_start
                    .or(subscription.start_date)
                    .or_else(|| period_start(item))
                    .map(seconds_to_ms);
                if assignment.joined.is_none() && assignment.expires.is_none() {
                    // A trial needs one of them; the event's time is the best guess.
                    assignment.joined = Some(created);
                }
            } else {
                assignment.joined = subscription
                    .start_date
                    .or_else(|| period_start(item))
                    .map(seconds_to_ms);
            }
            rights = rights.plan(assignment);
        }
        for (item, target) in &mapped {
            if let Target::Addon(addon) = target {
                let mut grant = AddonGrant::new(addon.clone()).quantity(item.quantity.unwrap_or(1));
                grant.expires = ends(item);
                rights = rights.addon(grant);
            }
        }

        // The plan's item, else the first mapped one (there is one: `mapped` is not empty).
        let anchor_item = plan_item
            .map(|(item, _)| item)
            .or_else(|| mapped.first().map(|(item, _)| *item));
        let start = anchor_item.and_then(period_start);
        let anchor = match (subscription.billing_cycle_anchor, start) {
            (Some(anchor), Some(start)) if anchor <= start => Some(anchor),
            (_, Some(start)) => Some(start),
            (anchor, None) => anchor,
        };
        rights.cycle_anchor = anchor.map(seconds_to_ms);
        Some(rights)
    }

    /// What an item is mapped to: by price id, else lookup key, else product id.
    fn target(&self, item: &SubscriptionItem) -> Option<&Target> {
        let mapping = &self.inner.mapping;
        [&item.price, &item.lookup_key, &item.product]
            .into_iter()
            .flatten()
            .find_map(|key| mapping.get(key.as_str()))
    }
}

/// Stripe's seconds as the record's milliseconds, saturating.
fn seconds_to_ms(seconds: u64) -> u64 {
    seconds.saturating_mul(1000)
}

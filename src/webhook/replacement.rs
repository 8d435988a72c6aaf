//! [`Replacement`]: a user's whole rights from one billing source.

use std::sync::Arc;

use crate::subscriber::{AddonGrant, Assignment, Subscriber};

/// A user's complete rights as one billing source (such as Stripe) sees them, to replace
/// whatever that source granted before: the plan assignment, the add-on grants marked with the
/// source, and the billing cycle's anchor.
///
/// A receiver builds one for each event it applies (the `stripe` feature's receiver does, with
/// the source `"stripe"`) and passes it to [`EntitlementHook::replace`](super::EntitlementHook::replace).
/// [`apply_to`](Self::apply_to) is the replacement on a [`Subscriber`] record, for hooks that
/// read and write whole records:
///
/// - the plan assignment becomes [`plan`](Self::plan) (`None` removes it), whoever set it
///   before;
/// - the add-on grants whose [`source`](AddonGrant::source) is this source are replaced by
///   [`addons`](Self::addons), each marked with the source; grants with another source, or
///   none, are kept;
/// - the [`cycle_anchor`](Subscriber::cycle_anchor) becomes [`cycle_anchor`](Self::cycle_anchor);
/// - usage is kept.
///
/// ```
/// use tower_plans::subscriber::{AddonGrant, Assignment};
/// use tower_plans::webhook::Replacement;
/// use tower_plans::Subscriber;
///
/// let mut john = Subscriber::new()
///     .with_plan(Assignment::new("free"))
///     .with_addon(AddonGrant::new("more-clients").source("stripe"))
///     .with_addon(AddonGrant::new("promo")) // granted by an admin: kept
///     .with_usage("clients", 3);
/// let rights = Replacement::new("john", "stripe")
///     .plan(Assignment::new("pro").expires_at(1_704_067_200_000))
///     .addon(AddonGrant::new("seats").quantity(5))
///     .cycle_anchor(1_701_388_800_000);
/// rights.apply_to(&mut john);
/// assert_eq!(john.plan_name(), Some("pro"));
/// assert_eq!(john.addons, [
///     AddonGrant::new("promo"),
///     AddonGrant::new("seats").quantity(5).source("stripe"),
/// ]);
/// assert_eq!(john.cycle_anchor, Some(1_701_388_800_000));
/// assert_eq!(john.usage.count("clients"), Some(3));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Replacement {
    /// The user whose rights these are.
    pub user: String,
    /// The source the rights come from (`"stripe"`), which marks its add-on grants.
    pub source: Arc<str>,
    /// The plan assignment; `None`: no plan.
    pub plan: Option<Assignment>,
    /// The add-on grants, each marked with [`source`](Self::source).
    pub addons: Vec<AddonGrant>,
    /// When the billing cycle started, in milliseconds since the Unix epoch.
    pub cycle_anchor: Option<u64>,
    /// The id of the event that carried the rights (Stripe's `evt_...`).
    pub event_id: Option<String>,
    /// When the source created that event, in milliseconds since the Unix epoch. A hook that
    /// stores it per [`subscription`](Self::subscription) can refuse an older event across
    /// restarts and instances.
    pub event_created: Option<u64>,
    /// The source's subscription the rights come from (Stripe's `sub_...`).
    pub subscription: Option<String>,
    /// The source's customer (Stripe's `cus_...`).
    pub customer: Option<String>,
    /// The subscription's status at the source (Stripe's `active`, `past_due`, ...).
    pub status: Option<String>,
}

impl Replacement {
    /// No rights at all from `source` for `user`: no plan, no add-ons, no anchor.
    pub fn new(user: impl Into<String>, source: impl Into<Arc<str>>) -> Self {
        Self {
            user: user.into(),
            source: source.into(),
            plan: None,
            addons: Vec::new(),
            cycle_anchor: None,
            event_id: None,
            event_created: None,
            subscription: None,
            customer: None,
            status: None,
        }
    }

    /// Sets the plan assignment, builder style.
    #[must_use]
    pub fn plan(mut self, assignment: Assignment) -> Self {
        self.plan = Some(assignment);
        self
    }

    /// Adds an add-on grant, marked with the source, builder style.
    #[must_use]
    pub fn addon(mut self, grant: AddonGrant) -> Self {
        let source = Arc::clone(&self.source);
        self.addons.push(grant.source(source));
        self
    }

    /// Sets the billing cycle's anchor (ms since the Unix epoch), builder style.
    #[must_use]
    pub fn cycle_anchor(mut self, ms: u64) -> Self {
        self.cycle_anchor = Some(ms);
        self
    }

    /// Whether the rights grant anything: a plan or an add-on.
    pub fn grants_anything(&self) -> bool {
        self.plan.is_some() || !self.addons.is_empty()
    }

    /// Replaces what the source granted in `subscriber` with these rights (see the
    /// [type docs](Self)); the usage and the grants of other sources are kept.
    pub fn apply_to(&self, subscriber: &mut Subscriber) {
        subscriber.assignment = self.plan.clone();
        subscriber
            .addons
            .retain(|grant| grant.source.as_deref() != Some(&*self.source));
        subscriber.addons.extend(self.addons.iter().map(|grant| {
            let mut grant = grant.clone();
            grant.source = Some(Arc::clone(&self.source));
            grant
        }));
        subscriber.cycle_anchor = self.cycle_anchor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_without_rights_takes_the_sources_rights_away() {
        let mut record = Subscriber::new()
            .with_plan(Assignment::new("pro"))
            .with_addon(AddonGrant::new("seats").quantity(3).source("stripe"))
            .with_addon(AddonGrant::new("seats").source("admin"))
            .with_addon(AddonGrant::new("pack"))
            .with_cycle_anchor(5);
        let none = Replacement::new("u", "stripe");
        assert!(!none.grants_anything());
        none.apply_to(&mut record);
        assert_eq!(record.assignment, None);
        assert_eq!(
            record.addons,
            [
                AddonGrant::new("seats").source("admin"),
                AddonGrant::new("pack")
            ]
        );
        assert_eq!(record.cycle_anchor, None);
    }

    #[test]
    fn grants_are_marked_with_the_source_however_they_were_added() {
        let mut rights = Replacement::new("u", "stripe").addon(AddonGrant::new("a").source("x"));
        rights.addons.push(AddonGrant::new("b"));
        assert!(rights.grants_anything());
        let mut record = Subscriber::new();
        rights.apply_to(&mut record);
        assert_eq!(
            record.addons,
            [
                AddonGrant::new("a").source("stripe"),
                AddonGrant::new("b").source("stripe")
            ]
        );
        // Applied twice: the same record, not twice the grants.
        let once = record.clone();
        rights.apply_to(&mut record);
        assert_eq!(record, once);
    }
}

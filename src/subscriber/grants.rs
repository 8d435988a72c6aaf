//! What a record grants a user beyond the plan: [add-ons](AddonGrant), and one-off top-ups of
//! credits ([`CreditGrant`]).

use std::sync::Arc;

/// One grant of an [add-on](crate::catalog::Addon) to a user: which add-on, from when, until
/// when, and how many units.
///
/// The grant is active from `starts` (inclusive; `None`: always started) until `expires` plus
/// the policy's grace period (exclusive; `None`: never ends), the same rule as a plan's expiry.
/// While it is active, every limit the add-on sets is added `quantity` times to the user's
/// plan. A quantity of 0 grants nothing. A user may hold several grants, also of one add-on
/// (each counts while it is active). See [`decide`](crate::decision::decide).
///
/// ```
/// use tower_plans::subscriber::AddonGrant;
///
/// // Two "10 more clients" packs for the month of December 2023.
/// let grant = AddonGrant::new("more-clients")
///     .starts_at(1_701_388_800_000)
///     .expires_at(1_704_067_200_000)
///     .quantity(2);
/// assert_eq!(grant.starts, Some(1_701_388_800_000));
/// assert!(grant.is_active_at(1_701_388_800_000, 0));
/// assert!(!grant.is_active_at(1_704_067_200_000, 0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddonGrant {
    /// The add-on's name in the catalog.
    pub name: Arc<str>,
    /// When the grant starts, in milliseconds since the Unix epoch; `None`: always started.
    pub starts: Option<u64>,
    /// When the grant ends (before grace), in milliseconds since the Unix epoch; `None`: never.
    pub expires: Option<u64>,
    /// How many units of the add-on the user holds (default 1; 0 grants nothing).
    pub quantity: u64,
    /// Who granted it (JSON `source`), such as `"stripe"` for the grants the Stripe receiver
    /// replaces; `None` for a grant made by other means. The decision does not read it.
    pub source: Option<Arc<str>>,
}

impl AddonGrant {
    /// One unit of the add-on `name`, always active: no start, no end.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            starts: None,
            expires: None,
            quantity: 1,
            source: None,
        }
    }

    /// Sets when the grant starts (ms since the Unix epoch, inclusive), builder style.
    #[must_use]
    pub fn starts_at(mut self, ms: u64) -> Self {
        self.starts = Some(ms);
        self
    }

    /// Sets when the grant ends (ms since the Unix epoch, exclusive, before grace), builder
    /// style.
    #[must_use]
    pub fn expires_at(mut self, ms: u64) -> Self {
        self.expires = Some(ms);
        self
    }

    /// Sets how many units the user holds, builder style (0 grants nothing).
    #[must_use]
    pub fn quantity(mut self, quantity: u64) -> Self {
        self.quantity = quantity;
        self
    }

    /// Sets who granted it (such as `"stripe"`), builder style.
    #[must_use]
    pub fn source(mut self, source: impl Into<Arc<str>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Whether the grant counts at `now_ms` with `grace_ms` of grace: `starts <= now_ms <
    /// expires + grace` (saturating), with a missing bound left out. The quantity is not
    /// considered. Does not read the clock; [`decide`](crate::decision::decide) uses this rule.
    pub fn is_active_at(&self, now_ms: u64, grace_ms: u64) -> bool {
        self.starts.is_none_or(|starts| starts <= now_ms)
            && self
                .expires
                .is_none_or(|expires| now_ms < expires.saturating_add(grace_ms))
    }

    /// Whether [`is_active_at`](Self::is_active_at) needs the time: the grant has a bound.
    pub(crate) fn is_timed(&self) -> bool {
        self.starts.is_some() || self.expires.is_some()
    }
}

/// A one-off grant of credits to a user (a top-up): units of a credit pool that do not renew.
///
/// A grant is spent only once the period's allowance of the pool (the plan's, raised by the
/// active add-ons) is used up, the grant that expires soonest first. What it spent does not come
/// back at a new period, and when it expires it is gone with what it had left. It counts from
/// `starts` (inclusive; `None`: always started) until `expires` (exclusive; `None`: never).
///
/// ```
/// use tower_plans::subscriber::CreditGrant;
///
/// let top_up = CreditGrant::new("g1", "ai", 500).expires_at(1_735_689_600_000);
/// assert!(top_up.is_active_at(1_700_000_000_000));
/// assert!(!top_up.is_active_at(1_735_689_600_000));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditGrant {
    /// The grant's id, unique among the user's grants: its spending is counted under it.
    pub id: Arc<str>,
    /// The pool it tops up.
    pub pool: Arc<str>,
    /// How many units it grants.
    pub amount: u64,
    /// When it starts, in milliseconds since the Unix epoch; `None`: always started.
    pub starts: Option<u64>,
    /// When it ends, in milliseconds since the Unix epoch; `None`: never.
    pub expires: Option<u64>,
}

impl CreditGrant {
    /// `amount` units of `pool`, named `id`, with no start and no end.
    pub fn new(id: impl Into<Arc<str>>, pool: impl Into<Arc<str>>, amount: u64) -> Self {
        Self {
            id: id.into(),
            pool: pool.into(),
            amount,
            starts: None,
            expires: None,
        }
    }

    /// Sets when the grant starts (ms since the Unix epoch, inclusive), builder style.
    #[must_use]
    pub fn starts_at(mut self, ms: u64) -> Self {
        self.starts = Some(ms);
        self
    }

    /// Sets when the grant ends (ms since the Unix epoch, exclusive), builder style.
    #[must_use]
    pub fn expires_at(mut self, ms: u64) -> Self {
        self.expires = Some(ms);
        self
    }

    /// Whether the grant counts at `now_ms`: `starts <= now_ms < expires`, with a missing bound
    /// left out.
    pub fn is_active_at(&self, now_ms: u64) -> bool {
        self.starts.is_none_or(|starts| starts <= now_ms)
            && self.expires.is_none_or(|expires| now_ms < expires)
    }
}

//! [`StripeConfig`] and its builder.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::lookup::{CustomerLookup, LookupFn};
use crate::error::ConfigError;
use crate::store::BoxError;
use crate::webhook::verify::Secrets;
use crate::webhook::{Invalidate, DEFAULT_BODY_LIMIT, DEFAULT_DEDUP_CAPACITY};

/// How far `t` may be from the receiver's clock, by default: 300 seconds, as Stripe's libraries.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// What is added to an active subscription's `current_period_end`, by default: one day, so that
/// a renewal's event may arrive late (Stripe retries failed deliveries) without a gap.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 60 * 60);
/// What is added to a past-due subscription's `current_period_end`, by default: nothing.
pub const DEFAULT_PAST_DUE_GRACE: Duration = Duration::ZERO;
/// How many subscriptions the receiver remembers the last applied event of, by default.
pub const DEFAULT_ORDER_CAPACITY: u64 = 10_000;

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// What a mapped price, lookup key or product grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Plan(Arc<str>),
    Addon(Arc<str>),
}

/// How a [`StripeReceiver`](super::StripeReceiver) authenticates events and turns
/// subscriptions into rights.
///
/// Built with [`StripeConfig::builder`]; cloning is a pointer copy. The `Debug` output never
/// shows the secrets.
#[derive(Clone)]
pub struct StripeConfig {
    pub(crate) inner: Arc<ConfigInner>,
}

pub(crate) struct ConfigInner {
    pub(crate) secrets: Secrets,
    pub(crate) tolerance: Duration,
    pub(crate) mapping: HashMap<String, Target>,
    pub(crate) grace: Duration,
    pub(crate) past_due_grace: Duration,
    pub(crate) lookup: Option<Arc<dyn CustomerLookup>>,
    pub(crate) invalidator: Option<Arc<dyn Invalidate>>,
    pub(crate) dedup_capacity: u64,
    pub(crate) order_capacity: u64,
    pub(crate) body_limit: usize,
    pub(crate) clock: Clock,
}

/// Builds a [`StripeConfig`]; see [`StripeConfig::builder`].
#[must_use]
pub struct StripeConfigBuilder {
    secrets: Vec<Vec<u8>>,
    tolerance: Duration,
    mapping: Vec<(String, Target)>,
    grace: Duration,
    past_due_grace: Duration,
    lookup: Option<Arc<dyn CustomerLookup>>,
    invalidator: Option<Arc<dyn Invalidate>>,
    dedup_capacity: u64,
    order_capacity: u64,
    body_limit: usize,
    clock: Clock,
}

impl StripeConfig {
    /// A builder with the defaults: a tolerance of 300 s, a grace of one day after an active
    /// subscription's period and none after a past-due one's, no customer lookup, no
    /// invalidator, 10 000 remembered event ids and subscriptions, a 1 MiB body limit and the
    /// system clock. At least one secret and one mapped price must be added.
    pub fn builder() -> StripeConfigBuilder {
        StripeConfigBuilder {
            secrets: Vec::new(),
            tolerance: DEFAULT_TOLERANCE,
            mapping: Vec::new(),
            grace: DEFAULT_GRACE,
            past_due_grace: DEFAULT_PAST_DUE_GRACE,
            lookup: None,
            invalidator: None,
            dedup_capacity: DEFAULT_DEDUP_CAPACITY,
            order_capacity: DEFAULT_ORDER_CAPACITY,
            body_limit: DEFAULT_BODY_LIMIT,
            clock: Arc::new(SystemTime::now),
        }
    }

    /// How far `t` may be from the clock, in either direction.
    pub fn tolerance(&self) -> Duration {
        self.inner.tolerance
    }

    /// What is added to an active subscription's `current_period_end`.
    pub fn grace(&self) -> Duration {
        self.inner.grace
    }

    /// What is added to a past-due subscription's `current_period_end`.
    pub fn past_due_grace(&self) -> Duration {
        self.inner.past_due_grace
    }

    /// The plan a price id, lookup key or product id is mapped to, if it names one.
    pub fn plan_of(&self, key: &str) -> Option<&str> {
        match self.inner.mapping.get(key) {
            Some(Target::Plan(plan)) => Some(plan),
            _ => None,
        }
    }

    /// The add-on a price id, lookup key or product id is mapped to, if it names one.
    pub fn addon_of(&self, key: &str) -> Option<&str> {
        match self.inner.mapping.get(key) {
            Some(Target::Addon(addon)) => Some(addon),
            _ => None,
        }
    }

    /// The largest request body read, in bytes.
    pub fn body_limit(&self) -> usize {
        self.inner.body_limit
    }

    /// How many applied event ids are remembered.
    pub fn dedup_capacity(&self) -> u64 {
        self.inner.dedup_capacity
    }

    /// How many subscriptions the last applied event is remembered of.
    pub fn order_capacity(&self) -> u64 {
        self.inner.order_capacity
    }

    /// Where applied events invalidate their user, if configured.
    pub fn invalidator(&self) -> Option<&dyn Invalidate> {
        self.inner.invalidator.as_deref()
    }

    pub(crate) fn now(&self) -> SystemTime {
        (self.inner.clock)()
    }
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("StripeConfig")
            .field(
                "secrets",
                &format_args!("[{} redacted]", inner.secrets.len()),
            )
            .field("tolerance", &inner.tolerance)
            .field("mapping", &inner.mapping)
            .field("grace", &inner.grace)
            .field("past_due_grace", &inner.past_due_grace)
            .field("customer_lookup", &inner.lookup.is_some())
            .field("invalidator", &inner.invalidator.is_some())
            .field("dedup_capacity", &inner.dedup_capacity)
            .field("order_capacity", &inner.order_capacity)
            .field("body_limit", &inner.body_limit)
            .finish_non_exhaustive()
    }
}

impl StripeConfigBuilder {
    /// Adds an endpoint secret (`whsec_...`). Several may be active at once: while Stripe rolls
    /// an endpoint's secret it signs with both, and a request verifies when one of its `v1`
    /// signatures matches one of the secrets. The first one added is the one
    /// [`StripeConfig::sign`] uses.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secrets.push(secret.as_ref().to_vec());
        self
    }

    /// How far `t` may be from the clock, in the past or the future (default 300 s). A captured
    /// request cannot be replayed later.
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Maps a price id (`price_...`), a price's `lookup_key` or a product id (`prod_...`) to the
    /// catalog plan `plan`. An item is mapped by its price id, else its lookup key, else its
    /// product. Mapping a key again replaces what it was mapped to.
    pub fn plan(mut self, key: impl Into<String>, plan: impl Into<Arc<str>>) -> Self {
        self.mapping.push((key.into(), Target::Plan(plan.into())));
        self
    }

    /// Maps a price id, a lookup key or a product id to the catalog add-on `addon`; the item's
    /// `quantity` (1 when absent) is the grant's quantity, so a per-seat price grants one unit
    /// per seat.
    pub fn addon(mut self, key: impl Into<String>, addon: impl Into<Arc<str>>) -> Self {
        self.mapping.push((key.into(), Target::Addon(addon.into())));
        self
    }

    /// What is added to an active subscription's `current_period_end` (default one day).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// What is added to a past-due subscription's `current_period_end` (default none): the
    /// plan is kept while Stripe retries the payment, until then.
    pub fn past_due_grace(mut self, grace: Duration) -> Self {
        self.past_due_grace = grace;
        self
    }

    /// Finds the user of a subscription without `metadata.user_id`, by its customer.
    pub fn customer_lookup(mut self, lookup: impl CustomerLookup) -> Self {
        self.lookup = Some(Arc::new(lookup));
        self
    }

    /// Finds the user of a subscription without `metadata.user_id` with an async closure from
    /// the customer id (`cus_...`) to the user id: `Ok(None)` when the customer has no user
    /// (the event is acknowledged and ignored), an error when it cannot tell now (the event is
    /// answered `500` and Stripe retries).
    pub fn customer_lookup_fn<F, Fut>(self, lookup: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<String>, BoxError>> + Send + 'static,
    {
        self.customer_lookup(LookupFn::new(lookup))
    }

    /// Where an applied event invalidates its user: the layer's
    /// [`Invalidator`](crate::Invalidator), or with the `redis` feature a
    /// `redis::RedisInvalidator`, which reaches every instance.
    pub fn invalidator(mut self, invalidator: impl Invalidate) -> Self {
        self.invalidator = Some(Arc::new(invalidator));
        self
    }

    /// How many applied event ids are remembered (default 10 000; `0` remembers none).
    pub fn dedup_capacity(mut self, capacity: u64) -> Self {
        self.dedup_capacity = capacity;
        self
    }

    /// How many subscriptions the last applied event is remembered of, to refuse an older one
    /// (default 10 000). A subscription forgotten (the least used, beyond the capacity) accepts
    /// its next event whatever its age.
    pub fn order_capacity(mut self, capacity: u64) -> Self {
        self.order_capacity = capacity;
        self
    }

    /// The largest body read, in bytes (default 1 MiB); a larger one is answered `413`.
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// The clock `t` is checked against (default [`SystemTime::now`]); for tests.
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`ConfigError::InvalidOption`] when no secret was added or one is empty, when nothing
    /// is mapped, or when a mapped key or name is empty.
    pub fn build(self) -> Result<StripeConfig, ConfigError> {
        let secrets = Secrets::new(&self.secrets)?;
        if self.mapping.is_empty() {
            return Err(ConfigError::InvalidOption {
                option: "plan",
                reason: "map at least one price, lookup key or product to a plan or an add-on"
                    .to_owned(),
            });
        }
        let mut mapping = HashMap::with_capacity(self.mapping.len());
        for (key, target) in self.mapping {
            let (option, name) = match &target {
                Target::Plan(name) => ("plan", name),
                Target::Addon(name) => ("addon", name),
            };
            if key.is_empty() || name.is_empty() {
                return Err(ConfigError::InvalidOption {
                    option,
                    reason: format!("`{key}` -> `{name}`: neither may be empty"),
                });
            }
            mapping.insert(key, target);
        }
        Ok(StripeConfig {
            inner: Arc::new(ConfigInner {
                secrets,
                tolerance: self.tolerance,
                mapping,
                grace: self.grace,
                past_due_grace: self.past_due_grace,
                lookup: self.lookup,
                invalidator: self.invalidator,
                dedup_capacity: self.dedup_capacity,
                order_capacity: self.order_capacity,
                body_limit: self.body_limit,
                clock: self.clock,
            }),
        })
    }
}

impl fmt::Debug for StripeConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfigBuilder")
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .field("tolerance", &self.tolerance)
            .field("mapping", &self.mapping)
            .field("grace", &self.grace)
            .field("past_due_grace", &self.past_due_grace)
            .field("customer_lookup", &self.lookup.is_some())
            .field("invalidator", &self.invalidator.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_checks_secrets_and_mapping() {
        let error = StripeConfig::builder()
            .plan("p", "pro")
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("secret"), "{error}");
        let error = StripeConfig::builder().secret("s").build().unwrap_err();
        assert!(error.to_string().contains("map at least one"), "{error}");
        let error = StripeConfig::builder()
            .secret("s")
            .addon("", "seats")
            .build()
            .unwrap_err();
        assert_eq!(
            error,
            ConfigError::InvalidOption {
                option: "addon",
                reason: "`` -> `seats`: neither may be empty".to_owned()
            }
        );
        let config = StripeConfig::builder()
            .secret("whsec_x")
            .plan("price_1", "pro")
            .addon("seats", "more-seats")
            .plan("price_1", "team")
            .build()
            .unwrap();
        assert_eq!(config.plan_of("price_1"), Some("team"));
        assert_eq!(config.addon_of("seats"), Some("more-seats"));
        assert_eq!(config.plan_of("seats"), None);
        assert_eq!(config.tolerance(), DEFAULT_TOLERANCE);
        assert!(!format!("{config:?}").contains("whsec_x"));
    }
}

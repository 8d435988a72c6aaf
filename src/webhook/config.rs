//! [`WebhookConfig`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderName;

use super::verify::Secrets;
use super::Invalidate;
use crate::error::ConfigError;

/// The signature header read by default.
pub const DEFAULT_SIGNATURE_HEADER: &str = "x-purchasely-request-signature";
/// The timestamp header read by default.
pub const DEFAULT_TIMESTAMP_HEADER: &str = "x-purchasely-timestamp";
/// How far the signed timestamp may be from the receiver's clock, by default: 5 minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// The subscription statuses that keep a plan active, by default.
pub const DEFAULT_ACTIVE_STATUSES: [&str; 3] =
    ["AUTO_RENEWING", "AUTO_RENEWING_CANCELED", "IN_GRACE_PERIOD"];
/// How many applied event ids are remembered, by default.
pub const DEFAULT_DEDUP_CAPACITY: u64 = 10_000;
/// The largest body read, by default: 1 MiB. Entitlement events are a few kilobytes.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// How a [`WebhookReceiver`](super::WebhookReceiver) authenticates and interprets events.
///
/// Built with [`WebhookConfig::builder`]; cloning is a pointer copy. The `Debug` output never
/// shows the secrets.
#[derive(Clone)]
pub struct WebhookConfig {
    pub(crate) inner: Arc<ConfigInner>,
}

pub(crate) struct ConfigInner {
    /// Keyed MACs, one per active secret; the first one signs.
    pub(crate) secrets: Secrets,
    pub(crate) signature_header: HeaderName,
    pub(crate) timestamp_header: HeaderName,
    pub(crate) tolerance: Duration,
    pub(crate) active_statuses: Vec<Box<str>>,
    pub(crate) dedup_capacity: u64,
    pub(crate) body_limit: usize,
    pub(crate) invalidator: Option<Arc<dyn Invalidate>>,
    pub(crate) clock: Clock,
}

/// Builds a [`WebhookConfig`]; see [`WebhookConfig::builder`].
#[must_use]
pub struct WebhookConfigBuilder {
    secrets: Vec<Vec<u8>>,
    signature_header: String,
    timestamp_header: String,
    tolerance: Duration,
    active_statuses: Vec<Box<str>>,
    dedup_capacity: u64,
    body_limit: usize,
    invalidator: Option<Arc<dyn Invalidate>>,
    clock: Clock,
}

impl WebhookConfig {
    /// A builder with the defaults: the `x-purchasely-request-signature` and
    /// `x-purchasely-timestamp` headers, a tolerance of 5 minutes, the active statuses
    /// `AUTO_RENEWING`, `AUTO_RENEWING_CANCELED` and `IN_GRACE_PERIOD`, 10 000 remembered event
    /// ids, a 1 MiB body limit, no invalidator and the system clock. At least one secret must be
    /// added.
    pub fn builder() -> WebhookConfigBuilder {
        WebhookConfigBuilder {
            secrets: Vec::new(),
            signature_header: DEFAULT_SIGNATURE_HEADER.to_owned(),
            timestamp_header: DEFAULT_TIMESTAMP_HEADER.to_owned(),
            tolerance: DEFAULT_TOLERANCE,
            active_statuses: DEFAULT_ACTIVE_STATUSES
                .iter()
                .map(|s| (*s).into())
                .collect(),
            dedup_capacity: DEFAULT_DEDUP_CAPACITY,
            body_limit: DEFAULT_BODY_LIMIT,
            invalidator: None,
            clock: Arc::new(SystemTime::now),
        }
    }

    /// The header that carries the hex signature.
    pub fn signature_header(&self) -> &HeaderName {
        &self.inner.signature_header
    }

    /// The header that carries the timestamp, in seconds since the Unix epoch.
    pub fn timestamp_header(&self) -> &HeaderName {
        &self.inner.timestamp_header
    }

    /// How far the signed timestamp may be from the clock, in either direction.
    pub fn tolerance(&self) -> Duration {
        self.inner.tolerance
    }

    /// Whether a subscription status counts as active (exact, case-sensitive match).
    pub fn is_active_status(&self, status: &str) -> bool {
        self.inner
            .active_statuses
            .iter()
            .any(|active| &**active == status)
    }

    /// The largest request body read, in bytes.
    pub fn body_limit(&self) -> usize {
        self.inner.body_limit
    }

    /// How many applied event ids are remembered.
    pub fn dedup_capacity(&self) -> u64 {
        self.inner.dedup_capacity
    }

    /// Where applied events invalidate their user, if configured.
    pub fn invalidator(&self) -> Option<&dyn Invalidate> {
        self.inner.invalidator.as_deref()
    }

    pub(crate) fn now(&self) -> SystemTime {
        (self.inner.clock)()
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("WebhookConfig")
            .field(
                "secrets",
                &format_args!("[{} redacted]", inner.secrets.len()),
            )
            .field("signature_header", &inner.signature_header)
            .field("timestamp_header", &inner.timestamp_header)
            .field("tolerance", &inner.tolerance)
            .field("active_statuses", &inner.active_statuses)
            .field("dedup_capacity", &inner.dedup_capacity)
            .field("body_limit", &inner.body_limit)
            .field("invalidator", &inner.invalidator.is_some())
            .finish_non_exhaustive()
    }
}

impl WebhookConfigBuilder {
    /// Adds a shared secret. Several secrets may be active at once, so that a secret can be
    /// rotated without rejecting events: add the new one, switch the sender, remove the old one.
    /// A request verifies when its signature matches any of them; the first one added is the one
    /// [`WebhookConfig::sign`] uses.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secrets.push(secret.as_ref().to_vec());
        self
    }

    /// The header that carries the hex signature (default `x-purchasely-request-signature`).
    /// Header names are case-insensitive.
    pub fn signature_header(mut self, name: impl Into<String>) -> Self {
        self.signature_header = name.into();
        self
    }

    /// The header that carries the timestamp in seconds since the Unix epoch (default
    /// `x-purchasely-timestamp`). Header names are case-insensitive.
    pub fn timestamp_header(mut self, name: impl Into<String>) -> Self {
        self.timestamp_header = name.into();
        self
    }

    /// How far the signed timestamp may be from the clock, in either direction (default 5
    /// minutes). A stale timestamp is rejected, so a captured request cannot be replayed later.
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The subscription statuses that count as active, replacing the defaults
    /// (`AUTO_RENEWING`, `AUTO_RENEWING_CANCELED`, `IN_GRACE_PERIOD`).
    pub fn active_statuses<I, S>(mut self, statuses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.active_statuses = statuses.into_iter().map(|s| s.as_ref().into()).collect();
        self
    }

    /// How many recently applied event ids are remembered, so that a redelivered event is
    /// acknowledged without being applied twice (default 10 000; `0` remembers none). An event
    /// without an `event_id` cannot be recognised and is applied on every delivery.
    pub fn dedup_capacity(mut self, capacity: u64) -> Self {
        self.dedup_capacity = capacity;
        self
    }

    /// The largest body read, in bytes (default 1 MiB); a larger one is answered `413`.
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// Where an applied event invalidates its user: the layer's handle
    /// ([`PlanLimitLayer::invalidator`](crate::PlanLimitLayer::invalidator)), or with the
    /// `redis` feature a `redis::RedisInvalidator`, which reaches
    /// every instance. Once an event is applied, its user's cached record is dropped, so the
    /// next request sees the new plan. Without one (the default), the receiver works without a
    /// layer, or with a layer whose user cache is off.
    pub fn invalidator(mut self, invalidator: impl Invalidate) -> Self {
        self.invalidator = Some(Arc::new(invalidator));
        self
    }

    /// The clock the timestamp is checked against (default [`SystemTime::now`]); for tests.
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`ConfigError::InvalidOption`] when no secret was added, a secret is empty, or a header
    /// name is not a valid HTTP header name.
    pub fn build(self) -> Result<WebhookConfig, ConfigError> {
        let secrets = Secrets::new(&self.secrets)?;
        let signature_header = header_name("signature_header", &self.signature_header)?;
        let timestamp_header = header_name("timestamp_header", &self.timestamp_header)?;
        if signature_header == timestamp_header {
            return Err(ConfigError::InvalidOption {
                option: "timestamp_header",
                reason: "the signature and timestamp headers must differ".to_owned(),
            });
        }
        Ok(WebhookConfig {
            inner: Arc::new(ConfigInner {
                secrets,
                signature_header,
                timestamp_header,
                tolerance: self.tolerance,
                active_statuses: self.active_statuses,
                dedup_capacity: self.dedup_capacity,
                body_limit: self.body_limit,
                invalidator: self.invalidator,
                clock: self.clock,
            }),
        })
    }
}

impl fmt::Debug for WebhookConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfigBuilder")
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .field("signature_header", &self.signature_header)
            .field("timestamp_header", &self.timestamp_header)
            .field("tolerance", &self.tolerance)
            .field("active_statuses", &self.active_statuses)
            .field("dedup_capacity", &self.dedup_capacity)
            .field("body_limit", &self.body_limit)
            .field("invalidator", &self.invalidator.is_some())
            .finish_non_exhaustive()
    }
}

fn header_name(option: &'static str, name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|error| ConfigError::InvalidOption {
        option,
        reason: format!("`{name}` is not a header name: {error}"),
    })
}

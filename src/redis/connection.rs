//! [`RedisConnection`]: one Redis, one key prefix, and the stores and invalidator made from them.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::keys::Keys;
use super::plans::DEFAULT_TIMEOUT;
use super::{Error, RedisInvalidator, RedisPlanStore, RedisUsageStore};
use crate::invalidator::Invalidator;

/// A connection to Redis under one key prefix, from which the stores and the invalidator of an
/// instance are made.
///
/// It holds a [`ConnectionManager`], which multiplexes every call of the stores over one
/// connection and reconnects in the background when the connection breaks, and the
/// [`Client`](redis::Client) that the invalidator opens its subscription with. Cloning is
/// cheap: clones share the connection.
///
/// [`open`](Self::open) configures the manager for a layer: a call fails at once, rather than
/// waiting through a series of retries, while Redis cannot be reached (the layer's
/// `store_timeout` and failure policy then answer); each failed call starts a new connection
/// attempt, so requests succeed again as soon as Redis is back; a connection attempt gives up
/// after 1 second, an answer after 5.
#[derive(Clone)]
pub struct RedisConnection {
    client: redis::Client,
    manager: ConnectionManager,
    keys: Keys,
    timeout: Duration,
}

impl RedisConnection {
    /// Connects to the Redis at `url` (`redis://127.0.0.1:6379/`, `redis+unix:///path/to/socket`,
    /// see the `redis` crate), with [`default_config`](Self::default_config).
    ///
    /// # Errors
    /// An [`Error::Redis`] when the URL is invalid or Redis cannot be reached.
    pub async fn open(url: &str) -> Result<Self, Error> {
        Self::open_with(url, Self::default_config()).await
    }

    /// Connects to the Redis at `url` with your own connection manager configuration.
    ///
    /// # Errors
    /// An [`Error::Redis`] when the URL is invalid or Redis cannot be reached.
    pub async fn open_with(url: &str, config: ConnectionManagerConfig) -> Result<Self, Error> {
        let client = redis::Client::open(url)?;
        let manager = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Self::from_parts(client, manager))
    }

    /// Wraps a client and a connection manager you made (they should point at the same Redis).
    pub fn from_parts(client: redis::Client, manager: ConnectionManager) -> Self {
        Self {
            client,
            manager,
            keys: Keys::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The connection manager configuration [`open`](Self::open) uses: no retries within one
    /// reconnection (the next call starts another), a 1 second connection timeout and a 5
    /// second response timeout.
    pub fn default_config() -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Duration::from_secs(1))
            .set_response_timeout(Duration::from_secs(5))
    }

    /// Puts every key and the channel under `prefix` (default `tower-plans`). Instances that
    /// share state must use the same prefix; applications that share one Redis use different
    /// ones. Braces in it are escaped, so that a user's hash tag is the only one in a key.
    #[must_use]
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        self.keys = Keys::new(prefix);
        self
    }

    /// How long the writers of the plan store and the invalidator's publishing wait for Redis
    /// (default 5 seconds). The layer times its own store calls with its `store_timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key prefix, as it appears in keys.
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// The client.
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The connection manager.
    pub fn manager(&self) -> &ConnectionManager {
        &self.manager
    }

    /// A [`RedisPlanStore`] on this connection and prefix.
    pub fn plan_store(&self) -> RedisPlanStore {
        RedisPlanStore::with_keys(self.manager.clone(), self.keys.clone(), self.timeout)
    }

    /// A [`RedisUsageStore`] on this connection and prefix.
    pub fn usage_store(&self) -> RedisUsageStore {
        RedisUsageStore::with_keys(self.manager.clone(), self.keys.clone())
    }

    /// Starts a [`RedisInvalidator`] with the defaults, driving `local`, the layer's own handle
    /// ([`PlanLimitLayer::invalidator`](crate::PlanLimitLayer::invalidator)).
    /// [`RedisInvalidator::builder`] configures one.
    ///
    /// # Errors
    /// [`Error::NoRuntime`] outside a Tokio runtime.
    pub fn invalidator(&self, local: Invalidator) -> Result<RedisInvalidator, Error> {
        RedisInvalidator::builder(self).start(local)
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn timeout_value(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("prefix", &self.keys.prefix())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

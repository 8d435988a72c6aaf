//! [`RedisConnection`]: one Redis or a cluster, one key prefix, and the stores and invalidator
//! made from them.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
#[cfg(feature = "redis-cluster")]
use redis::{cluster::ClusterClientBuilder, cluster_async::ClusterConnection, IntoConnectionInfo};

use super::invalidation::Subscriptions;
use super::keys::Keys;
use super::link::Link;
#[cfg(feature = "redis-cluster")]
use super::nodes::ClusterNodes;
use super::plans::DEFAULT_TIMEOUT;
use super::{Error, RedisInvalidator, RedisPlanStore, RedisRates, RedisUsageStore};
use crate::invalidator::Invalidator;

/// A connection to Redis under one key prefix, from which the stores and the invalidator of an
/// instance are made: to one Redis ([`open`](Self::open)) or, with the `redis-cluster` feature,
/// to a Redis Cluster (`open_cluster`).
///
/// To one Redis it holds a [`ConnectionManager`], which multiplexes every call of the stores
/// over one connection and reconnects in the background when the connection breaks, and the
/// [`Client`](redis::Client) that the invalidator opens its subscription with. To a cluster it
/// holds a cluster connection, which sends each call to the node that serves its key, follows
/// the cluster as slots move and replicas are promoted, and reconnects to nodes as they come
/// back; the invalidator subscribes on one of the nodes (see the [module docs](super#cluster)).
/// Cloning is cheap: clones share the connection.
///
/// [`open`](Self::open) configures the manager for a layer: a call fails at once, rather than
/// waiting through a series of retries, while Redis cannot be reached (the layer's
/// `store_timeout` and failure policy then answer); each failed call starts a new connection
/// attempt, so requests succeed again as soon as Redis is back; a connection attempt gives up
/// after 1 second, an answer after 5.
#[derive(Clone)]
pub struct RedisConnection {
    link: Link,
    subscriptions: Subscriptions,
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
        Self::with_link(manager.into(), Subscriptions::Server(client))
    }

    /// Connects to the Redis Cluster that `nodes` belong to (`redis://10.0.0.1:7000/`, ...; one
    /// reachable node is enough, more let the connection start while some are down), with the
    /// settings of [`open_cluster_with`](Self::open_cluster_with).
    ///
    /// Credentials and TLS go in the URLs: the invalidator connects to the node it subscribes on
    /// with the first URL's.
    ///
    /// # Errors
    /// An [`Error::Redis`] when a URL is invalid, none is given, or no node can be reached.
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub async fn open_cluster<T: IntoConnectionInfo>(
        nodes: impl IntoIterator<Item = T>,
    ) -> Result<Self, Error> {
        Self::open_cluster_with(nodes, |builder| builder).await
    }

    /// Connects to the Redis Cluster that `nodes` belong to, with the cluster client as
    /// `configure` leaves it.
    ///
    /// `configure` gets a builder already set up for a layer, as [`open`](Self::open) sets up
    /// the connection to one Redis: within one call, up to 5 retries, 10 ms apart at first and
    /// doubling up to 200 ms (a redirection to the node that now serves a slot is followed at
    /// once); a connection attempt gives up after 1 second, an answer after 5. The layer's
    /// `store_timeout` bounds every call in any case.
    ///
    /// # Errors
    /// An [`Error::Redis`] when a URL is invalid, none is given, or no node can be reached.
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub async fn open_cluster_with<T: IntoConnectionInfo>(
        nodes: impl IntoIterator<Item = T>,
        configure: impl FnOnce(ClusterClientBuilder) -> ClusterClientBuilder,
    ) -> Result<Self, Error> {
        let seeds = nodes
            .into_iter()
            .map(IntoConnectionInfo::into_connection_info)
            .collect::<Result<Vec<_>, _>>()?;
        let builder = ClusterClientBuilder::new(seeds.clone())
            .retries(5)
            .min_retry_wait(10)
            .max_retry_wait(200)
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(5));
        let client = configure(builder).build()?;
        let conn = client.get_async_connection().await?;
        let nodes = ClusterNodes::new(conn.clone(), seeds.into());
        Ok(Self::with_link(
            Link::Cluster(conn),
            Subscriptions::Cluster(nodes),
        ))
    }

    fn with_link(link: Link, subscriptions: Subscriptions) -> Self {
        Self {
            link,
            subscriptions,
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

    /// The client of a connection to one Redis; `None` for a cluster.
    pub fn client(&self) -> Option<&redis::Client> {
        match &self.subscriptions {
            Subscriptions::Server(client) => Some(client),
            #[cfg(feature = "redis-cluster")]
            Subscriptions::Cluster(_) => None,
        }
    }

    /// The connection manager of a connection to one Redis; `None` for a cluster.
    pub fn manager(&self) -> Option<&ConnectionManager> {
        match &self.link {
            Link::Single(manager) => Some(manager),
            #[cfg(feature = "redis-cluster")]
            Link::Cluster(_) => None,
        }
    }

    /// The cluster connection of a connection to a Redis Cluster; `None` for one Redis.
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn cluster(&self) -> Option<&ClusterConnection> {
        match &self.link {
            Link::Cluster(cluster) => Some(cluster),
            Link::Single(_) => None,
        }
    }

    /// Whether this is a connection to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        !matches!(self.link, Link::Single(_))
    }

    /// A [`RedisPlanStore`] on this connection and prefix.
    pub fn plan_store(&self) -> RedisPlanStore {
        RedisPlanStore::with_keys(self.link.clone(), self.keys.clone(), self.timeout)
    }

    /// A [`RedisUsageStore`] on this connection and prefix.
    pub fn usage_store(&self) -> RedisUsageStore {
        RedisUsageStore::with_keys(self.link.clone(), self.keys.clone())
    }

    /// A [`RedisRates`] on this connection and prefix, for
    /// [`rate_store`](crate::PlanLimitLayerBuilder::rate_store).
    pub fn rate_store(&self) -> RedisRates {
        RedisRates::with_keys(self.link.clone(), self.keys.clone())
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

    pub(crate) fn link(&self) -> &Link {
        &self.link
    }

    pub(crate) fn subscriptions(&self) -> &Subscriptions {
        &self.subscriptions
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
            .field("cluster", &self.is_cluster())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

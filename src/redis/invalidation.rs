//! [`RedisInvalidator`]: invalidation broadcast over Redis pub/sub, and the task that listens.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::watch;

use super::error::within;
use super::link::Link;
#[cfg(feature = "redis-cluster")]
use super::nodes::{ClusterNodes, Node};
use super::{Error, RedisConnection};
use crate::invalidator::Invalidator;

/// The first wait before subscribing again, unless configured.
const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to subscribe, unless configured.
const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long the subscription may stay quiet before it is checked with a `PING`, unless
/// configured.
const DEFAULT_HEALTH_CHECK: Duration = Duration::from_secs(15);

/// One invalidation, as it travels on the channel.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Message {
    /// `user:<id>`: one user's rights changed.
    User(String),
    /// `all-users`: every user's.
    AllUsers,
    /// `catalog`: the plans.
    Catalog,
}

impl Message {
    fn encode(&self) -> String {
        match self {
            Message::User(id) => format!("user:{id}"),
            Message::AllUsers => "all-users".to_owned(),
            Message::Catalog => "catalog".to_owned(),
        }
    }

    fn decode(payload: &[u8]) -> Option<Message> {
        let text = std::str::from_utf8(payload).ok()?;
        match text {
            "all-users" => Some(Message::AllUsers),
            "catalog" => Some(Message::Catalog),
            _ => text
                .strip_prefix("user:")
                .map(|id| Message::User(id.to_owned())),
        }
    }

    fn apply(&self, local: &Invalidator) {
        match self {
            Message::User(id) => local.user(id),
            Message::AllUsers => local.all_users(),
            Message::Catalog => local.catalog(),
        }
    }
}

/// Where the listening task subscribes.
#[derive(Clone)]
pub(crate) enum Subscriptions {
    /// On the one Redis, through its client.
    Server(redis::Client),
    /// On any healthy node of a cluster: a `PUBLISH` reaches the subscribers of every node.
    #[cfg(feature = "redis-cluster")]
    Cluster(ClusterNodes),
}

/// Drops everything `local` caches: what was published while no subscription listened is lost.
fn drop_all(local: &Invalidator) {
    local.all_users();
    local.catalog();
}

/// Broadcasts invalidations to every instance over a Redis pub/sub channel, and applies those of
/// the other instances to this one.
///
/// [`user`](Self::user), [`all_users`](Self::all_users) and [`catalog`](Self::catalog) apply the
/// change to this instance's layer at once (through its [`Invalidator`]), then publish it on
/// the channel (`prefix:invalidate`). A background task, started with the invalidator, listens
/// on its own connection and applies every message it receives to the local layer.
///
/// On a Redis Cluster the messages travel by `PUBLISH`, which the cluster carries to the
/// subscribers of every node: the task subscribes on one healthy node (instances spread over
/// them) and moves to another when it loses that one, or when, after a quiet
/// [`health_check`] interval, the cluster says the node failed or left.
///
/// Pub/sub loses the messages sent while a subscriber is disconnected, so when the subscription
/// is lost (the connection closes, or a `PING` after a quiet [`health_check`] interval gets no
/// answer) the task drops every cached user and the catalog, then subscribes again, waiting
/// between attempts from [`backoff`]'s minimum, doubling up to its maximum; once subscribed
/// again it drops them once more, since a change could have been published (and missed) after
/// the first drop. Cache lifetimes remain the backstop.
///
/// Cloning is cheap; the clones share the task. The task stops when the last clone is dropped:
/// keep one for as long as the instance serves.
///
/// [`health_check`]: RedisInvalidatorBuilder::health_check
/// [`backoff`]: RedisInvalidatorBuilder::backoff
#[derive(Clone)]
pub struct RedisInvalidator {
    shared: Arc<Shared>,
}

struct Shared {
    conn: Link,
    channel: String,
    local: Invalidator,
    timeout: Duration,
    subscribed: watch::Receiver<bool>,
    task: tokio::task::AbortHandle,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Configures and starts a [`RedisInvalidator`]; see [`RedisInvalidator::builder`].
#[must_use]
pub struct RedisInvalidatorBuilder {
    subscriptions: Subscriptions,
    conn: Link,
    channel: String,
    timeout: Duration,
    backoff: (Duration, Duration),
    health_check: Duration,
}

impl RedisInvalidator {
    /// A builder for an invalidator on `connection`'s Redis and channel (`prefix:invalidate`).
    /// [`RedisConnection::invalidator`] starts one with the defaults.
    pub fn builder(connection: &RedisConnection) -> RedisInvalidatorBuilder {
        RedisInvalidatorBuilder {
            subscriptions: connection.subscriptions().clone(),
            conn: connection.link().clone(),
            channel: connection.keys().channel(),
            timeout: connection.timeout_value(),
            backoff: (DEFAULT_BACKOFF_MIN, DEFAULT_BACKOFF_MAX),
            health_check: DEFAULT_HEALTH_CHECK,
        }
    }

    /// Drops user `id`'s cached record here, and on every instance listening.
    ///
    /// # Errors
    /// When the message could not be published (Redis down or too slow): this instance is
    /// invalidated all the same, the others keep their entry until it expires.
    pub async fn user(&self, id: &str) -> Result<(), Error> {
        self.send(Message::User(id.to_owned())).await
    }

    /// Drops every cached user record here, and on every instance listening.
    ///
    /// # Errors
    /// As for [`user`](Self::user).
    pub async fn all_users(&self) -> Result<(), Error> {
        self.send(Message::AllUsers).await
    }

    /// Drops the cached catalog here, and on every instance listening.
    ///
    /// # Errors
    /// As for [`user`](Self::user).
    pub async fn catalog(&self) -> Result<(), Error> {
        self.send(Message::Catalog).await
    }

    /// The local layer's handle, which this invalidator drives.
    pub fn local(&self) -> &Invalidator {
        &self.shared.local
    }

    /// The channel the messages travel on.
    pub fn channel(&self) -> &str {
        &self.shared.channel
    }

    /// Whether the background task is subscribed at the moment.
    pub fn is_subscribed(&self) -> bool {
        *self.shared.subscribed.borrow()
    }

    /// Waits until the background task is subscribed (at once when it is). Messages published
    /// before then are not seen by this instance, which drops its cached entries when it
    /// subscribes instead.
    pub async fn subscribed(&self) {
        let mut subscribed = self.shared.subscribed.clone();
        // The sender lives as long as the task, which lives as long as `self`.
        let _ = subscribed.wait_for(|subscribed| *subscribed).await;
    }

    async fn send(&self, message: Message) -> Result<(), Error> {
        let shared = &self.shared;
        message.apply(&shared.local);
        let mut conn = shared.conn.clone();
        let payload = message.encode();
        let result = within(shared.timeout, conn.publish(&shared.channel, &payload)).await;
        if let Err(error) = &result {
            tracing::warn!(
                channel = %shared.channel,
                %error,
                "could not publish an invalidation; other instances keep their cache until it expires"
            );
        }
        result.map(drop)
    }
}

/// A webhook that reaches one instance invalidates its user on every instance.
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
#[async_trait::async_trait]
impl crate::webhook::Invalidate for RedisInvalidator {
    async fn invalidate_user(&self, id: &str) -> Result<(), crate::store::BoxError> {
        self.user(id).await.map_err(Into::into)
    }
}

impl fmt::Debug for RedisInvalidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisInvalidator")
            .field("channel", &self.shared.channel)
            .field("subscribed", &self.is_subscribed())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisInvalidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisInvalidatorBuilder")
            .field("channel", &self.channel)
            .field("timeout", &self.timeout)
            .field("backoff", &self.backoff)
            .field("health_check", &self.health_check)
            .finish_non_exhaustive()
    }
}

impl RedisInvalidatorBuilder {
    /// The pub/sub channel (default `prefix:invalidate`). Every instance must use the same one.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// How long publishing, connecting and subscribing may take (default: the connection's
    /// timeout, 5 seconds unless configured).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The waits between attempts to subscribe: from `min`, doubling after each failure, up to
    /// `max` (default 100 ms to 5 s). Zero durations are raised to 1 ms.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        self.backoff = (min, max.max(min));
        self
    }

    /// How long the subscription may stay quiet before a `PING` checks that it is alive
    /// (default 15 seconds); a `PING` unanswered within as long again counts as a lost
    /// subscription. Zero is raised to 1 ms.
    pub fn health_check(mut self, interval: Duration) -> Self {
        self.health_check = interval.max(Duration::from_millis(1));
        self
    }

    /// Starts listening, on the current Tokio runtime, and returns the handle that publishes.
    /// `local` is the layer's own handle
    /// ([`PlanLimitLayer::invalidator`](crate::PlanLimitLayer::invalidator)).
    ///
    /// # Errors
    /// [`Error::NoRuntime`] outside a Tokio runtime. A Redis that cannot be reached is no
    /// error: the task keeps trying (see [`RedisInvalidator::subscribed`]).
    pub fn start(self, local: Invalidator) -> Result<RedisInvalidator, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (sender, subscribed) = watch::channel(false);
        let listener = Listener {
            subscriptions: self.subscriptions,
            channel: self.channel.clone(),
            local: local.clone(),
            subscribed: sender,
            timeout: self.timeout,
            backoff: self.backoff,
            health_check: self.health_check,
        };
        let task = runtime.spawn(listener.run()).abort_handle();
        Ok(RedisInvalidator {
            shared: Arc::new(Shared {
                conn: self.conn,
                channel: self.channel,
                local,
                timeout: self.timeout,
                subscribed,
                task,
            }),
        })
    }
}

/// The background task: subscribes, applies messages, and subscribes again when it loses them.
struct Listener {
    subscriptions: Subscriptions,
    channel: String,
    local: Invalidator,
    subscribed: watch::Sender<bool>,
    timeout: Duration,
    backoff: (Duration, Duration),
    health_check: Duration,
}

impl Listener {
    async fn run(self) {
        let (min, max) = self.backoff;
        let mut wait = min;
        let mut attempt: u64 = 0;
        loop {
            attempt = attempt.wrapping_add(1);
            match self.subscribe(attempt).await {
                Ok(subscription) => {
                    drop_all(&self.local);
                    self.subscribed.send_replace(true);
                    tracing::info!(
                        channel = %self.channel,
                        on = %subscription.on(),
                        "subscribed to invalidations"
                    );
                    wait = min;
                    self.listen(subscription).await;
                    self.subscribed.send_replace(false);
                    drop_all(&self.local);
                    tracing::warn!(
                        channel = %self.channel,
                        "invalidation subscription lost; dropped every cached user and the catalog; subscribing again"
                    );
                }
                Err(error) => {
                    tracing::warn!(
                        channel = %self.channel,
                        %error,
                        retry_in = ?wait,
                        "could not subscribe to invalidations"
                    );
                }
            }
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2).min(max);
        }
    }

    /// Subscribes on the Redis or, on a cluster, on the first node of
    /// [`ClusterNodes::candidates`] that takes the subscription.
    async fn subscribe(&self, attempt: u64) -> Result<Subscription, Error> {
        match &self.subscriptions {
            Subscriptions::Server(client) => {
                // One server: there is nowhere else to go.
                let _ = attempt;
                let (sink, stream) = self.subscribe_on(client).await?;
                Ok(Subscription {
                    sink,
                    stream,
                    #[cfg(feature = "redis-cluster")]
                    node: None,
                })
            }
            #[cfg(feature = "redis-cluster")]
            Subscriptions::Cluster(nodes) => {
                let mut failure = None;
                for node in nodes.candidates(attempt).await {
                    let subscribed = match redis::Client::open(nodes.connection_info(&node)) {
                        Ok(client) => self.subscribe_on(&client).await,
                        Err(error) => Err(error.into()),
                    };
                    match subscribed {
                        Ok((sink, stream)) => {
                            return Ok(Subscription {
                                sink,
                                stream,
                                node: Some(node),
                            })
                        }
                        Err(error) => {
                            tracing::debug!(%node, %error, "could not subscribe on this node");
                            failure = Some(error);
                        }
                    }
                }
                Err(failure.unwrap_or_else(|| {
                    Error::Redis(redis::RedisError::from((
                        redis::ErrorKind::IoError,
                        "no node of the cluster to subscribe on",
                    )))
                }))
            }
        }
    }

    async fn subscribe_on(
        &self,
        client: &redis::Client,
    ) -> Result<(PubSubSink, PubSubStream), Error> {
        let pubsub = within(self.timeout, client.get_async_pubsub()).await?;
        let (mut sink, stream) = pubsub.split();
        within(self.timeout, sink.subscribe(&self.channel)).await?;
        Ok((sink, stream))
    }

    /// Applies messages until the subscription is lost.
    async fn listen(&self, mut subscription: Subscription) {
        loop {
            let next = subscription.stream.next();
            match tokio::time::timeout(self.health_check, next).await {
                Ok(Some(message)) => match Message::decode(message.get_payload_bytes()) {
                    Some(message) => {
                        tracing::debug!(?message, "invalidation received");
                        message.apply(&self.local);
                    }
                    None => tracing::warn!(
                        channel = %self.channel,
                        "ignored a message that is not an invalidation"
                    ),
                },
                Ok(None) => return,
                Err(_quiet) => {
                    let ping = subscription.sink.ping::<redis::Value>();
                    match tokio::time::timeout(self.health_check, ping).await {
                        Ok(Ok(_)) => {
                            if self.node_has_left(&subscription).await {
                                return;
                            }
                        }
                        Ok(Err(error)) => {
                            tracing::warn!(%error, "invalidation subscription failed its health check");
                            return;
                        }
                        Err(_) => {
                            tracing::warn!(
                                "invalidation subscription did not answer its health check"
                            );
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// A live subscription: its connection and, on a cluster, the node it is on.
struct Subscription {
    sink: PubSubSink,
    stream: PubSubStream,
    #[cfg(feature = "redis-cluster")]
    node: Option<Node>,
}

impl Subscription {
    /// Where it is, for the logs.
    fn on(&self) -> String {
        #[cfg(feature = "redis-cluster")]
        if let Some(node) = &self.node {
            return node.to_string();
        }
        "redis".to_owned()
    }
}

impl Listener {
    /// Whether the cluster says that the node the subscription is on failed or left it: it may
    /// then no longer hear the cluster's messages. Not knowing is no reason to leave; one Redis
    /// never leaves.
    #[cfg_attr(not(feature = "redis-cluster"), allow(unused_variables))]
    async fn node_has_left(&self, subscription: &Subscription) -> bool {
        #[cfg(feature = "redis-cluster")]
        if let (Subscriptions::Cluster(nodes), Some(node)) =
            (&self.subscriptions, &subscription.node)
        {
            if let Ok(true) = within(self.timeout, nodes.has_left(node)).await {
                tracing::warn!(%node, "the node of the invalidation subscription left the cluster");
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for message in [
            Message::User("john".to_owned()),
            Message::User("a:b {c} zoë".to_owned()),
            Message::User(String::new()),
            Message::User("user:x".to_owned()),
            Message::AllUsers,
            Message::Catalog,
        ] {
            assert_eq!(Message::decode(message.encode().as_bytes()), Some(message));
        }
        assert_eq!(Message::decode(b"hello"), None);
        assert_eq!(Message::decode(&[0xff, 0xfe]), None);
    }
}

//! [`PostgresInvalidator`]: invalidation broadcast with `LISTEN`/`NOTIFY`, and the task that
//! listens.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::watch;

use super::{Error, PostgresStore};
use crate::invalidator::Invalidator;

/// The channel the schema's triggers notify, and the invalidator's default.
pub(super) const CHANNEL: &str = "tower_plans";

/// The first wait before listening again, unless configured.
const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to listen, unless configured.
const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long the listening connection may stay quiet before a query checks it, unless
/// configured.
const DEFAULT_HEALTH_CHECK: Duration = Duration::from_secs(15);
/// How long notifying, connecting and listening may take, unless configured.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// One invalidation, as it travels on the channel: the payloads of the Redis invalidator.
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

    fn decode(payload: &str) -> Option<Message> {
        match payload {
            "all-users" => Some(Message::AllUsers),
            "catalog" => Some(Message::Catalog),
            _ => payload
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

/// Drops everything `local` caches: what was notified while nothing listened is lost.
fn drop_all(local: &Invalidator) {
    local.all_users();
    local.catalog();
}

/// Broadcasts invalidations to every instance with Postgres's `NOTIFY`, and applies those of
/// the other instances (and of the schema's triggers) to this one.
///
/// [`user`](Self::user), [`all_users`](Self::all_users) and [`catalog`](Self::catalog) apply the
/// change to this instance's layer at once (through its [`Invalidator`]), then notify it on the
/// channel (`tower_plans` by default). A background task, started with the invalidator,
/// `LISTEN`s on a connection of its own and applies every notification it receives to the local
/// layer. The schema's triggers notify the same channel whenever a subscriber's rows or the
/// catalog change, whoever changes them, so a write through [`PostgresStore`]'s writers (or the
/// application's own SQL on those tables) reaches every instance without a call here.
///
/// Postgres does not keep notifications for a connection that is gone, so when the listening
/// connection is lost (it closes, fails, or a query after a quiet [`health_check`] interval
/// gets no answer) the task drops every cached user and the catalog, then connects and listens
/// again, waiting between attempts from [`backoff`]'s minimum, doubling up to its maximum; once
/// listening again it drops them once more, since a change could have been notified (and
/// missed) after the first drop. Cache lifetimes remain the backstop.
///
/// Cloning is cheap; the clones share the task. The task stops when the last clone is dropped:
/// keep one for as long as the instance serves.
///
/// [`health_check`]: PostgresInvalidatorBuilder::health_check
/// [`backoff`]: PostgresInvalidatorBuilder::backoff
#[derive(Clone)]
pub struct PostgresInvalidator {
    shared: Arc<Shared>,
}

struct Shared {
    pool: PgPool,
    channel: String,
    local: Invalidator,
    timeout: Duration,
    listening: watch::Receiver<bool>,
    task: tokio::task::AbortHandle,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Configures and starts a [`PostgresInvalidator`]; see [`PostgresInvalidator::builder`].
#[must_use]
pub struct PostgresInvalidatorBuilder {
    pool: PgPool,
    channel: String,
    timeout: Duration,
    backoff: (Duration, Duration),
    health_check: Duration,
}

impl PostgresInvalidator {
    /// A builder for an invalidator on `store`'s database and the channel `tower_plans`.
    /// [`PostgresStore::invalidator`] starts one with the defaults.
    pub fn builder(store: &PostgresStore) -> PostgresInvalidatorBuilder {
        PostgresInvalidatorBuilder {
            pool: store.pool.clone(),
            channel: CHANNEL.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            backoff: (DEFAULT_BACKOFF_MIN, DEFAULT_BACKOFF_MAX),
            health_check: DEFAULT_HEALTH_CHECK,
        }
    }

    /// Drops user `id`'s cached record here, and on every instance listening.
    ///
    /// # Errors
    /// When the notification could not be sent (Postgres down or too slow): this instance is
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

    /// The channel the notifications travel on.
    pub fn channel(&self) -> &str {
        &self.shared.channel
    }

    /// Whether the background task is listening at the moment.
    pub fn is_listening(&self) -> bool {
        *self.shared.listening.borrow()
    }

    /// Waits until the background task is listening (at once when it is). Notifications sent
    /// before then are not seen by this instance, which drops its cached entries when it starts
    /// listening instead.
    pub async fn listening(&self) {
        let mut listening = self.shared.listening.clone();
        // The sender lives as long as the task, which lives as long as `self`.
        let _ = listening.wait_for(|listening| *listening).await;
    }

    async fn send(&self, message: Message) -> Result<(), Error> {
        let shared = &self.shared;
        message.apply(&shared.local);
        let notify = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&shared.channel)
            .bind(message.encode())
            .execute(&shared.pool);
        let result = match tokio::time::timeout(shared.timeout, notify).await {
            Ok(result) => result.map(drop).map_err(Error::Database),
            Err(_) => Err(Error::Database(sqlx::Error::PoolTimedOut)),
        };
        if let Err(error) = &result {
            tracing::warn!(
                channel = %shared.channel,
                %error,
                "could not notify an invalidation; other instances keep their cache until it expires"
            );
        }
        result
    }
}

/// A webhook that reaches one instance invalidates its user on every instance.
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
#[async_trait::async_trait]
impl crate::webhook::Invalidate for PostgresInvalidator {
    async fn invalidate_user(&self, id: &str) -> Result<(), crate::store::BoxError> {
        self.user(id).await.map_err(Into::into)
    }
}

impl fmt::Debug for PostgresInvalidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresInvalidator")
            .field("channel", &self.shared.channel)
            .field("listening", &self.is_listening())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PostgresInvalidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresInvalidatorBuilder")
            .field("channel", &self.channel)
            .field("timeout", &self.timeout)
            .field("backoff", &self.backoff)
            .field("health_check", &self.health_check)
            .finish_non_exhaustive()
    }
}

impl PostgresInvalidatorBuilder {
    /// The channel (default `tower_plans`, the one the schema's triggers notify). Every
    /// instance must use the same one; on another channel the instances hear only each other,
    /// not the triggers.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// How long notifying, connecting and starting to listen may take (default 5 seconds).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The waits between attempts to listen: from `min`, doubling after each failure, up to
    /// `max` (default 100 ms to 5 s). Zero durations are raised to 1 ms.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        self.backoff = (min, max.max(min));
        self
    }

    /// How long the listening connection may stay quiet before a query checks that it is alive
    /// (default 15 seconds); a query unanswered within as long again counts as a lost
    /// connection. Zero is raised to 1 ms.
    pub fn health_check(mut self, interval: Duration) -> Self {
        self.health_check = interval.max(Duration::from_millis(1));
        self
    }

    /// Starts listening, on the current Tokio runtime, and returns the handle that notifies.
    /// `local` is the layer's own handle
    /// ([`PlanLimitLayer::invalidator`](crate::PlanLimitLayer::invalidator)). The task listens
    /// on a connection of its own, opened with the store's connection options, so that it never
    /// takes one from the store's pool.
    ///
    /// # Errors
    /// [`Error::NoRuntime`] outside a Tokio runtime. A Postgres that cannot be reached is no
    /// error: the task keeps trying (see [`PostgresInvalidator::listening`]).
    pub fn start(self, local: Invalidator) -> Result<PostgresInvalidator, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (sender, listening) = watch::channel(false);
        let options = self.pool.connect_options().as_ref().clone();
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(self.timeout)
            .test_before_acquire(false)
            .connect_lazy_with(options);
        let listener = Listener {
            pool: listener_pool,
            channel: self.channel.clone(),
            local: local.clone(),
            listening: sender,
            timeout: self.timeout,
            backoff: self.backoff,
            health_check: self.health_check,
        };
        let task = runtime.spawn(listener.run()).abort_handle();
        Ok(PostgresInvalidator {
            shared: Arc::new(Shared {
                pool: self.pool,
                channel: self.channel,
                local,
                timeout: self.timeout,
                listening,
                task,
            }),
        })
    }
}

impl PostgresStore {
    /// Starts a [`PostgresInvalidator`] with the defaults for the layer whose handle is
    /// `local`; [`PostgresInvalidator::builder`] configures one.
    ///
    /// # Errors
    /// [`Error::NoRuntime`] outside a Tokio runtime.
    pub fn invalidator(&self, local: Invalidator) -> Result<PostgresInvalidator, Error> {
        PostgresInvalidator::builder(self).start(local)
    }
}

/// The background task: listens, applies notifications, and listens again when it loses them.
struct Listener {
    pool: PgPool,
    channel: String,
    local: Invalidator,
    listening: watch::Sender<bool>,
    timeout: Duration,
    backoff: (Duration, Duration),
    health_check: Duration,
}

impl Listener {
    async fn run(self) {
        let (min, max) = self.backoff;
        let mut wait = min;
        loop {
            match self.listen().await {
                Ok(listener) => {
                    drop_all(&self.local);
                    self.listening.send_replace(true);
                    tracing::info!(channel = %self.channel, "listening to invalidations");
                    wait = min;
                    self.receive(listener).await;
                    self.listening.send_replace(false);
                    drop_all(&self.local);
                    tracing::warn!(
                        channel = %self.channel,
                        "invalidation listener lost; dropped every cached user and the catalog; listening again"
                    );
                }
                Err(error) => {
                    tracing::warn!(
                        channel = %self.channel,
                        %error,
                        retry_in = ?wait,
                        "could not listen to invalidations"
                    );
                }
            }
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2).min(max);
        }
    }

    /// A fresh connection, listening on the channel.
    async fn listen(&self) -> Result<PgListener, Error> {
        let start = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            // Lost connections are the task's to notice: it drops the caches first.
            listener.eager_reconnect(false);
            listener.listen(&self.channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match tokio::time::timeout(self.timeout, start).await {
            Ok(result) => result.map_err(Error::Database),
            Err(_) => Err(Error::Database(sqlx::Error::PoolTimedOut)),
        }
    }

    /// Applies notifications until the connection is lost.
    async fn receive(&self, mut listener: PgListener) {
        loop {
            match tokio::time::timeout(self.health_check, listener.try_recv()).await {
                Ok(Ok(Some(notification))) => match Message::decode(notification.payload()) {
                    Some(message) => {
                        tracing::debug!(?message, "invalidation received");
                        message.apply(&self.local);
                    }
                    None => tracing::warn!(
                        channel = %self.channel,
                        "ignored a notification that is not an invalidation"
                    ),
                },
                Ok(Ok(None)) => return,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "invalidation listener failed");
                    return;
                }
                Err(_quiet) => {
                    let check = sqlx::query("SELECT 1").execute(&mut listener);
                    match tokio::time::timeout(self.health_check, check).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => {
                            tracing::warn!(%error, "invalidation listener failed its health check");
                            return;
                        }
                        Err(_) => {
                            tracing::warn!("invalidation listener did not answer its health check");
                            return;
                        }
                    }
                }
            }
        }
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
            assert_eq!(Message::decode(&message.encode()), Some(message));
        }
        assert_eq!(Message::decode("hello"), None);
    }
}

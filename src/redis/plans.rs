//! [`RedisPlanStore`]: the catalog and subscriber records as JSON strings in Redis.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde_json::Value;

use super::error::within;
use super::keys::Keys;
use super::link::Link;
use super::Error;
use crate::catalog::Catalog;
use crate::store::{json_kind, BoxError, LoadError, PlanStore, StoreFuture};
use crate::subscriber::Subscriber;

/// Sets `KEYS[1]` to `ARGV[3]` only if it still holds `ARGV[2]` (`ARGV[1]` = `1`), or still holds
/// nothing (`ARGV[1]` = `0`); 1 when it did.
#[cfg(feature = "webhook")]
static COMPARE_AND_SET: std::sync::LazyLock<super::link::LuaScript> =
    std::sync::LazyLock::new(|| {
        super::link::LuaScript::new(
            r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
"
            .to_owned(),
        )
    });

/// How long the writers wait for Redis, unless configured.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`PlanStore`] over Redis keys that hold the catalog and the subscriber records as JSON
/// strings, in the formats of [`Catalog::from_json`] and [`Subscriber::from_json`].
///
/// The catalog is at `prefix:catalog`, a user's record at `prefix:{user}:user` (in the user's
/// hash slot, beside the counters of [`RedisUsageStore`](super::RedisUsageStore)). A user
/// without a key (or whose key holds `null`) is unknown; a missing catalog is a store error.
/// A value that is not valid JSON in the expected format is a store error too: the layer logs
/// it (with the path to the bad value) and answers as its failure policy says, and the text
/// never reaches a client.
///
/// The writers ([`set_catalog_json`](Self::set_catalog_json),
/// [`set_user_json`](Self::set_user_json), [`load_json`](Self::load_json)) check the JSON before
/// they write it, so that a layer never reads what they refuse. Applications whose plans live in
/// their own database keep their own [`PlanStore`] and use only the counters and the
/// invalidation.
///
/// A write is seen by a layer when its cached entry goes: after
/// [`RedisInvalidator::user`](super::RedisInvalidator::user) or
/// [`RedisInvalidator::catalog`](super::RedisInvalidator::catalog), or at the end of the cache
/// lifetime.
///
/// Cloning is cheap: clones share the connection.
#[derive(Clone)]
pub struct RedisPlanStore {
    conn: Link,
    keys: Keys,
    timeout: Duration,
}

impl RedisPlanStore {
    /// A store on `conn`, under the default key prefix `tower-plans`.
    ///
    /// [`RedisConnection::plan_store`](super::RedisConnection::plan_store) makes one with the
    /// connection's prefix.
    pub fn new(conn: ConnectionManager) -> Self {
        Self {
            conn: conn.into(),
            keys: Keys::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub(crate) fn with_keys(conn: Link, keys: Keys, timeout: Duration) -> Self {
        Self {
            conn,
            keys,
            timeout,
        }
    }

    /// Puts every key under `prefix` instead of `tower-plans` (braces in it are escaped).
    #[must_use]
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        self.keys = Keys::new(prefix);
        self
    }

    /// How long the writers wait for Redis (default 5 seconds). The layer times its own calls
    /// with its `store_timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Stores the catalog, after checking it (a catalog in the JSON form of
    /// [`Catalog::from_json`]).
    ///
    /// # Errors
    /// [`Error::Load`] when the JSON is not a valid catalog (nothing is written); an
    /// [`Error::Redis`] or [`Error::TimedOut`] when Redis fails.
    pub async fn set_catalog_json(&self, json: &str) -> Result<(), Error> {
        Catalog::from_json(json).map_err(LoadError::Catalog)?;
        self.write(self.keys.catalog(), json.to_owned()).await
    }

    /// Stores the record of user `id`, after checking it (a subscriber record in the JSON form
    /// of [`Subscriber::from_json`]). `null` makes the user unknown.
    ///
    /// The record's add-on names are not checked against the catalog (that would cost a read
    /// of it): the layer ignores an add-on its catalog does not know, with a warning.
    ///
    /// # Errors
    /// [`Error::Load`] when the JSON is not a valid record (nothing is written); an
    /// [`Error::Redis`] or [`Error::TimedOut`] when Redis fails.
    pub async fn set_user_json(&self, id: &str, json: &str) -> Result<(), Error> {
        let value: Value =
            serde_json::from_str(json).map_err(|error| LoadError::UsersJson(Arc::new(error)))?;
        if !value.is_null() {
            Subscriber::from_value(&value).map_err(|error| LoadError::User {
                id: Arc::from(id),
                error,
            })?;
        }
        self.write(self.keys.user(id), json.to_owned()).await
    }

    /// Removes the record of user `id`: the user becomes unknown. Counters are not touched.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn remove_user(&self, id: &str) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        let key = self.keys.user(id);
        let mut del = redis::cmd("DEL");
        del.arg(key);
        let _: i64 = within(self.timeout, del.query_async(&mut conn)).await?;
        Ok(())
    }

    /// Loads the catalog and the users in the formats of
    /// [`MemoryStore::from_json`](crate::MemoryStore::from_json): the catalog, and a JSON object
    /// that maps each user id to its record (a `null` record removes the user). Everything is
    /// checked before anything is written, the records' add-on names against the catalog too;
    /// the writes are then sent in one transaction. A Redis Cluster has no transaction across
    /// hash slots: there each write (the catalog, one user's record) is sent on its own, and when
    /// Redis fails some may have been applied; loading again is safe.
    ///
    /// # Errors
    /// [`Error::Load`] naming the bad document, user or value (nothing is written); an
    /// [`Error::Redis`] or [`Error::TimedOut`] when Redis fails.
    pub async fn load_json(&self, plans_json: &str, users_json: &str) -> Result<(), Error> {
        let catalog = Catalog::from_json(plans_json).map_err(LoadError::Catalog)?;
        let users: Value = serde_json::from_str(users_json)
            .map_err(|error| LoadError::UsersJson(Arc::new(error)))?;
        let mut writes = vec![redis::Cmd::set(self.keys.catalog(), plans_json)];
        match &users {
            Value::Object(records) => {
                for (id, record) in records {
                    if record.is_null() {
                        writes.push(redis::Cmd::del(self.keys.user(id)));
                        continue;
                    }
                    Subscriber::from_value(record)
                        .and_then(|subscriber| subscriber.check_addons(&catalog))
                        .map_err(|error| LoadError::User {
                            id: Arc::from(id.as_str()),
                            error,
                        })?;
                    writes.push(redis::Cmd::set(self.keys.user(id), record.to_string()));
                }
            }
            Value::Null => {}
            other => {
                return Err(LoadError::UsersNotObject {
                    found: json_kind(other),
                }
                .into())
            }
        }
        let mut conn = self.conn.clone();
        within(self.timeout, conn.write_all(writes)).await
    }

    async fn write(&self, key: String, json: String) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        let mut set = redis::cmd("SET");
        set.arg(key).arg(json);
        within(self.timeout, set.query_async::<()>(&mut conn)).await
    }

    /// Replaces a user's rights from one billing source in their record, as
    /// [`Replacement::apply_to_json`](crate::webhook::Replacement::apply_to_json) does: the plan,
    /// that source's add-on grants and the cycle anchor; the usage (in either form) and other
    /// grants are kept as written. The record is read, changed and written back only if it did
    /// not change in between (a compare-and-set script), retried when it did. A user without a
    /// record gets one when the rights grant something; otherwise nothing is written.
    ///
    /// This is what an [`EntitlementHook::replace`](crate::webhook::EntitlementHook::replace)
    /// over Redis records does (the `stripe` feature's receiver calls it); the plan and add-on
    /// names are not checked against the catalog (the layer ignores unknown ones, with a
    /// warning).
    ///
    /// # Errors
    /// [`Error::Load`] when the stored record is not a valid record (nothing is written),
    /// [`Error::Contended`] when it kept changing, an [`Error::Redis`] or [`Error::TimedOut`]
    /// when Redis fails.
    #[cfg(feature = "webhook")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
    pub async fn replace_rights(&self, rights: &crate::webhook::Replacement) -> Result<(), Error> {
        const ATTEMPTS: u32 = 16;
        let key = self.keys.user(&rights.user);
        for _ in 0..ATTEMPTS {
            let mut get = redis::cmd("GET");
            get.arg(&key);
            let stored: Option<String> =
                within(self.timeout, get.query_async(&mut self.conn.clone())).await?;
            let mut record = match &stored {
                Some(text) => serde_json::from_str::<Value>(text)
                    .map_err(|error| LoadError::UsersJson(Arc::new(error)))?,
                None => Value::Null,
            };
            if record.is_null() {
                if !rights.grants_anything() {
                    return Ok(());
                }
            } else {
                Subscriber::from_value(&record).map_err(|error| LoadError::User {
                    id: Arc::from(rights.user.as_str()),
                    error,
                })?;
            }
            rights.apply_to_json(&mut record);
            let mut swap = COMPARE_AND_SET.prepare_invoke();
            swap.key(&key);
            match &stored {
                Some(text) => swap.arg("1").arg(text.as_str()),
                None => swap.arg("0").arg(""),
            };
            swap.arg(record.to_string());
            let swapped: i64 =
                within(self.timeout, swap.invoke_async(&mut self.conn.clone())).await?;
            if swapped == 1 {
                return Ok(());
            }
        }
        Err(Error::Contended { attempts: ATTEMPTS })
    }

    /// The text at `key`, `None` when there is none.
    async fn read(&self, key: String) -> Result<Option<String>, BoxError> {
        let text: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(text)
    }
}

impl fmt::Debug for RedisPlanStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPlanStore")
            .field("prefix", &self.keys.prefix())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PlanStore for RedisPlanStore {
    fn plans(&self) -> StoreFuture<'_, Arc<Catalog>> {
        StoreFuture::new(self.catalog())
    }

    fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
        StoreFuture::new(self.record(id))
    }
}

impl RedisPlanStore {
    /// The catalog at its key.
    async fn catalog(&self) -> Result<Arc<Catalog>, BoxError> {
        let key = self.keys.catalog();
        let Some(json) = self.read(key.clone()).await? else {
            return Err(format!("redis has no catalog at key `{key}`").into());
        };
        let catalog = Catalog::from_json(&json)
            .map_err(|error| format!("the catalog at redis key `{key}` is malformed: {error}"))?;
        Ok(Arc::new(catalog))
    }

    /// The record of user `id` at its key.
    async fn record(&self, id: &str) -> Result<Option<Arc<Subscriber>>, BoxError> {
        let key = self.keys.user(id);
        let Some(json) = self.read(key.clone()).await? else {
            return Ok(None);
        };
        let value: Value = serde_json::from_str(&json)
            .map_err(|error| format!("the record at redis key `{key}` is not JSON: {error}"))?;
        if value.is_null() {
            return Ok(None);
        }
        let subscriber = Subscriber::from_value(&value)
            .map_err(|error| format!("the record at redis key `{key}` is malformed: {error}"))?;
        Ok(Some(Arc::new(subscriber)))
    }
}

//! [`RedisUsageStore`]: counters and reservations in Redis, changed by Lua scripts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::keys::{field, Keys};
use super::link::{Invocation, Link, LuaScript};
use super::scripts::{
    ADJUST_SCRIPT, COMMIT_SCRIPT, GET_SCRIPT, RELEASE_SCRIPT, RESERVE_SCRIPT, RESET_SCRIPT,
    SET_SCRIPT,
};
use super::Error;
use crate::store::{
    BoxError, Count, Counter, ReservationId, Reserve, Seed, StoreFuture, UsageStore,
};

/// Leases at least this long (about 35 000 years) never end.
const ENDLESS_LEASE_MS: u128 = 1 << 50;

/// How long a period's hash of counts outlives the period, in milliseconds: an instance whose
/// clock runs a little behind still finds the period's counts.
const PERIOD_KEPT_MS: u64 = 3_600_000;

/// A [`UsageStore`] in Redis, shared by every instance that points at the same Redis and key
/// prefix.
///
/// Each method runs one Lua script (or one command) on one counter, so reserving, committing and
/// releasing are atomic across instances, exactly as [`MemoryStore`](crate::MemoryStore) is
/// within one process:
///
/// * a counter is one field of its user's hash of used counts; one that does not exist yet is
///   created, at its first successful reservation, at the [`Seed`] the layer gives (the
///   subscriber record's usage, or the item count it follows); a refused reservation creates
///   nothing;
/// * the reservations of a counter are a sorted set of reservation ids scored by the time their
///   lease ends, on Redis's clock; every script first forgets the reservations whose lease has
///   passed, and the set expires with its last reservation, so a crashed instance's holds vanish
///   by themselves;
/// * reserving, committing and releasing are idempotent by [`ReservationId`];
/// * counts are exact up to `u64::MAX` and [`adjust`](UsageStore::adjust) saturates at 0 and at
///   `u64::MAX`;
/// * [`Counted::Items`](crate::store::Counted::Items) and the `create` action are one counter, as
///   in the in-memory store;
/// * a period counter ([`Counter::in_period`]) lives in a hash of the user's counts for that
///   period, whose key names the period (`used@2026-11`) and which expires an hour after the
///   period ends.
///
/// All the keys of one user share a cluster hash slot (`{user}`), and user ids, resource and
/// action names are escaped so that no id can reach another's keys; see the
/// [module docs](super#keys) for the layout.
///
/// Cloning is cheap: clones share the connection.
#[derive(Clone)]
pub struct RedisUsageStore {
    conn: Link,
    keys: Keys,
}

impl RedisUsageStore {
    /// A store on `conn`, under the default key prefix `tower-plans`.
    ///
    /// [`RedisConnection::usage_store`](super::RedisConnection::usage_store) makes one with the
    /// connection's prefix.
    pub fn new(conn: ConnectionManager) -> Self {
        Self {
            conn: conn.into(),
            keys: Keys::default(),
        }
    }

    pub(crate) fn with_keys(conn: Link, keys: Keys) -> Self {
        Self { conn, keys }
    }

    /// Puts every key under `prefix` instead of `tower-plans` (braces in it are escaped, so that
    /// the user's hash tag stays the only one).
    #[must_use]
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        self.keys = Keys::new(prefix);
        self
    }

    /// Removes a counter and its reservations: the next reservation starts again from its seed.
    /// For administration and tests; the layer never calls it.
    ///
    /// # Errors
    /// When Redis cannot be reached or answers with an error.
    pub async fn reset(&self, counter: &Counter) -> Result<(), Error> {
        let _: i64 = self
            .invoke(&RESET_SCRIPT, counter, [])
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The script with the counter's keys and field, then `args`, then when a period hash
    /// expires (the last argument of every script).
    fn invoke<'a, const N: usize>(
        &self,
        script: &'a LuaScript,
        counter: &Counter,
        args: [String; N],
    ) -> Invocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.keys.used_by(counter))
            .key(self.keys.held(counter))
            .arg(field(counter));
        for arg in args {
            invocation.arg(arg);
        }
        invocation.arg(expiry_arg(counter));
        invocation
    }
}

impl fmt::Debug for RedisUsageStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUsageStore")
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

/// When the hash of a period counter expires, `''` for a counter without a period.
fn expiry_arg(counter: &Counter) -> String {
    counter.period.map_or_else(String::new, |window| {
        window.end().saturating_add(PERIOD_KEPT_MS).to_string()
    })
}

/// A count the scripts answered, as a decimal string.
fn parse_count(text: &str) -> Result<u64, BoxError> {
    text.parse()
        .map_err(|_| format!("redis answered {text:?} where a count was expected").into())
}

/// The lease in milliseconds for the reserve script: at least 1, and `''` for an endless one.
fn lease_arg(lease: Duration) -> String {
    let millis = lease.as_nanos().div_ceil(1_000_000).max(1);
    if millis >= ENDLESS_LEASE_MS {
        String::new()
    } else {
        millis.to_string()
    }
}

/// The arguments that say where a counter starts: the seed's count, and the field of the item
/// counter it follows (`''` when it follows none).
fn seed_args(counter: &Counter, seed: Seed) -> [String; 2] {
    let follows = match seed {
        // Only a counter without a period follows the item count, kept in the same hash.
        Seed::Items(_) if counter.period.is_none() => field(&Counter::items(
            Arc::clone(&counter.user),
            Arc::clone(&counter.resource),
        )),
        _ => String::new(),
    };
    [seed.count().to_string(), follows]
}

impl UsageStore for RedisUsageStore {
    fn reserve<'a>(
        &'a self,
        counter: &'a Counter,
        limit: Option<u64>,
        seed: Seed,
        id: ReservationId,
        lease: Duration,
    ) -> StoreFuture<'a, Reserve> {
        StoreFuture::new(async move {
            let [seed, follows] = seed_args(counter, seed);
            let invocation = self.invoke(
                &RESERVE_SCRIPT,
                counter,
                [
                    limit.map_or_else(String::new, |limit| limit.to_string()),
                    seed,
                    id.to_string(),
                    lease_arg(lease),
                    follows,
                ],
            );
            let (reserved, used, held): (i64, String, i64) =
                invocation.invoke_async(&mut self.conn.clone()).await?;
            let used = parse_count(&used)?;
            let held = u64::try_from(held).map_err(|_| "redis answered a negative hold count")?;
            Ok(if reserved == 1 {
                Reserve::Reserved { used, held }
            } else {
                Reserve::Refused { used, held }
            })
        })
    }

    fn commit<'a>(&'a self, counter: &'a Counter, id: ReservationId) -> StoreFuture<'a, u64> {
        StoreFuture::new(async move {
            let invocation = self.invoke(&COMMIT_SCRIPT, counter, [id.to_string()]);
            let used: String = invocation.invoke_async(&mut self.conn.clone()).await?;
            parse_count(&used)
        })
    }

    fn release<'a>(&'a self, counter: &'a Counter, id: ReservationId) -> StoreFuture<'a, ()> {
        StoreFuture::new(async move {
            let invocation = self.invoke(&RELEASE_SCRIPT, counter, [id.to_string()]);
            let _: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
            Ok(())
        })
    }

    fn adjust<'a>(&'a self, counter: &'a Counter, delta: i64, seed: Seed) -> StoreFuture<'a, u64> {
        StoreFuture::new(async move {
            let sign = if delta < 0 { "-" } else { "+" };
            let [seed, follows] = seed_args(counter, seed);
            let invocation = self.invoke(
                &ADJUST_SCRIPT,
                counter,
                [
                    sign.to_owned(),
                    delta.unsigned_abs().to_string(),
                    seed,
                    follows,
                ],
            );
            let used: String = invocation.invoke_async(&mut self.conn.clone()).await?;
            parse_count(&used)
        })
    }

    fn set<'a>(&'a self, counter: &'a Counter, used: u64) -> StoreFuture<'a, ()> {
        StoreFuture::new(async move {
            let _: i64 = self
                .invoke(&SET_SCRIPT, counter, [used.to_string()])
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, counter: &'a Counter) -> StoreFuture<'a, Option<Count>> {
        StoreFuture::new(async move {
            let answer: Option<(String, i64)> = self
                .invoke(&GET_SCRIPT, counter, [])
                .invoke_async(&mut self.conn.clone())
                .await?;
            let Some((used, held)) = answer else {
                return Ok(None);
            };
            Ok(Some(Count {
                used: parse_count(&used)?,
                held: u64::try_from(held).map_err(|_| "redis answered a negative hold count")?,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_round_up_to_a_millisecond_and_very_long_ones_never_end() {
        assert_eq!(lease_arg(Duration::from_nanos(1)), "1");
        assert_eq!(lease_arg(Duration::from_micros(1500)), "2");
        assert_eq!(lease_arg(Duration::from_secs(300)), "300000");
        assert_eq!(lease_arg(Duration::MAX), "");
        assert_eq!(
            lease_arg(Duration::from_secs(100 * 365 * 86_400)),
            "3153600000000"
        );
    }

    #[test]
    fn counts_parse_or_fail_with_the_text() {
        assert_eq!(parse_count("18446744073709551615").unwrap(), u64::MAX);
        let error = parse_count("x1").unwrap_err();
        assert!(error.to_string().contains("\"x1\""));
    }
}

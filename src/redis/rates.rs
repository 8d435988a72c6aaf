//! [`RedisRates`]: the rates of every instance, one theoretical arrival time per key in Redis,
//! changed by Lua scripts.

use std::fmt;

use redis::aio::ConnectionManager;

use super::keys::Keys;
use super::link::Link;
use super::scripts::{RATE_ACQUIRE_SCRIPT, RATE_REFUND_SCRIPT};
use crate::rate::{Gcra, RateDecision, RateKey, RateStore};
use crate::store::{BoxError, StoreFuture};

/// How long a rate's key outlives its theoretical arrival time, in milliseconds: an instance
/// whose clock runs up to this much behind another's still finds the key while, on its clock,
/// the rate has not come back whole.
const KEPT_MS: u64 = 1000;

/// A [`RateStore`] in Redis, shared by every instance that points at the same Redis (or Redis
/// Cluster) and key prefix: a rate holds across all of them, as
/// [`MemoryRates`](crate::rate::MemoryRates) holds it within one process.
///
/// Each [`RateKey`] is one string key in its user's hash slot (`{user}`, beside the user's
/// counters): `rate` for the plan-wide rate, `rate:<resource>:<action>` for an action's, with
/// user ids, resource and action names escaped as the usage store's are (see the
/// [module docs](super#keys)). Its value is the key's theoretical arrival time (TAT) in
/// microseconds.
///
/// * [`acquire`](RateStore::acquire) is one Lua script: it reads the TAT, lets the request
///   through exactly when [`Gcra::step`] does, and then stores the step's new TAT; the
///   decision, with its figures, is [`Gcra::step`]'s on the TAT the script read, so Redis and
///   memory decide alike. The arithmetic is exact on the whole `u64` range and saturates as
///   the step's does.
/// * [`refund`](RateStore::refund) is one script that moves the TAT back by one emission
///   interval ([`Gcra::refund`]), and does nothing when the key is gone.
/// * The time is the caller's `now_ms` (the layer's clock), never Redis's: the TAT is kept on
///   the clock it is compared with, and a layer with its own clock (tests, simulations) works
///   as with memory. Instances should keep their clocks in step (NTP); one whose clock is
///   behind lets a user's requests through a little later than another would.
/// * A key expires a second after its TAT has passed (the expiry is relative, on Redis's
///   clock), when the rate is whole again and a missing key decides alike: idle users cost
///   nothing.
///
/// A TAT in Redis that is not a number is an error (the layer's failure policy answers), never
/// a guess. Cloning is cheap: clones share the connection.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_plans::redis::RedisConnection;
/// use tower_plans::PlanLimitLayer;
///
/// let redis = RedisConnection::open("redis://127.0.0.1:6379/").await?.key_prefix("myapp");
/// // Every instance: the plans' rates hold across all of them.
/// let layer = PlanLimitLayer::builder(redis.plan_store())
///     .count_usage(redis.usage_store())
///     .rate_store(redis.rate_store())
///     .build()?;
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisRates {
    conn: Link,
    keys: Keys,
}

impl RedisRates {
    /// A store on `conn`, under the default key prefix `tower-plans`.
    ///
    /// [`RedisConnection::rate_store`](super::RedisConnection::rate_store) makes one with the
    /// connection's prefix, on one Redis or a cluster.
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
}

impl RateStore for RedisRates {
    fn acquire<'a>(
        &'a self,
        key: &'a RateKey,
        gcra: Gcra,
        now_ms: u64,
    ) -> StoreFuture<'a, RateDecision> {
        StoreFuture::new(async move {
            let now_us = now_ms.saturating_mul(1000);
            let mut invocation = RATE_ACQUIRE_SCRIPT.prepare_invoke();
            invocation
                .key(self.keys.rate(key))
                .arg(now_us.to_string())
                .arg(gcra.emission_interval().as_micros().to_string())
                .arg(gcra.tolerance().as_micros().to_string())
                .arg(KEPT_MS.to_string());
            let answer: Vec<String> = invocation.invoke_async(&mut self.conn.clone()).await?;
            decide(&answer, gcra, now_us)
        })
    }

    fn refund<'a>(&'a self, key: &'a RateKey, gcra: Gcra) -> StoreFuture<'a, ()> {
        StoreFuture::new(async move {
            let mut invocation = RATE_REFUND_SCRIPT.prepare_invoke();
            invocation
                .key(self.keys.rate(key))
                .arg(gcra.emission_interval().as_micros().to_string());
            let _: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
            Ok(())
        })
    }
}

impl fmt::Debug for RedisRates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRates")
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

/// The decision of the acquire script's answer `{tat, new}` (the TAT it read, and the one it
/// stored or `''`): [`Gcra::step`] on the TAT read, which must have stored what the script did.
fn decide(answer: &[String], gcra: Gcra, now_us: u64) -> Result<RateDecision, BoxError> {
    let [tat, stored] = answer else {
        return Err(format!("redis answered {answer:?} to a rate").into());
    };
    let tat = parse_tat(tat)?;
    let stored = match stored.as_str() {
        "" => None,
        text => Some(parse_tat(text)?),
    };
    let (decision, next) = gcra.step(tat, now_us);
    if stored != next {
        return Err(format!(
            "redis stored the rate's time {stored:?} where {next:?} was due (from {tat} at {now_us})"
        )
        .into());
    }
    Ok(decision)
}

/// A theoretical arrival time the script answered, as a decimal string.
fn parse_tat(text: &str) -> Result<u64, BoxError> {
    text.parse().map_err(|_| {
        format!("redis answered {text:?} where a time in microseconds was expected").into()
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn answer(tat: &str, stored: &str) -> Vec<String> {
        vec![tat.to_owned(), stored.to_owned()]
    }

    #[test]
    fn the_decision_is_the_steps_on_the_time_read_and_must_agree_with_what_was_stored() {
        let gcra = Gcra::new(2, Duration::from_secs(1), 2).expect("a valid rate");
        let now = 1_000_000_000;
        assert_eq!(
            decide(&answer("0", "1000500000"), gcra, now).unwrap(),
            RateDecision::Allowed {
                remaining: 1,
                reset_ms: 500
            }
        );
        assert_eq!(
            decide(&answer("1001000000", ""), gcra, now).unwrap(),
            RateDecision::Limited {
                retry_after_ms: 500
            }
        );
        // Stored where the step refuses, nothing stored where it lets through, or another time.
        for (tat, stored) in [("1001000000", "1001500000"), ("0", ""), ("0", "1000500001")] {
            let error = decide(&answer(tat, stored), gcra, now).unwrap_err();
            assert!(error.to_string().contains("was due"), "{error}");
        }
        for bad in [
            answer("x", ""),
            answer("-1", ""),
            answer("18446744073709551616", ""),
            answer("0", "y"),
            vec!["0".to_owned()],
            Vec::new(),
        ] {
            let error = decide(&bad, gcra, now).unwrap_err();
            assert!(error.to_string().contains("redis answered"), "{error}");
        }
    }
}

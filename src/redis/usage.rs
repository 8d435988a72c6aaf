//! [`RedisUsageStore`]: counters and reservations in Redis, changed by Lua scripts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use smallvec::SmallVec;

use super::keys::{field, Keys};
use super::link::{Invocation, Link, LuaScript};
use super::scripts::{
    ADJUST_SCRIPT, COMMIT_SCRIPT, GET_SCRIPT, MARK_SCRIPT, RELEASE_SCRIPT, RESERVE_SCRIPT,
    RESET_SCRIPT, SET_SCRIPT,
};
use super::Error;
use crate::store::{BoxError, Count, Counter, Held, Hold, Line, Seed, StoreFuture, UsageStore};

/// Leases at least this long (about 35 000 years) never end.
const ENDLESS_LEASE_MS: u128 = 1 << 50;

/// How long a period's hash of counts outlives the period, in milliseconds: an instance whose
/// clock runs a little behind still finds the period's counts.
const PERIOD_KEPT_MS: u64 = 3_600_000;

/// A [`UsageStore`] in Redis, shared by every instance that points at the same Redis and key
/// prefix.
///
/// Reserving, committing and releasing a [`Hold`] are each one Lua script over all its
/// counters, so they are atomic across instances, exactly as
/// [`MemoryStore`](crate::MemoryStore) is within one process: a hold's lines are held all or
/// none, and two instances never both take the last units. The other methods run one script
/// on one counter.
///
/// * a counter is one field of its user's hash of used counts; one that does not exist yet is
///   created, when a reservation first holds units on it, at the [`Seed`] its line gives (the
///   subscriber record's usage, or the item count it follows); a refused reservation creates
///   nothing;
/// * the reservations of a counter are a sorted set of reservation ids scored by the time their
///   lease ends, on Redis's clock, beside a hash of the units each holds and their sum; every
///   script that changes holds first forgets those whose lease has passed, with their units, and
///   both keys expire with their last lease, so a crashed instance's holds vanish by
///   themselves;
/// * reserving, committing and releasing are idempotent by [`ReservationId`](crate::store::ReservationId);
/// * counts are exact up to `u64::MAX` and [`adjust`](UsageStore::adjust) saturates at 0 and at
///   `u64::MAX`;
/// * [`Counted::Items`](crate::store::Counted::Items) and the `create` action are one counter, as
///   in the in-memory store; a credit pool ([`Counter::credits`]) and each of its grants
///   ([`Counter::grant`]) are counters of their own;
/// * a period counter ([`Counter::in_period`]), of an action or of a pool, lives in a hash of the
///   user's counts for that period, whose key names the period (`used@2026-11`) and which
///   expires an hour after the period ends;
/// * the alert markers of a counter ([`UsageStore::mark`]) are the fields of a hash of their
///   own (`marks:clients:i`, `marks:reports:i@2026-11`), set with `HSETNX`, so that of any
///   number of instances marking at once exactly one sets a marker; a period counter's hash
///   expires one period after the period ends ([`Counter::marks_kept_until`]).
///
/// All the keys of one user share a cluster hash slot (`{user}`), and user ids, resource,
/// action, pool and grant names are escaped so that no id can reach another's keys; see the
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
            .invoke(&RESET_SCRIPT, counter, true, [])
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// A one-counter script with the counter's keys and field, then `args`, then when its hash
    /// of used counts expires (the last argument of every one-counter script). `with_holds`
    /// adds the keys of its reservations.
    fn invoke<'a, const N: usize>(
        &self,
        script: &'a LuaScript,
        counter: &Counter,
        with_holds: bool,
        args: [String; N],
    ) -> Invocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation.key(self.keys.used_by(counter));
        if with_holds {
            invocation
                .key(self.keys.held(counter))
                .key(self.keys.units(counter));
        }
        invocation.arg(field(counter));
        for arg in args {
            invocation.arg(arg);
        }
        invocation.arg(expiry_arg(counter));
        invocation
    }

    /// A hold script with `hold`'s keys and lines after `head`, in the layout the scripts'
    /// module describes. `units` gives what each line takes (or spent).
    fn invoke_hold<'a>(
        &self,
        script: &'a LuaScript,
        hold: &Hold,
        head: &[String],
        units: impl Fn(usize, &Line) -> u64,
    ) -> Invocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(hold.id().to_string());
        for arg in head {
            invocation.arg(arg);
        }
        for (index, line) in hold.lines().iter().enumerate() {
            let counter = line.counter();
            self.counter_keys(&mut invocation, counter);
            let [seed, follows] = seed_args(counter, line.start());
            invocation
                .arg(field(counter))
                .arg(expiry_arg(counter))
                .arg(line.max().map_or_else(String::new, |max| max.to_string()))
                .arg(units(index, line).to_string())
                .arg(seed)
                .arg(follows)
                .arg(line.grants().len().to_string());
            for grant in line.grants() {
                self.counter_keys(&mut invocation, grant.counter());
                invocation
                    .arg(field(grant.counter()))
                    .arg(expiry_arg(grant.counter()))
                    .arg(grant.amount().to_string());
            }
        }
        invocation
    }

    /// The three keys of `counter` in a hold script: its hash of used counts, its sorted set
    /// of reservations and the hash of their units.
    fn counter_keys(&self, invocation: &mut Invocation<'_>, counter: &Counter) {
        invocation
            .key(self.keys.used_by(counter))
            .key(self.keys.held(counter))
            .key(self.keys.units(counter));
    }
}

impl fmt::Debug for RedisUsageStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUsageStore")
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

/// When the hash of a counter's alert markers expires, `''` for a counter without a period.
fn marks_expiry_arg(counter: &Counter) -> String {
    counter
        .marks_kept_until()
        .map_or_else(String::new, |until| until.to_string())
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
            counter.resource.clone(),
        )),
        _ => String::new(),
    };
    [seed.count().to_string(), follows]
}

/// The user whose counters `hold` touches, `None` for a hold without lines: all its counters
/// belong to one user, whose keys share a hash slot.
fn user_of(hold: &Hold) -> Result<Option<&str>, BoxError> {
    let mut counters = hold.lines().iter().flat_map(|line| {
        std::iter::once(line.counter()).chain(line.grants().iter().map(|grant| grant.counter()))
    });
    let Some(first) = counters.next() else {
        return Ok(None);
    };
    if counters.any(|counter| counter.user != first.user) {
        return Err("the counters of one reservation belong to one user".into());
    }
    Ok(Some(&first.user))
}

/// The counts the reserve script answered, one pair of decimal strings per line after its
/// `'1'`, or the refused line and its count after its `'0'`.
fn parse_held(answer: &[String], lines: usize) -> Result<Held, BoxError> {
    let pair = |used: &str, held: &str| -> Result<Count, BoxError> {
        Ok(Count {
            used: parse_count(used)?,
            held: parse_count(held)?,
        })
    };
    match answer {
        [reserved, counts @ ..] if reserved == "1" && counts.len() == 2 * lines => {
            let counts = counts
                .chunks_exact(2)
                .map(|count| pair(&count[0], &count[1]))
                .collect::<Result<_, _>>()?;
            Ok(Held::Reserved(counts))
        }
        [refused, line, used, held] if refused == "0" => {
            let line: usize = line
                .parse()
                .ok()
                .filter(|line| *line < lines)
                .ok_or_else(|| format!("redis answered {line:?} where a line was expected"))?;
            Ok(Held::Refused {
                line,
                count: pair(used, held)?,
            })
        }
        _ => Err(format!("redis answered {answer:?} to a reservation").into()),
    }
}

impl UsageStore for RedisUsageStore {
    fn reserve<'a>(&'a self, hold: &'a Hold, lease: Duration) -> StoreFuture<'a, Held> {
        StoreFuture::new(async move {
            if user_of(hold)?.is_none() {
                return Ok(Held::Reserved(SmallVec::new()));
            }
            let invocation =
                self.invoke_hold(&RESERVE_SCRIPT, hold, &[lease_arg(lease)], |_, line| {
                    line.units()
                });
            let answer: Vec<String> = invocation.invoke_async(&mut self.conn.clone()).await?;
            parse_held(&answer, hold.lines().len())
        })
    }

    fn commit<'a>(&'a self, hold: &'a Hold, spent: &'a [u64]) -> StoreFuture<'a, ()> {
        StoreFuture::new(async move {
            if user_of(hold)?.is_none() {
                return Ok(());
            }
            let invocation = self.invoke_hold(&COMMIT_SCRIPT, hold, &[], |index, line| {
                spent.get(index).copied().unwrap_or(line.units())
            });
            let _: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
            Ok(())
        })
    }

    fn release<'a>(&'a self, hold: &'a Hold) -> StoreFuture<'a, ()> {
        StoreFuture::new(async move {
            if user_of(hold)?.is_none() {
                return Ok(());
            }
            let invocation = self.invoke_hold(&RELEASE_SCRIPT, hold, &[], |_, line| line.units());
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
                false,
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
                .invoke(&SET_SCRIPT, counter, false, [used.to_string()])
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, counter: &'a Counter) -> StoreFuture<'a, Option<Count>> {
        StoreFuture::new(async move {
            let answer: Option<(String, String)> = self
                .invoke(&GET_SCRIPT, counter, true, [])
                .invoke_async(&mut self.conn.clone())
                .await?;
            let Some((used, held)) = answer else {
                return Ok(None);
            };
            Ok(Some(Count {
                used: parse_count(&used)?,
                held: parse_count(&held)?,
            }))
        })
    }

    fn mark<'a>(&'a self, counter: &'a Counter, mark: &'a str) -> StoreFuture<'a, bool> {
        StoreFuture::new(async move {
            let mut invocation = MARK_SCRIPT.prepare_invoke();
            invocation
                .key(self.keys.marks(counter))
                .arg(mark)
                .arg(marks_expiry_arg(counter));
            let set: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
            match set {
                0 => Ok(false),
                1 => Ok(true),
                other => Err(format!("redis answered {other} to a marker").into()),
            }
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

    fn answer(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|part| (*part).to_owned()).collect()
    }

    #[test]
    fn reservations_parse_per_line_or_fail_with_the_answer() {
        let count = |used, held| Count { used, held };
        let reserved = parse_held(&answer(&["1", "2", "0", "18446744073709551615", "3"]), 2);
        assert_eq!(
            reserved.unwrap(),
            Held::Reserved([count(2, 0), count(u64::MAX, 3)].into_iter().collect())
        );
        let refused = parse_held(&answer(&["0", "1", "4", "5"]), 2).unwrap();
        assert_eq!(
            refused,
            Held::Refused {
                line: 1,
                count: count(4, 5)
            }
        );
        for bad in [
            &["1", "2", "0"][..],
            &["1", "2"],
            &["0", "2", "4", "5"],
            &["0", "x", "4", "5"],
            &["0", "0", "-4", "5"],
            &["2", "0", "4", "5"],
            &[],
        ] {
            let error = parse_held(&answer(bad), 2).expect_err("a malformed answer");
            assert!(error.to_string().contains("redis answered"), "{error}");
        }
    }

    #[test]
    fn a_hold_belongs_to_one_user() {
        use crate::store::{ReservationId, Spill};

        let id = ReservationId::new();
        assert_eq!(user_of(&Hold::new(id)).unwrap(), None);
        let john = Hold::new(id).with(
            Line::new(Counter::credits("john", "ai"), 3)
                .grant(Spill::new(Counter::grant("john", "ai", "g"), 5)),
        );
        assert_eq!(user_of(&john).unwrap(), Some("john"));
        let mixed = Hold::new(id).with(
            Line::new(Counter::credits("john", "ai"), 3)
                .grant(Spill::new(Counter::grant("jane", "ai", "g"), 5)),
        );
        assert!(user_of(&mixed).is_err());
    }

    #[test]
    fn counts_parse_or_fail_with_the_text() {
        assert_eq!(parse_count("18446744073709551615").unwrap(), u64::MAX);
        let error = parse_count("x1").unwrap_err();
        assert!(error.to_string().contains("\"x1\""));
    }
}

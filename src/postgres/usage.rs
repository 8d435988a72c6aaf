//! The [`UsageStore`] of [`PostgresStore`]: counters and holds in tables, changed by the schema's
//! counting functions.

use std::time::Duration;

use smallvec::SmallVec;

use super::PostgresStore;
use crate::catalog::Action;
use crate::store::{
    BoxError, Count, Counted, Counter, Held, Hold, Line, ReservationId, Seed, StoreFuture,
    UsageStore,
};

/// Leases at least this long (about 35 000 years) never end.
const ENDLESS_LEASE_MS: u128 = 1 << 50;

/// How long a period's counters outlive the period before [`PostgresStore::sweep`] deletes
/// them, in milliseconds: an instance whose clock runs a little behind still finds them.
pub(super) const PERIOD_KEPT_MS: i64 = 3_600_000;

const RESERVE: &str = "
SELECT r.o_reserved, r.o_line, r.o_used::text[], r.o_held::text[]
  FROM tower_plans.reserve($1::uuid, $2, $3, $4, $5, $6, $7, $8,
                           $9::numeric[], $10::numeric[], $11::numeric[], $12, $13) r";

const COMMIT: &str = "
SELECT tower_plans.commit($1::uuid, $2, $3, $4, $5, $6, $7,
                          $8::numeric[], $9::numeric[], $10::numeric[], $11)";

const RELEASE: &str = "DELETE FROM tower_plans.holds WHERE reservation = $1::uuid AND user_id = $2";

const ADJUST: &str = "
SELECT tower_plans.adjust($1, $2, $3, $4, $5, $6::numeric, $7::numeric, $8)::text";

const SET: &str = "
INSERT INTO tower_plans.counters (user_id, resource, counted, period, used, period_end_ms)
VALUES ($1, $2, $3, $4, $5::numeric, $6)
ON CONFLICT (user_id, resource, counted, period)
DO UPDATE SET used = excluded.used, period_end_ms = excluded.period_end_ms";

const GET: &str = "
SELECT (SELECT c.used FROM tower_plans.counters c
         WHERE c.user_id = $1 AND c.resource = $2 AND c.counted = $3 AND c.period = $4)::text,
       (SELECT COALESCE(sum(h.units), 0) FROM tower_plans.holds h
         WHERE h.user_id = $1 AND h.resource = $2 AND h.counted = $3 AND h.period = $4
           AND (h.expires_at IS NULL OR h.expires_at > clock_timestamp()))::text";

/// Sets a marker: a row when there was none, answering `true`; no row when it was set.
const MARK: &str = "
INSERT INTO tower_plans.alert_marks (user_id, resource, counted, period, mark, kept_until_ms)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING true";

const RESET: &str = "
DELETE FROM tower_plans.counters
 WHERE user_id = $1 AND resource = $2 AND counted = $3 AND period = $4";

/// How a counter is keyed in the `counters` and `holds` tables, beside its user and resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Key {
    /// `i` for the item count (and a resource's creates), `a:<action>`, `c` for a pool's
    /// credits, `g:<id>` for a grant's.
    pub(super) counted: String,
    /// Empty for a count that never resets, else `<per>:<start ms>`.
    pub(super) period: String,
    /// When the period ends (ms since the Unix epoch), for a period counter.
    pub(super) period_end: Option<i64>,
}

impl Key {
    pub(super) fn of(counter: &Counter) -> Key {
        let counted = match &counter.counted {
            Counted::Items => "i".to_owned(),
            Counted::Action(action) => match &*action.normalised() {
                Action::Create => "i".to_owned(),
                action => format!("a:{}", action.as_str()),
            },
            Counted::Credits => "c".to_owned(),
            Counted::Grant(id) => format!("g:{id}"),
        };
        let (period, period_end) = match &counter.period {
            Some(window) => (
                format!("{}:{}", window.per().as_str(), window.start()),
                Some(i64::try_from(window.end()).unwrap_or(i64::MAX)),
            ),
            None => (String::new(), None),
        };
        Key {
            counted,
            period,
            period_end,
        }
    }
}

/// A reservation's parts as the counting functions take them: one element per counter, a line's
/// own counter first, then the grants it spills over to.
#[derive(Debug, Default)]
struct Parts {
    line: Vec<i32>,
    grant: Vec<bool>,
    resource: Vec<String>,
    counted: Vec<String>,
    period: Vec<String>,
    period_end: Vec<Option<i64>>,
    /// The line's units (reserve) or spent units (commit), on each of its parts.
    units: Vec<String>,
    /// The line's limit on its own part, the grant's amount on a grant's.
    max: Vec<Option<String>>,
    seed: Vec<String>,
    follows: Vec<bool>,
}

impl Parts {
    /// The parts of `hold`, each line with `units(index, line)`; and the user they belong to.
    fn of(
        hold: &Hold,
        units: impl Fn(usize, &Line) -> u64,
    ) -> Result<(Option<String>, Parts), BoxError> {
        let mut parts = Parts::default();
        let mut user: Option<&str> = None;
        for (index, line) in hold.lines().iter().enumerate() {
            let index = i32::try_from(index).map_err(|_| "a reservation with too many lines")?;
            let units = units(index as usize, line).to_string();
            let own = line.counter();
            let seed = line.start();
            parts.push(
                index,
                false,
                own,
                &units,
                line.max(),
                seed.count(),
                seed.follows_items() && own.period.is_none(),
            );
            for grant in line.grants() {
                parts.push(
                    index,
                    true,
                    grant.counter(),
                    &units,
                    Some(grant.amount()),
                    0,
                    false,
                );
            }
            for counter in std::iter::once(own).chain(line.grants().iter().map(|g| g.counter())) {
                match user {
                    None => user = Some(&counter.user),
                    Some(first) if first == &*counter.user => {}
                    Some(_) => {
                        return Err("the counters of one reservation belong to one user".into())
                    }
                }
            }
        }
        Ok((user.map(str::to_owned), parts))
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        line: i32,
        grant: bool,
        counter: &Counter,
        units: &str,
        max: Option<u64>,
        seed: u64,
        follows: bool,
    ) {
        let key = Key::of(counter);
        self.line.push(line);
        self.grant.push(grant);
        self.resource.push(counter.resource.to_string());
        self.counted.push(key.counted);
        self.period.push(key.period);
        self.period_end.push(key.period_end);
        self.units.push(units.to_owned());
        self.max.push(max.map(|max| max.to_string()));
        self.seed.push(seed.to_string());
        self.follows.push(follows);
    }
}

/// The reservation id as Postgres reads a `uuid`: 32 hexadecimal digits.
fn uuid(id: ReservationId) -> String {
    id.to_string()
}

/// The lease in milliseconds, at least 1, `None` for one that never ends.
fn lease_ms(lease: Duration) -> Option<i64> {
    let millis = lease.as_nanos().div_ceil(1_000_000).max(1);
    if millis >= ENDLESS_LEASE_MS {
        None
    } else {
        i64::try_from(millis).ok()
    }
}

/// A count the database answered, as decimal text.
fn parse_count(text: &str) -> Result<u64, BoxError> {
    text.parse()
        .map_err(|_| format!("postgres answered {text:?} where a count was expected").into())
}

/// Pairs of used and held counts, as the reserve function answers them.
fn counts(used: &[String], held: &[String]) -> Result<SmallVec<[Count; 2]>, BoxError> {
    if used.len() != held.len() {
        return Err("postgres answered counts of different lengths".into());
    }
    used.iter()
        .zip(held)
        .map(|(used, held)| {
            Ok(Count {
                used: parse_count(used)?,
                // Units held by many reservations may add up past u64::MAX.
                held: parse_count(held).or_else(|_| {
                    if held.bytes().all(|b| b.is_ascii_digit()) && !held.is_empty() {
                        Ok(u64::MAX)
                    } else {
                        Err(BoxError::from(format!(
                            "postgres answered {held:?} where a count was expected"
                        )))
                    }
                })?,
            })
        })
        .collect()
}

impl PostgresStore {
    /// Removes a counter and its holds: the next reservation starts again from its seed. For
    /// administration and tests; the layer never calls it.
    ///
    /// # Errors
    /// When Postgres fails.
    pub async fn reset(&self, counter: &Counter) -> Result<(), super::Error> {
        let key = Key::of(counter);
        sqlx::query(RESET)
            .bind(&*counter.user)
            .bind(&*counter.resource)
            .bind(&key.counted)
            .bind(&key.period)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn reserve_hold(&self, hold: &Hold, lease: Duration) -> Result<Held, BoxError> {
        let (Some(user), parts) = Parts::of(hold, |_, line| line.units())? else {
            return Ok(Held::Reserved(SmallVec::new()));
        };
        let (reserved, line, used, held): (bool, Option<i32>, Vec<String>, Vec<String>) =
            sqlx::query_as(RESERVE)
                .bind(uuid(hold.id()))
                .bind(user)
                .bind(&parts.line)
                .bind(&parts.grant)
                .bind(&parts.resource)
                .bind(&parts.counted)
                .bind(&parts.period)
                .bind(&parts.period_end)
                .bind(&parts.units)
                .bind(&parts.max)
                .bind(&parts.seed)
                .bind(&parts.follows)
                .bind(lease_ms(lease))
                .fetch_one(&self.pool)
                .await?;
        let counts = counts(&used, &held)?;
        if reserved {
            if counts.len() != hold.lines().len() {
                return Err("postgres answered a count per line of another hold".into());
            }
            return Ok(Held::Reserved(counts));
        }
        let line = line
            .and_then(|line| usize::try_from(line).ok())
            .filter(|line| *line < hold.lines().len())
            .ok_or("postgres refused a reservation without naming its line")?;
        let count = counts
            .first()
            .copied()
            .ok_or("postgres refused a reservation without its count")?;
        Ok(Held::Refused { line, count })
    }

    async fn commit_hold(&self, hold: &Hold, spent: &[u64]) -> Result<(), BoxError> {
        let (Some(user), parts) = Parts::of(hold, |index, line| {
            spent.get(index).copied().unwrap_or(line.units())
        })?
        else {
            return Ok(());
        };
        sqlx::query(COMMIT)
            .bind(uuid(hold.id()))
            .bind(user)
            .bind(&parts.grant)
            .bind(&parts.resource)
            .bind(&parts.counted)
            .bind(&parts.period)
            .bind(&parts.period_end)
            .bind(&parts.units)
            .bind(&parts.max)
            .bind(&parts.seed)
            .bind(&parts.follows)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn release_hold(&self, hold: &Hold) -> Result<(), BoxError> {
        let (Some(user), _) = Parts::of(hold, |_, line| line.units())? else {
            return Ok(());
        };
        sqlx::query(RELEASE)
            .bind(uuid(hold.id()))
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn adjust_counter(
        &self,
        counter: &Counter,
        delta: i64,
        seed: Seed,
    ) -> Result<u64, BoxError> {
        let key = Key::of(counter);
        let used: String = sqlx::query_scalar(ADJUST)
            .bind(&*counter.user)
            .bind(&*counter.resource)
            .bind(&key.counted)
            .bind(&key.period)
            .bind(key.period_end)
            .bind(delta.to_string())
            .bind(seed.count().to_string())
            .bind(seed.follows_items() && counter.period.is_none())
            .fetch_one(&self.pool)
            .await?;
        parse_count(&used)
    }

    async fn set_counter(&self, counter: &Counter, used: u64) -> Result<(), BoxError> {
        let key = Key::of(counter);
        sqlx::query(SET)
            .bind(&*counter.user)
            .bind(&*counter.resource)
            .bind(&key.counted)
            .bind(&key.period)
            .bind(used.to_string())
            .bind(key.period_end)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_counter(&self, counter: &Counter) -> Result<Option<Count>, BoxError> {
        let key = Key::of(counter);
        let (used, held): (Option<String>, String) = sqlx::query_as(GET)
            .bind(&*counter.user)
            .bind(&*counter.resource)
            .bind(&key.counted)
            .bind(&key.period)
            .fetch_one(&self.pool)
            .await?;
        let held = counts(&[String::from("0")], &[held])?
            .first()
            .map_or(0, |count| count.held);
        match used {
            None if held == 0 => Ok(None),
            None => Ok(Some(Count { used: 0, held })),
            Some(used) => Ok(Some(Count {
                used: parse_count(&used)?,
                held,
            })),
        }
    }
}

impl PostgresStore {
    async fn set_mark(&self, counter: &Counter, mark: &str) -> Result<bool, BoxError> {
        let key = Key::of(counter);
        let kept_until = counter
            .marks_kept_until()
            .map(|until| i64::try_from(until).unwrap_or(i64::MAX));
        let inserted: Option<bool> = sqlx::query_scalar(MARK)
            .bind(&*counter.user)
            .bind(&*counter.resource)
            .bind(&key.counted)
            .bind(&key.period)
            .bind(mark)
            .bind(kept_until)
            .fetch_optional(&self.pool)
            .await?;
        Ok(inserted.is_some())
    }
}

impl UsageStore for PostgresStore {
    fn reserve<'a>(&'a self, hold: &'a Hold, lease: Duration) -> StoreFuture<'a, Held> {
        StoreFuture::new(self.reserve_hold(hold, lease))
    }

    fn commit<'a>(&'a self, hold: &'a Hold, spent: &'a [u64]) -> StoreFuture<'a, ()> {
        StoreFuture::new(self.commit_hold(hold, spent))
    }

    fn release<'a>(&'a self, hold: &'a Hold) -> StoreFuture<'a, ()> {
        StoreFuture::new(self.release_hold(hold))
    }

    fn adjust<'a>(&'a self, counter: &'a Counter, delta: i64, seed: Seed) -> StoreFuture<'a, u64> {
        StoreFuture::new(self.adjust_counter(counter, delta, seed))
    }

    fn set<'a>(&'a self, counter: &'a Counter, used: u64) -> StoreFuture<'a, ()> {
        StoreFuture::new(self.set_counter(counter, used))
    }

    fn get<'a>(&'a self, counter: &'a Counter) -> StoreFuture<'a, Option<Count>> {
        StoreFuture::new(self.get_counter(counter))
    }

    fn mark<'a>(&'a self, counter: &'a Counter, mark: &'a str) -> StoreFuture<'a, bool> {
        StoreFuture::new(self.set_mark(counter, mark))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Period;

    #[test]
    fn keys_name_what_is_counted_and_the_period() {
        assert_eq!(Key::of(&Counter::items("u", "clients")).counted, "i");
        assert_eq!(
            Key::of(&Counter::action("u", "clients", Action::Create)).counted,
            "i"
        );
        assert_eq!(
            Key::of(&Counter::action("u", "tasks", Action::custom("destroy"))).counted,
            "a:delete"
        );
        assert_eq!(Key::of(&Counter::credits("u", "ai")).counted, "c");
        assert_eq!(Key::of(&Counter::grant("u", "ai", "g:1")).counted, "g:g:1");
        let window = Period::Month.window(1_800_000_000_000);
        let key = Key::of(&Counter::items("u", "reports").in_period(window));
        assert_eq!(key.period, format!("month:{}", window.start()));
        assert_eq!(key.period_end, Some(window.end() as i64));
        assert_eq!(Key::of(&Counter::items("u", "reports")).period, "");
    }

    #[test]
    fn leases_round_up_to_a_millisecond_and_very_long_ones_never_end() {
        assert_eq!(lease_ms(Duration::from_nanos(1)), Some(1));
        assert_eq!(lease_ms(Duration::from_micros(1500)), Some(2));
        assert_eq!(lease_ms(Duration::from_secs(300)), Some(300_000));
        assert_eq!(lease_ms(Duration::MAX), None);
    }

    #[test]
    fn counts_parse_or_fail_with_the_text() {
        let parsed = counts(
            &["18446744073709551615".to_owned()],
            &["36893488147419103230".to_owned()],
        )
        .unwrap();
        assert_eq!(
            parsed[0],
            Count {
                used: u64::MAX,
                held: u64::MAX
            }
        );
        assert!(counts(&["x1".to_owned()], &["0".to_owned()])
            .unwrap_err()
            .to_string()
            .contains("\"x1\""));
        assert!(counts(&["1".to_owned()], &[]).is_err());
    }

    #[test]
    fn a_hold_of_two_users_is_refused_before_any_query() {
        let hold = Hold::new(ReservationId::new())
            .with(Line::new(Counter::credits("a", "ai"), 1))
            .with(Line::new(Counter::credits("b", "ai"), 1));
        assert!(Parts::of(&hold, |_, line| line.units()).is_err());
        let empty = Hold::new(ReservationId::new());
        assert!(Parts::of(&empty, |_, line| line.units())
            .unwrap()
            .0
            .is_none());
    }
}

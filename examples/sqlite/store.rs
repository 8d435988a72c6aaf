//! [`SqliteStore`]: a [`PlanStore`] and a [`UsageStore`] over an SQLite database file, with sqlx.
//!
//! The schema is in `migrations/`, applied by [`migrate`] when the store opens. What each trait
//! method runs:
//!
//! | method | SQL |
//! |---|---|
//! | `plans()` | one read transaction: `plans` ⟕ `plan_resources` ⟕ `plan_limits`, `addons` ⟕ `addon_resources` ⟕ `addon_limits`, `trial`, and the declared custom `actions` |
//! | `user(id)` | one read transaction: `subscribers` ⟕ `usage_counters` for the id, then its `subscriber_addons` |
//! | `reserve` | `BEGIN IMMEDIATE`; purge the counter's expired holds; create the counter at the seed; the guarded `INSERT ... SELECT ... WHERE used + held < limit ... RETURNING` ([`RESERVE`]); read the counts before |
//! | `commit` | `BEGIN IMMEDIATE`; delete the hold (and expired ones) `RETURNING` whether it was live; if it was, `used + 1` |
//! | `release` | one `DELETE` of the hold (and the counter's expired ones) |
//! | `adjust` | `BEGIN IMMEDIATE`; read `used`; write `used + delta`, saturating |
//! | `set` | one upsert |
//! | `get` | one `SELECT` of `used` and the live holds |
//!
//! The atomic part is [`RESERVE`]: one statement checks `used + held + 1 <= limit` and records the
//! hold, so two requests can never both take the last unit, whatever else runs. The transaction
//! around it only makes the counts it reports (the `usage` of a 403) exact.
//!
//! Connections: one writer (SQLite admits one writer at a time; queueing for the connection in
//! the process is cheaper and fairer than busy-waiting on the file lock) and a few readers, all
//! in WAL mode so that readers never wait for the writer, with a busy timeout for writers in other
//! processes. Write transactions start with `BEGIN IMMEDIATE`, which takes the write lock first:
//! a transaction that reads and then writes cannot fail half-way with `SQLITE_BUSY`.
//!
//! Counts are SQLite integers: they saturate at `i64::MAX` rather than `u64::MAX`. Leases run on
//! the wall clock (milliseconds since the Unix epoch), which every process sharing the file
//! agrees on; [`SqliteStore::with_clock`] replaces it in tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use tower_plans::catalog::{Addon, Limit, Period, Plan, Trial};
use tower_plans::store::{Count, Counted, Counter, ReservationId, Reserve};
use tower_plans::subscriber::{AddonGrant, Assignment};
use tower_plans::{Action, BoxError, Catalog, PlanStore, Subscriber, UsageStore};

/// One schema migration: applied once, in order, recorded in `schema_migrations`.
#[derive(Debug)]
pub struct Migration {
    /// Its number: migrations run in increasing order, each once.
    pub version: i64,
    /// What it does, recorded beside the version.
    pub description: &'static str,
    /// The SQL, run as one script in the migration's transaction.
    pub sql: &'static str,
}

/// The schema, embedded in the binary. Never edit an applied migration: add one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "plans, limits, trial, subscribers, usage counters, reservations",
        sql: include_str!("migrations/0001_schema.sql"),
    },
    Migration {
        version: 2,
        description: "add-ons, their limits, and the subscribers' grants",
        sql: include_str!("migrations/0002_addons.sql"),
    },
    Migration {
        version: 3,
        description: "quotas that reset: a period on plan and add-on limits",
        sql: include_str!("migrations/0003_quotas.sql"),
    },
    Migration {
        version: 4,
        description: "a resource's plain count in a row of its own",
        sql: include_str!("migrations/0004_plain_counts.sql"),
    },
];

/// How long a writer waits for another process's write lock before failing with `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections serve reads (`plans`, `user`, `get`).
const READERS: u32 = 4;

/// The item count's `counted` value. A custom action with this name cannot be counted here.
const ITEMS: &str = "items";

/// The `counted` value of a record's plain count: the usage of every action of the resource that
/// has no count of its own. Counting never changes it.
const PLAIN: &str = "*";

/// The atomic reservation: holds one unit for `?1` on the counter (`?2`, `?3`, `?4`) until `?5`
/// when the limit `?6` is `NULL` (unlimited), when `?1` already holds a live unit there (a retry:
/// its lease is renewed), or when `used + live holds < limit` at `?7` (now). Returns the id when
/// the unit is held, no row when it is refused. One statement: SQLite runs it atomically, and
/// the guard and the insert cannot be split by another writer.
pub const RESERVE: &str = "
INSERT INTO reservations (id, user_id, resource, counted, expires_ms)
SELECT ?1, ?2, ?3, ?4, ?5
 WHERE ?6 IS NULL
    OR EXISTS (SELECT 1 FROM reservations
                WHERE id = ?1 AND user_id = ?2 AND resource = ?3 AND counted = ?4
                  AND expires_ms > ?7)
    OR (SELECT used FROM usage_counters
         WHERE user_id = ?2 AND resource = ?3 AND counted = ?4)
     + (SELECT count(*) FROM reservations
         WHERE user_id = ?2 AND resource = ?3 AND counted = ?4 AND expires_ms > ?7)
     < ?6
ON CONFLICT (id) DO UPDATE SET expires_ms = excluded.expires_ms
 WHERE reservations.user_id = excluded.user_id
   AND reservations.resource = excluded.resource
   AND reservations.counted = excluded.counted
RETURNING id";

/// Creates a counter at its seed (`?4`) unless it exists.
const CREATE_COUNTER: &str = "
INSERT INTO usage_counters (user_id, resource, counted, used) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (user_id, resource, counted) DO NOTHING";

/// Forgets a counter's holds that expired at `?4` (now).
const PURGE_COUNTER: &str = "
DELETE FROM reservations
 WHERE user_id = ?1 AND resource = ?2 AND counted = ?3 AND expires_ms <= ?4";

/// A counter's used count and its live holds at `?5` other than `?4`'s.
const COUNTS_BESIDE: &str = "
SELECT (SELECT used FROM usage_counters
         WHERE user_id = ?1 AND resource = ?2 AND counted = ?3),
       (SELECT count(*) FROM reservations
         WHERE user_id = ?1 AND resource = ?2 AND counted = ?3 AND expires_ms > ?5
           AND id <> ?4)";

/// Deletes the hold `?4` and the counter's expired holds (at `?5`), returning for each whether
/// it was `?4`'s live hold.
const TAKE_HOLD: &str = "
DELETE FROM reservations
 WHERE user_id = ?1 AND resource = ?2 AND counted = ?3 AND (id = ?4 OR expires_ms <= ?5)
RETURNING id = ?4 AND expires_ms > ?5";

/// A committed unit: the counter goes up by one (saturating), created at 1 if it is missing.
const COUNT_ONE: &str = "
INSERT INTO usage_counters (user_id, resource, counted, used) VALUES (?1, ?2, ?3, 1)
ON CONFLICT (user_id, resource, counted)
DO UPDATE SET used = min(used, 9223372036854775806) + 1
RETURNING used";

/// Sets a counter's used count, creating it if need be.
const SET_USED: &str = "
INSERT INTO usage_counters (user_id, resource, counted, used) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (user_id, resource, counted) DO UPDATE SET used = excluded.used";

/// A counter's used count.
const USED: &str = "
SELECT used FROM usage_counters WHERE user_id = ?1 AND resource = ?2 AND counted = ?3";

/// A [`PlanStore`] and a [`UsageStore`] over one SQLite database file.
///
/// Clones share the connection pools. Every method is one query or one short transaction; none
/// unwraps or panics on what the database returns: bad data is an error, which the layer logs and
/// answers with its failure policy (503 by default), never with the error's text.
#[derive(Clone)]
pub struct SqliteStore {
    /// One connection: every write.
    writer: SqlitePool,
    /// Reads.
    reader: SqlitePool,
    /// Milliseconds since the Unix epoch.
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// The wall clock, in milliseconds since the Unix epoch (0 before it).
fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl SqliteStore {
    /// Opens (creating it if missing) the database file at `path`, in WAL mode with a busy
    /// timeout, and applies the [`MIGRATIONS`] it lacks.
    ///
    /// # Errors
    /// When the file cannot be opened or a migration fails.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, BoxError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // An embedded database answers at once: no need to ping a connection before using it.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(Self {
            writer,
            reader,
            clock: Arc::new(wall_clock_ms),
        })
    }

    /// The store with another clock (milliseconds since the Unix epoch) for its leases.
    #[must_use]
    pub fn with_clock(mut self, now_ms: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(now_ms);
        self
    }

    /// Closes every connection (the WAL is checkpointed into the file).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Now, as stored.
    fn now(&self) -> i64 {
        clamp((self.clock)())
    }

    /// Runs `sql` (several statements) in one write transaction: seed data, say.
    ///
    /// # Errors
    /// When a statement fails; nothing is applied then.
    pub async fn execute_script(&self, sql: &str) -> Result<(), BoxError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether the catalog has no plan yet (a fresh database).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn has_no_plans(&self) -> Result<bool, BoxError> {
        let plans: i64 = sqlx::query_scalar("SELECT count(*) FROM plans")
            .fetch_one(&self.reader)
            .await?;
        Ok(plans == 0)
    }

    /// Replaces the catalog: every plan, limit, declared custom action and the trial policy.
    ///
    /// # Errors
    /// When a write fails or a limit does not fit an SQLite integer; nothing is changed then.
    pub async fn import_catalog(&self, catalog: &Catalog) -> Result<(), BoxError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM trial").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM plans").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM actions WHERE custom = 1")
            .execute(&mut *tx)
            .await?;
        for action in catalog.custom_actions() {
            sqlx::query("INSERT INTO actions (name, custom) VALUES (?1, 1)")
                .bind(&**action)
                .execute(&mut *tx)
                .await?;
        }
        for (position, plan) in catalog.plans().enumerate() {
            sqlx::query("INSERT INTO plans (name, position) VALUES (?1, ?2)")
                .bind(plan.name())
                .bind(i64::try_from(position)?)
                .execute(&mut *tx)
                .await?;
            for (resource, limits) in plan.resources() {
                sqlx::query("INSERT INTO plan_resources (plan, resource) VALUES (?1, ?2)")
                    .bind(plan.name())
                    .bind(&**resource)
                    .execute(&mut *tx)
                    .await?;
                for (action, limit) in limits.iter() {
                    let max = limit.maximum().map(i64::try_from).transpose()?;
                    sqlx::query(
                        "INSERT INTO plan_limits (plan, resource, action, max, per)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .bind(plan.name())
                    .bind(&**resource)
                    .bind(action.as_str())
                    .bind(max)
                    .bind(limit.period().map(Period::as_str))
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        if let Some(trial) = catalog.trial() {
            let duration_ms = i64::try_from(trial.duration().as_millis())?;
            sqlx::query("INSERT INTO trial (id, duration_ms, fallback) VALUES (1, ?1, ?2)")
                .bind(duration_ms)
                .bind(trial.fallback())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds or replaces the record of user `id`: its name and plan assignment, and its usage,
    /// which becomes its counters (the counters it had are dropped).
    ///
    /// # Errors
    /// When a write fails, a count does not fit an SQLite integer, or a per-action count is kept
    /// for a custom action named `items`; nothing is changed then.
    pub async fn put_subscriber(&self, id: &str, subscriber: &Subscriber) -> Result<(), BoxError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let plan = subscriber.assignment.as_ref();
        sqlx::query(
            "INSERT INTO subscribers (id, name, plan, trial, joined_ms, expires_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, plan = excluded.plan,
                 trial = excluded.trial, joined_ms = excluded.joined_ms,
                 expires_ms = excluded.expires_ms",
        )
        .bind(id)
        .bind(subscriber.name.as_deref())
        .bind(plan.map(|plan| &*plan.plan))
        .bind(plan.is_some_and(|plan| plan.trial))
        .bind(
            plan.and_then(|plan| plan.joined)
                .map(i64::try_from)
                .transpose()?,
        )
        .bind(
            plan.and_then(|plan| plan.expires)
                .map(i64::try_from)
                .transpose()?,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM usage_counters WHERE user_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for (resource, usage) in subscriber.usage.iter() {
            let mut counts: Vec<(String, u64)> = usage
                .actions()
                .map(|(action, count)| {
                    counted_key(&Counted::Action(Action::custom(&**action))).map(|key| (key, count))
                })
                .collect::<Result<_, _>>()?;
            if let Some(plain) = usage.count() {
                counts.push((PLAIN.to_owned(), plain));
            }
            for (counted, used) in counts {
                sqlx::query(SET_USED)
                    .bind(id)
                    .bind(&**resource)
                    .bind(counted)
                    .bind(i64::try_from(used)?)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) the plan of the known user `id`, as an admin tool or a
    /// billing webhook would. Returns `false`, changing nothing, when the user is unknown or the
    /// catalog has no such plan.
    ///
    /// The layer caches what it read: call its `Invalidator::user(id)` afterwards.
    ///
    /// # Errors
    /// When the write fails or an instant does not fit an SQLite integer.
    pub async fn set_plan(&self, id: &str, plan: Option<&Assignment>) -> Result<bool, BoxError> {
        let changed = sqlx::query(
            "UPDATE subscribers
                SET plan = ?2, trial = ?3, joined_ms = ?4, expires_ms = ?5
              WHERE id = ?1
                AND (?2 IS NULL OR EXISTS (SELECT 1 FROM plans WHERE name = ?2))",
        )
        .bind(id)
        .bind(plan.map(|plan| &*plan.plan))
        .bind(plan.is_some_and(|plan| plan.trial))
        .bind(
            plan.and_then(|plan| plan.joined)
                .map(i64::try_from)
                .transpose()?,
        )
        .bind(
            plan.and_then(|plan| plan.expires)
                .map(i64::try_from)
                .transpose()?,
        )
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(changed > 0)
    }

    /// Deletes every expired reservation; returns how many. Queries ignore them anyway; this
    /// keeps the table small when counters go untouched (run it now and then).
    ///
    /// # Errors
    /// When the write fails.
    pub async fn purge_expired(&self) -> Result<u64, BoxError> {
        let purged = sqlx::query("DELETE FROM reservations WHERE expires_ms <= ?1")
            .bind(self.now())
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(purged)
    }

    /// How many reservations are stored, live or expired (for tests and the example's check).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn stored_reservations(&self) -> Result<u64, BoxError> {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM reservations")
            .fetch_one(&self.reader)
            .await?;
        Ok(u64::try_from(stored)?)
    }
}

/// Applies the [`MIGRATIONS`] that `schema_migrations` does not list, each in its own
/// `BEGIN IMMEDIATE` transaction, so that two processes opening a fresh file apply each once.
///
/// # Errors
/// When a migration fails; it is rolled back, and the ones before it stay applied.
pub async fn migrate(pool: &SqlitePool) -> Result<(), BoxError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     INTEGER NOT NULL PRIMARY KEY,
             description TEXT NOT NULL,
             applied_ms  INTEGER NOT NULL
         )",
    )
    .execute(pool)
    .await?;
    for migration in MIGRATIONS {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?1")
                .bind(migration.version)
                .fetch_optional(&mut *tx)
                .await?;
        if applied.is_none() {
            sqlx::raw_sql(migration.sql).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, description, applied_ms)
                 VALUES (?1, ?2, ?3)",
            )
            .bind(migration.version)
            .bind(migration.description)
            .bind(clamp(wall_clock_ms()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// A count or an instant as an SQLite integer, saturating at `i64::MAX`.
fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A count read back from the database.
fn count(value: i64) -> Result<u64, BoxError> {
    u64::try_from(value).map_err(|_| format!("a negative count ({value}) in the database").into())
}

/// How a [`Counted`] is stored: `items`, or the action's name. A create is the item count, as
/// in [`MemoryStore`](tower_plans::MemoryStore), so that a resource's item count is one counter.
fn counted_key(counted: &Counted) -> Result<String, BoxError> {
    let action = match counted {
        Counted::Items => return Ok(ITEMS.to_owned()),
        Counted::Action(action) => Action::custom(action.as_str()),
    };
    match action {
        Action::Create => Ok(ITEMS.to_owned()),
        Action::Custom(name) if &*name == ITEMS || &*name == PLAIN => {
            Err(format!("a custom action named `{name}` cannot be counted in this store").into())
        }
        Action::Custom(name) if name.contains('@') => {
            Err("a custom action whose name holds `@` cannot be counted in this store".into())
        }
        other => Ok(other.as_str().to_owned()),
    }
}

/// A limit from its `max` and `per` columns.
fn limit_of(max: Option<i64>, per: Option<String>) -> Result<Limit, BoxError> {
    Ok(match (max, per) {
        (Some(max), None) => Limit::Limited(count(max)?),
        (Some(max), Some(per)) => Limit::Periodic {
            max: count(max)?,
            per: Period::from_name(&per).ok_or_else(|| format!("unknown period {per:?}"))?,
        },
        (None, _) => Limit::Unlimited,
    })
}

/// A counter's key columns: a period counter's `counted` names its period after an `@`
/// (`create@2026-11`).
struct Key {
    user: String,
    resource: String,
    counted: String,
}

impl Key {
    fn of(counter: &Counter) -> Result<Self, BoxError> {
        Ok(Self {
            user: counter.user.to_string(),
            resource: counter.resource.to_string(),
            counted: match &counter.period {
                Some(window) => format!("{}@{window}", counted_key(&counter.counted)?),
                None => counted_key(&counter.counted)?,
            },
        })
    }
}

/// When a lease taken at `now` ends, in whole milliseconds rounded up, saturating.
fn expiry(now: i64, lease: Duration) -> i64 {
    let lease_ms = lease.as_nanos().div_ceil(1_000_000);
    now.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX))
}

#[async_trait]
impl PlanStore for SqliteStore {
    async fn plans(&self) -> Result<Arc<Catalog>, BoxError> {
        // One read transaction, so that the plans and the trial come from one snapshot.
        let mut tx = self.reader.begin().await?;
        let rows = sqlx::query(
            "SELECT p.name, r.resource, l.action, l.max, l.per
               FROM plans p
               LEFT JOIN plan_resources r ON r.plan = p.name
               LEFT JOIN plan_limits l ON l.plan = r.plan AND l.resource = r.resource
              ORDER BY p.position, p.name, r.resource, l.action",
        )
        .fetch_all(&mut *tx)
        .await?;
        let addon_rows = sqlx::query(
            "SELECT a.name, r.resource, l.action, l.max, l.per
               FROM addons a
               LEFT JOIN addon_resources r ON r.addon = a.name
               LEFT JOIN addon_limits l ON l.addon = r.addon AND l.resource = r.resource
              ORDER BY a.position, a.name, r.resource, l.action",
        )
        .fetch_all(&mut *tx)
        .await?;
        let trial = sqlx::query("SELECT duration_ms, fallback FROM trial WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
        let declared: Vec<String> =
            sqlx::query_scalar("SELECT name FROM actions WHERE custom = 1 ORDER BY name")
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;

        let mut plans: Vec<Plan> = Vec::new();
        for row in rows {
            let name: String = row.try_get(0)?;
            let resource: Option<String> = row.try_get(1)?;
            let action: Option<String> = row.try_get(2)?;
            let max: Option<i64> = row.try_get(3)?;
            let per: Option<String> = row.try_get(4)?;
            let plan = match plans.pop() {
                Some(last) if last.name() == name => last,
                last => {
                    plans.extend(last);
                    Plan::new(name)
                }
            };
            let plan = match (resource, action) {
                (None, _) => plan,
                (Some(resource), None) => plan.unlimited(resource),
                (Some(resource), Some(action)) => {
                    plan.with_limit(resource, Action::custom(action), limit_of(max, per)?)
                }
            };
            plans.push(plan);
        }
        let mut addons: Vec<Addon> = Vec::new();
        for row in addon_rows {
            let name: String = row.try_get(0)?;
            let resource: Option<String> = row.try_get(1)?;
            let action: Option<String> = row.try_get(2)?;
            let max: Option<i64> = row.try_get(3)?;
            let per: Option<String> = row.try_get(4)?;
            let addon = match addons.pop() {
                Some(last) if last.name() == name => last,
                last => {
                    addons.extend(last);
                    Addon::new(name)
                }
            };
            let addon = match (resource, action) {
                (None, _) => addon,
                (Some(resource), None) => addon.unlimited(resource),
                (Some(resource), Some(action)) => {
                    addon.with_limit(resource, Action::custom(action), limit_of(max, per)?)
                }
            };
            addons.push(addon);
        }
        let mut catalog = Catalog::builder().plans(plans).addons(addons);
        for action in declared {
            catalog = catalog.action(action);
        }
        if let Some(row) = trial {
            let duration_ms: i64 = row.try_get(0)?;
            let fallback: Option<String> = row.try_get(1)?;
            let mut trial = Trial::new(Duration::from_millis(count(duration_ms)?));
            if let Some(fallback) = fallback {
                trial = trial.with_fallback(fallback);
            }
            catalog = catalog.trial(trial);
        }
        Ok(Arc::new(catalog.build()?))
    }

    async fn user(&self, id: &str) -> Result<Option<Arc<Subscriber>>, BoxError> {
        // One read transaction, so that the assignment, the usage and the add-ons come from one
        // snapshot.
        let mut tx = self.reader.begin().await?;
        let rows = sqlx::query(
            "SELECT s.name, s.plan, s.trial, s.joined_ms, s.expires_ms,
                    u.resource, u.counted, u.used
               FROM subscribers s
               LEFT JOIN usage_counters u ON u.user_id = s.id
              WHERE s.id = ?1",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let grants = sqlx::query(
            "SELECT addon, starts_ms, expires_ms, quantity
               FROM subscriber_addons WHERE user_id = ?1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut subscriber = Subscriber::new();
        if let Some(name) = first.try_get::<Option<String>, _>(0)? {
            subscriber = subscriber.with_name(name);
        }
        if let Some(plan) = first.try_get::<Option<String>, _>(1)? {
            let mut assignment = Assignment::new(plan);
            if first.try_get::<bool, _>(2)? {
                assignment = assignment.as_trial();
            }
            if let Some(joined) = first.try_get::<Option<i64>, _>(3)? {
                assignment = assignment.joined_at(count(joined)?);
            }
            if let Some(expires) = first.try_get::<Option<i64>, _>(4)? {
                assignment = assignment.expires_at(count(expires)?);
            }
            subscriber = subscriber.with_plan(assignment);
        }
        for row in &grants {
            let mut grant =
                AddonGrant::new(row.try_get::<String, _>(0)?).quantity(count(row.try_get(3)?)?);
            if let Some(starts) = row.try_get::<Option<i64>, _>(1)? {
                grant = grant.starts_at(count(starts)?);
            }
            if let Some(expires) = row.try_get::<Option<i64>, _>(2)? {
                grant = grant.expires_at(count(expires)?);
            }
            subscriber = subscriber.with_addon(grant);
        }
        // Per resource: the plain count, then the counts of each action (the item count is the
        // `create` count). The plain count stays the usage of the other actions.
        let mut resources: BTreeMap<String, (Option<u64>, Vec<(Action, u64)>)> = BTreeMap::new();
        for row in &rows {
            let (Some(resource), Some(counted), Some(used)) = (
                row.try_get::<Option<String>, _>(5)?,
                row.try_get::<Option<String>, _>(6)?,
                row.try_get::<Option<i64>, _>(7)?,
            ) else {
                continue;
            };
            // A quota's counters are not the record's usage.
            if counted.contains('@') {
                continue;
            }
            let entry = resources.entry(resource).or_default();
            match counted.as_str() {
                PLAIN => entry.0 = Some(count(used)?),
                ITEMS => entry.1.push((Action::Create, count(used)?)),
                _ => entry.1.push((Action::custom(counted), count(used)?)),
            }
        }
        for (resource, (plain, actions)) in resources {
            if let Some(plain) = plain {
                subscriber.usage.set(resource.as_str(), plain);
            }
            for (action, used) in &actions {
                subscriber
                    .usage
                    .set_action(resource.as_str(), action, *used);
            }
        }
        Ok(Some(Arc::new(subscriber)))
    }
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn reserve(
        &self,
        counter: &Counter,
        limit: Option<u64>,
        seed: u64,
        id: ReservationId,
        lease: Duration,
    ) -> Result<Reserve, BoxError> {
        let key = Key::of(counter)?;
        let id = id.to_string();
        let now = self.now();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(PURGE_COUNTER)
            .bind(&key.user)
            .bind(&key.resource)
            .bind(&key.counted)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(CREATE_COUNTER)
            .bind(&key.user)
            .bind(&key.resource)
            .bind(&key.counted)
            .bind(clamp(seed))
            .execute(&mut *tx)
            .await?;
        let held = sqlx::query(RESERVE)
            .bind(&id)
            .bind(&key.user)
            .bind(&key.resource)
            .bind(&key.counted)
            .bind(expiry(now, lease))
            .bind(limit.map(clamp))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        let (used, others): (Option<i64>, i64) = sqlx::query_as(COUNTS_BESIDE)
            .bind(&key.user)
            .bind(&key.resource)
            .bind(&key.counted)
            .bind(&id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let used = count(used.ok_or("the counter vanished while reserving")?)?;
        let held = if held {
            Reserve::Reserved {
                used,
                held: count(others)?,
            }
        } else {
            Reserve::Refused {
                used,
                held: count(others)?,
            }
        };
        Ok(held)
    }

    async fn commit(&self, counter: &Counter, id: ReservationId) -> Result<u64, BoxError> {
        let key = Key::of(counter)?;
        let now = self.now();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let taken: Vec<bool> = sqlx::query_scalar(TAKE_HOLD)
            .bind(&key.user)
            .bind(&key.resource)
            .bind(&key.counted)
            .bind(id.to_string())
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let used: Option<i64> = if taken.contains(&true) {
            Some(
                sqlx::query_scalar(COUNT_ONE)
                    .bind(&key.user)
                    .bind(&key.resource)
                    .bind(&key.counted)
                    .fetch_one(&mut *tx)
                    .await?,
            )
        } else {
            sqlx::query_scalar(USED)
                .bind(&key.user)
                .bind(&key.resource)
                .bind(&key.counted)
                .fetch_optional(&mut *tx)
                .await?
        };
        tx.commit().await?;
        used.map_or(Ok(0), count)
    }

    async fn release(&self, counter: &Counter, id: ReservationId) -> Result<(), BoxError> {
        let key = Key::of(counter)?;
        sqlx::query(TAKE_HOLD)
            .bind(&key.user)
            .bind(&key.resource)
            .bind(&key.counted)
            .bind(id.to_string())
            .bind(self.now())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn adjust(&self, counter: &Counter, delta: i64, seed: u64) -> Result<u64, BoxError> {
        let key = Key::of(counter)?;
        // Read, then write: BEGIN IMMEDIATE holds the write lock from the start, so no other
        // writer comes in between.
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let used: Option<i64> = sqlx::query_scalar(USED)
            .bind(&key.user)
            .bind(&key.resource)
            .bind(&key.counted)
            .fetch_optional(&mut *tx)
            .await?;
        let before = match used {
            Some(used) => count(used)?,
            None => seed,
        };
        let after = clamp(before.saturating_add_signed(delta));
        sqlx::query(SET_USED)
            .bind(&key.user)
            .bind(&key.resource)
            .bind(&key.counted)
            .bind(after)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        count(after)
    }

    async fn set(&self, counter: &Counter, used: u64) -> Result<(), BoxError> {
        let key = Key::of(counter)?;
        sqlx::query(SET_USED)
            .bind(&key.user)
            .bind(&key.resource)
            .bind(&key.counted)
            .bind(clamp(used))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn get(&self, counter: &Counter) -> Result<Option<Count>, BoxError> {
        let key = Key::of(counter)?;
        let (used, held): (Option<i64>, i64) = sqlx::query_as(COUNTS_BESIDE)
            .bind(&key.user)
            .bind(&key.resource)
            .bind(&key.counted)
            .bind("")
            .bind(self.now())
            .fetch_one(&self.reader)
            .await?;
        let held = count(held)?;
        if used.is_none() && held == 0 {
            return Ok(None);
        }
        Ok(Some(Count {
            used: used.map_or(Ok(0), count)?,
            held,
        }))
    }
}

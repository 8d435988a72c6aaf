//! [`SqliteStore`]: a [`PlanStore`] and a [`UsageStore`] over an SQLite database file, with sqlx.
//!
//! The schema is in `migrations/`, applied by [`migrate`] when the store opens. What each trait
//! method runs:
//!
//! | method | SQL |
//! |---|---|
//! | `plans()` | one read transaction: `plans` ⟕ `plan_resources` ⟕ `plan_limits`, `addons` ⟕ `addon_resources` ⟕ `addon_limits`, `trial`, the declared custom `actions`, the pools of `plan_credits` and `addon_credits`, and the `meters` |
//! | `user(id)` | one read transaction: `subscribers` ⟕ `usage_counters` for the id, then its `subscriber_addons` and its `subscriber_grants` |
//! | `reserve` | `BEGIN IMMEDIATE`; purge the expired holds of every counter of the hold; renew the hold's leases if it is held already (a retry); per line, read which rows exist ([`SHAPE`]) and the counts before, then what it takes from its counter and its grants; per part, the guarded `INSERT ... SELECT ... WHERE limit - used - held >= units ... RETURNING` ([`RESERVE`]), and for a counter of its own, its row at the seed; all or nothing |
//! | `commit` | `BEGIN IMMEDIATE`; per line, delete its holds (and expired ones) `RETURNING` their units; if any was live, add what it spent to its counter and grants (`used + units`, saturating) |
//! | `release` | `BEGIN IMMEDIATE`; delete the hold on each counter (and the expired ones) |
//! | `adjust` | `BEGIN IMMEDIATE`; read which rows exist and `used` (or take the seed); write `used + delta`, saturating |
//! | `set` | `BEGIN IMMEDIATE`; read which rows exist; one upsert |
//! | `get` | one read transaction: which rows exist, then `used` and the live holds |
//! | `mark` | one `INSERT INTO alert_marks ... ON CONFLICT DO NOTHING RETURNING` ([`MARK`]): the marker is new when a row comes back |
//!
//! # Metered plans
//!
//! The catalog's metering (see [`Cost`]) has tables of its own, which
//! [`SqliteStore::import_catalog`] writes and [`PlanStore::plans`] reads, so that a catalog
//! round-trips exactly:
//!
//! * `meters`: what a request to an action of a resource consumes, one row per metered
//!   `(resource, action)`: `cost` units, or for a meter whose handler reports what it consumed
//!   (`report` = 1) `estimate` units reserved before (`NULL`: 1 either way), drawn from the
//!   credit pool `pool`, or from the action's own limit when `pool` is `NULL`. The JSON
//!   `"images": {"create": {"cost": 5, "credits": "ai"}}` is the row
//!   `('images', 'create', 5, 0, NULL, 'ai')`.
//! * `plan_credits` and `addon_credits`: the pools a plan declares and what an add-on adds to
//!   them, a `max` and a `per` as for limits (`NULL` `max`: unlimited; no `per`: a lifetime
//!   pool).
//! * `subscriber_grants`: a record's one-off grants of credits (top-ups), in the record's order
//!   (`position`), unique by id per user; [`SqliteStore::put_subscriber`] writes them and
//!   [`PlanStore::user`] reads them. What a grant spent is a counter (below), not part of it.
//!
//! The schema refuses what the JSON readers refuse where SQL can say it: a cost or an estimate
//! below 1, an estimate on a meter that is not reported and a cost on one that is, a meter
//! drawing from a pool that no plan or add-on declares (triggers also refuse to drop or rename
//! the last declaration of a pool a meter draws from), a period without a maximum, a grant that
//! expires before it starts. A row that slipped past it (written with the checks off) is an
//! error naming the meter, the pool or the grant when read, never a different catalog.
//!
//! # The counters are the records' usage
//!
//! `usage_counters` holds one row per count, and [`PlanStore::user`] builds a record's usage
//! from them, so that the layer decides on what it counted. Per user and resource, `counted` is:
//!
//! * `*`: the plain count of a resource counted plainly (`"clients": 3`). It is the resource's
//!   item count, which a create raises and a delete lowers, and the usage of every action
//!   without a row of its own, before and after other rows of the resource exist;
//! * `items`: the `create` count of a resource counted per action
//!   (`"tasks": {"create": 2, "show": 40}`), its item count;
//! * an action's name (`show`, `export`): that action's own count;
//! * `action@period` (`items@2026-11`): a quota's count in one period, not part of the record;
//! * `$credits` ([`Counted::Credits`]): the credits drawn from the pool that `resource` names,
//!   and `$grant:<id>` ([`Counted::Grant`]): those spent from one of its one-off grants; with a
//!   period after an `@` for a pool that resets (`$credits@2026-11`). Not part of the record.
//!
//! These names are the store's own: a custom action named `items` or `*`, starting with `$` or
//! holding `@` cannot be counted here (an error names it), and the schema refuses to declare one.
//!
//! A counter reads what the decision reads in the record (`Usage::get`): the item count
//! ([`Counted::Items`], and [`Counted::Action`] of [`Action::Create`], one counter) is the
//! `items` row, else the `*` row, else 0; an action's count is its own row, else the `*` row,
//! else 0 (a resource counted per action has no `*` row: its other actions read 0; a resource
//! the record does not name reads 0 too, as a plain count of 0 does).
//!
//! Writes follow the record: the item count goes to `items` or `*`, whichever exists (`items`
//! first, which a create reads first), else to `items` when the resource has action rows, else
//! to `*`; an action's count goes to its own row, and an action's first row on a resource
//! without rows also writes `*` = 0, so that the other actions go on reading a plain count.
//! A reservation writes no count: an action gains a row of its own only when a counted success
//! commits (or `adjust`/`set` writes it), so a refused or released request leaves the record as
//! it was. This is the counting of [`MemoryStore`](tower_plans::MemoryStore), row for row.
//!
//! A user with a record (a `subscribers` row) has it as the truth: the `seed` the layer gives
//! is not used, since the layer took it from the same rows. A user without one (the store used
//! as a [`UsageStore`] beside another [`PlanStore`]), and every quota, pool and grant, has
//! counters of their own, one row each: created at the seed when a reservation first holds units
//! on them (a refused one creates nothing), then kept; an action's count there never reads `*`, since only the seed tells what
//! the other store's record holds. The counts of such a user are not a record:
//! [`PlanStore::user`] answers `None` until a `subscribers` row exists.
//!
//! # Reservations
//!
//! A reservation ([`Hold`]) holds units on one or more counters: one row of `reservations` per
//! counter, `units` of them, under the reservation's id (the primary key is the id and the
//! counter). A counter's held units are the `SUM(units)` of its live rows (`expires_ms > now`).
//! A line of a credit pool takes what its limit leaves on the pool's counter and the rest from
//! its grants in order, a row on each grant it takes from; [`UsageStore::commit`] counts what
//! each line spent on the parts it held first, and beyond them as the trait says.
//!
//! # What is atomic
//!
//! A whole reservation is one `BEGIN IMMEDIATE` transaction, which holds the write lock from its
//! start: no other writer, in this process or another, comes in between. In it the store reads
//! each line's counts, decides what each line takes (the counts a 403 reports are exact), then
//! holds each part with [`RESERVE`]: one statement that reads the counter's rows, checks
//! `used + held + units <= limit` and records the hold, so two reservations can never both take
//! the last units. Should a guard refuse what the counts allowed, the transaction rolls back:
//! every line or none. Which rows a counter reads (its own, `*`, the default) is chosen from
//! [`SHAPE`], read in the same transaction.
//!
//! Connections: one writer (SQLite admits one writer at a time; queueing for the connection in
//! the process is cheaper and fairer than busy-waiting on the file lock) and a few readers, all
//! in WAL mode so that readers never wait for the writer, with a busy timeout for writers in other
//! processes. Write transactions start with `BEGIN IMMEDIATE`, which takes the write lock first:
//! a transaction that reads and then writes cannot fail half-way with `SQLITE_BUSY`.
//!
//! Counts are exact up to `u64::MAX`, as in memory: a used count and a number of held units
//! keep the 64 bits of their `u64` in the SQLite integer ([`to_db`]), which reads the same
//! number up to `i64::MAX` (every count in practice) and a negative one beyond; the store sums
//! and adds them in Rust, saturating. The guard of [`RESERVE`] computes on SQLite integers and
//! refuses what it cannot compute (a count, units or a limit past `i64::MAX`). Leases run on
//! the wall clock (milliseconds since the Unix epoch), which every process sharing the file
//! agrees on; [`SqliteStore::with_clock`] replaces it in tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use tower_plans::catalog::{Addon, Cost, Limit, Period, Plan, Trial};
use tower_plans::store::{Count, Counted, Counter, Held, Hold, Line, Seed, Spill, StoreFuture};
use tower_plans::subscriber::{AddonGrant, Assignment, CreditGrant};
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
    Migration {
        version: 5,
        description: "reservations of several units on several counters; credit pools and grants",
        sql: include_str!("migrations/0005_holds.sql"),
    },
    Migration {
        version: 6,
        description: "metered plans: meters, plan and add-on credit pools, subscribers' grants",
        sql: include_str!("migrations/0006_meters.sql"),
    },
    Migration {
        version: 7,
        description: "the markers of usage alerts",
        sql: include_str!("migrations/0007_alert_marks.sql"),
    },
];

/// How long a writer waits for another process's write lock before failing with `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections serve reads (`plans`, `user`, `get`).
const READERS: u32 = 4;

/// The `counted` value of a resource's item count when the resource is counted per action: its
/// `create` count (`"tasks": {"create": 2, "show": 40}`). A custom action with this name cannot
/// be counted here.
const ITEMS: &str = "items";

/// The `counted` value of a resource's plain count (`"clients": 3`): its item count, which
/// creates and deletes change, and the usage of every action without a row of its own. A custom
/// action with this name cannot be counted here.
const PLAIN: &str = "*";

/// The used count of a counter, as its record reads it: its own row `?3`, else the row `?4` (the
/// plain count, or `NULL` for none), else `?5` (0 for a user with a record, the seed for a
/// counter of its own, `NULL` for none). `?1` is the user, `?2` the resource.
macro_rules! used {
    () => {
        "COALESCE(
    (SELECT used FROM usage_counters WHERE user_id = ?1 AND resource = ?2 AND counted = ?3),
    (SELECT used FROM usage_counters WHERE user_id = ?1 AND resource = ?2 AND counted = ?4),
    ?5)"
    };
}

/// The `counted` value of a credit pool's counter (the counter's resource is the pool's name):
/// a row of its own, never part of the subscriber record.
const CREDITS: &str = "$credits";

/// The prefix of the `counted` value of a one-off grant's counter, `$grant:<id>`: a row of its
/// own, never part of the subscriber record.
const GRANT: &str = "$grant:";

/// Sets the marker `?4` on the counter whose holds are keyed `?3` (of user `?1`'s resource
/// `?2`), to be kept until `?5` (`NULL`: for good), at `?6` (now): a row back when it was not
/// set, none when it was. One statement, which SQLite runs under its write lock.
pub const MARK: &str = "
INSERT INTO alert_marks (user_id, resource, counted, mark, kept_until_ms, created_ms)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT DO NOTHING
RETURNING 1";

/// The units held on the counter whose holds are keyed `?7` (of user `?1`'s resource `?2`) by
/// the reservations live at `?8` (now), as SQLite sums them (see [`RESERVE`]).
macro_rules! held {
    () => {
        "(SELECT coalesce(sum(units), 0) FROM reservations
     WHERE user_id = ?1 AND resource = ?2 AND counted = ?7 AND expires_ms > ?8)"
    };
}

/// The guarded hold: `?10` units for reservation `?6` on the counter whose holds are keyed
/// `?7`, until `?11`, when the limit `?9` is `NULL` (unlimited) or when
/// `used + held + units <= limit` at `?8` (now): `used` read from the rows as `used!` says
/// (`?1` to `?5`), `held` the units of every live hold there. Returns the id when the units are
/// held, no row when they are not. One statement: SQLite runs it atomically, so the guard and
/// the insert cannot be split by another writer. It writes no count: a refused request leaves
/// the record as it was.
///
/// The guard computes on SQLite integers: a count, a number of units or a limit past
/// `i64::MAX` (stored as a negative number, see [`to_db`]; bind the limit with [`clamp`]) makes
/// it refuse rather than guess. A reservation holds a counter once: its id, user and counter
/// are the primary key; the same counter named twice in one reservation holds the sum.
pub const RESERVE: &str = concat!(
    "
INSERT INTO reservations (id, user_id, resource, counted, units, expires_ms)
SELECT ?6, ?1, ?2, ?7, ?10, ?11
 WHERE ?9 IS NULL
    OR (?10 >= 0
        AND ",
    used!(),
    " >= 0
        AND NOT EXISTS (SELECT 1 FROM reservations
                         WHERE user_id = ?1 AND resource = ?2 AND counted = ?7
                           AND expires_ms > ?8 AND units < 0)
        AND ?9 - ",
    used!(),
    " - ",
    held!(),
    " >= ?10)
ON CONFLICT (id, user_id, resource, counted) DO UPDATE
   SET units = CASE WHEN reservations.units <= 9223372036854775807 - excluded.units
                    THEN reservations.units + excluded.units ELSE -1 END,
       expires_ms = excluded.expires_ms
RETURNING id"
);

/// Renews the lease of reservation `?4`'s live hold (at `?5`) on user `?1`'s counter of
/// resource `?2` keyed `?3`, to `?6`: a retried reservation.
const RENEW: &str = "
UPDATE reservations SET expires_ms = ?6
 WHERE id = ?4 AND user_id = ?1 AND resource = ?2 AND counted = ?3 AND expires_ms > ?5";

/// Which rows of user `?1`'s resource `?2` exist: whether the user has a record (a subscriber
/// row), an item row (`?3`, [`ITEMS`]), a plain count (`?4`, [`PLAIN`]), and any row of the
/// record's usage (not a quota's, a pool's or a grant's).
const SHAPE: &str = "
SELECT EXISTS (SELECT 1 FROM subscribers WHERE id = ?1),
       EXISTS (SELECT 1 FROM usage_counters
                WHERE user_id = ?1 AND resource = ?2 AND counted = ?3),
       EXISTS (SELECT 1 FROM usage_counters
                WHERE user_id = ?1 AND resource = ?2 AND counted = ?4),
       EXISTS (SELECT 1 FROM usage_counters
                WHERE user_id = ?1 AND resource = ?2
                  AND instr(counted, '@') = 0 AND substr(counted, 1, 1) <> '$')";

/// Creates a row at `?4` unless it exists.
const CREATE_ROW: &str = "
INSERT INTO usage_counters (user_id, resource, counted, used) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (user_id, resource, counted) DO NOTHING";

/// Forgets the holds keyed `?3` that expired at `?4` (now).
const PURGE_COUNTER: &str = "
DELETE FROM reservations
 WHERE user_id = ?1 AND resource = ?2 AND counted = ?3 AND expires_ms <= ?4";

/// The units of the live holds (at `?5`) of user `?1`'s counter of resource `?2` keyed `?3`,
/// except those of reservation `?4`: one row each, summed in Rust (see [`to_db`]).
const HELD_BESIDE: &str = "
SELECT units FROM reservations
 WHERE user_id = ?1 AND resource = ?2 AND counted = ?3 AND expires_ms > ?5 AND id <> ?4";

/// Whether reservation `?4` holds units on user `?1`'s counter of resource `?2` keyed `?3`
/// at `?5` (now).
const HOLDS: &str = "
SELECT EXISTS (SELECT 1 FROM reservations
                WHERE id = ?4 AND user_id = ?1 AND resource = ?2 AND counted = ?3
                  AND expires_ms > ?5)";

/// A counter's used count (`used!`).
const USED: &str = concat!("SELECT ", used!());

/// Deletes the hold of reservation `?4` and the expired holds keyed `?3` (at `?5`), returning
/// the units of `?4`'s hold if it was live (`NULL` for the others).
const TAKE_HOLD: &str = "
DELETE FROM reservations
 WHERE user_id = ?1 AND resource = ?2 AND counted = ?3 AND (id = ?4 OR expires_ms <= ?5)
RETURNING CASE WHEN id = ?4 AND expires_ms > ?5 THEN units END";

/// Sets a row's used count, creating it if need be.
const SET_USED: &str = "
INSERT INTO usage_counters (user_id, resource, counted, used) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (user_id, resource, counted) DO UPDATE SET used = excluded.used";

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

    /// Replaces the catalog: every plan, add-on, limit, credit pool, meter, declared custom
    /// action and the trial policy.
    ///
    /// # Errors
    /// When a write fails, a limit, a pool's allowance or a meter's units do not fit an SQLite
    /// integer (the error names the plan, add-on or meter), the catalog drops an add-on that a
    /// subscriber holds a grant of (its foreign key), or it declares a custom action whose
    /// name the usage counters keep for themselves (`items`, `*`, a name starting with `$` or
    /// holding `@`); nothing is changed then.
    pub async fn import_catalog(&self, catalog: &Catalog) -> Result<(), BoxError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        // The meters first: they name custom actions, and the pools they draw from must stay
        // declared while they exist.
        sqlx::query("DELETE FROM meters").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM trial").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM plans").execute(&mut *tx).await?;
        // The add-ons' limits and pools go (the limits may name custom actions); the add-ons
        // themselves stay while grants name them, and are replaced below.
        sqlx::query("DELETE FROM addon_resources")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM addon_credits")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM actions WHERE custom = 1")
            .execute(&mut *tx)
            .await?;
        for action in catalog.custom_actions() {
            countable(action)?;
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
            for (pool, allowance) in plan.pools() {
                let what = || format!("plan `{}`, credit pool `{pool}`", plan.name());
                sqlx::query(
                    "INSERT INTO plan_credits (plan, pool, max, per) VALUES (?1, ?2, ?3, ?4)",
                )
                .bind(plan.name())
                .bind(&**pool)
                .bind(maximum(allowance, what)?)
                .bind(allowance.period().map(Period::as_str))
                .execute(&mut *tx)
                .await
                .naming(what)?;
            }
        }
        let stored: Vec<String> = sqlx::query_scalar("SELECT name FROM addons")
            .fetch_all(&mut *tx)
            .await?;
        for name in stored {
            if catalog.addon(&name).is_none() {
                sqlx::query("DELETE FROM addons WHERE name = ?1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for (position, addon) in catalog.addons().enumerate() {
            sqlx::query(
                "INSERT INTO addons (name, position) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            )
            .bind(addon.name())
            .bind(i64::try_from(position)?)
            .execute(&mut *tx)
            .await?;
            for (resource, limits) in addon.resources() {
                sqlx::query("INSERT INTO addon_resources (addon, resource) VALUES (?1, ?2)")
                    .bind(addon.name())
                    .bind(&**resource)
                    .execute(&mut *tx)
                    .await?;
                for (action, limit) in limits.iter() {
                    let max = limit.maximum().map(i64::try_from).transpose()?;
                    sqlx::query(
                        "INSERT INTO addon_limits (addon, resource, action, max, per)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .bind(addon.name())
                    .bind(&**resource)
                    .bind(action.as_str())
                    .bind(max)
                    .bind(limit.period().map(Period::as_str))
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for (pool, extra) in addon.pools() {
                let what = || format!("add-on `{}`, credit pool `{pool}`", addon.name());
                sqlx::query(
                    "INSERT INTO addon_credits (addon, pool, max, per) VALUES (?1, ?2, ?3, ?4)",
                )
                .bind(addon.name())
                .bind(&**pool)
                .bind(maximum(extra, what)?)
                .bind(extra.period().map(Period::as_str))
                .execute(&mut *tx)
                .await
                .naming(what)?;
            }
        }
        // After the pools, which the meters' pools must name.
        for (resource, action, meter) in catalog.meters() {
            let what = || format!("the meter of `{resource}.{}`", action.as_str());
            let units = Some(sql_integer(meter.units(), what)?);
            let (cost, estimate) = if meter.is_reported() {
                (None, units)
            } else {
                (units, None)
            };
            sqlx::query(
                "INSERT INTO meters (resource, action, cost, report, estimate, pool)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(&**resource)
            .bind(action.as_str())
            .bind(cost)
            .bind(meter.is_reported())
            .bind(estimate)
            .bind(meter.pool())
            .execute(&mut *tx)
            .await
            .naming(what)?;
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

    /// Adds or replaces the record of user `id`: its name, plan assignment, add-on grants and
    /// grants of credits (top-ups, in the record's order), and its usage, which becomes its
    /// counters (the record's counters it had are dropped; those of quotas, credit pools and
    /// grants, which are not part of a record, stay, so that a grant given again goes on from
    /// what it spent): a plain count is a `*` row, a per-action `create` count an `items` row,
    /// another action's count a row named after the action. A resource counted per action that
    /// lists no action (`"tasks": {}`) is an `items` row of 0, and reads back as
    /// `{"create": 0}`: the same usage for every action, and for what a create counts.
    ///
    /// # Errors
    /// When a write fails, an instant, a quantity or a grant's amount does not fit an SQLite
    /// integer, an add-on grant names an add-on the catalog does not have (its foreign key), two
    /// grants of credits share an id (the error names the grant), or a per-action count is kept
    /// for a custom action named `items` or `*`, starting with `$` or holding `@`; nothing is
    /// changed then.
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
        // The record's usage is replaced; the counts that are not part of it (quotas, credit
        // pools, grants) stay, as in `MemoryStore`: a new plan does not give back what was
        // spent this period.
        sqlx::query(
            "DELETE FROM usage_counters
              WHERE user_id = ?1 AND instr(counted, '@') = 0 AND substr(counted, 1, 1) <> '$'",
        )
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
            match usage.count() {
                Some(plain) => counts.push((PLAIN.to_owned(), plain)),
                // Counted per action, with no action listed (`"tasks": {}`): every action reads
                // 0, and a create counts on a `create` count, not on a plain count that the
                // other actions would read. No rows would read as a plain count of 0: a `create`
                // count of 0 keeps it counted per action.
                None if counts.is_empty() => counts.push((ITEMS.to_owned(), 0)),
                None => {}
            }
            for (counted, used) in counts {
                sqlx::query(SET_USED)
                    .bind(id)
                    .bind(&**resource)
                    .bind(counted)
                    .bind(to_db(used))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query("DELETE FROM subscriber_addons WHERE user_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for grant in &subscriber.addons {
            sqlx::query(
                "INSERT INTO subscriber_addons (user_id, addon, starts_ms, expires_ms, quantity)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .bind(id)
            .bind(&*grant.name)
            .bind(grant.starts.map(i64::try_from).transpose()?)
            .bind(grant.expires.map(i64::try_from).transpose()?)
            .bind(i64::try_from(grant.quantity)?)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM subscriber_grants WHERE user_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for (position, grant) in subscriber.grants.iter().enumerate() {
            let what = || format!("the grant `{}` of `{id}`", grant.id);
            let instant = |ms: Option<u64>| ms.map(|ms| sql_integer(ms, what)).transpose();
            sqlx::query(
                "INSERT INTO subscriber_grants
                     (user_id, id, position, pool, amount, starts_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .bind(id)
            .bind(&*grant.id)
            .bind(i64::try_from(position)?)
            .bind(&*grant.pool)
            .bind(sql_integer(grant.amount, what)?)
            .bind(instant(grant.starts)?)
            .bind(instant(grant.expires)?)
            .execute(&mut *tx)
            .await
            .naming(what)?;
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

    /// Deletes every expired reservation, and the alert markers kept past their time (one
    /// period after their period's end, [`Counter::marks_kept_until`]); returns how many
    /// reservations. Queries ignore them anyway; this keeps the tables small when counters go
    /// untouched (run it now and then).
    ///
    /// # Errors
    /// When the write fails.
    pub async fn purge_expired(&self) -> Result<u64, BoxError> {
        let now = self.now();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let purged = sqlx::query("DELETE FROM reservations WHERE expires_ms <= ?1")
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM alert_marks WHERE kept_until_ms <= ?1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(purged)
    }

    /// How many alert markers are stored, kept past their time or not (for tests).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn stored_marks(&self) -> Result<u64, BoxError> {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_marks")
            .fetch_one(&self.reader)
            .await?;
        Ok(u64::try_from(stored)?)
    }

    /// How many reservations are stored, live or expired, each counted once however many
    /// counters it holds units on (for tests and the example's check).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn stored_reservations(&self) -> Result<u64, BoxError> {
        let stored: i64 = sqlx::query_scalar("SELECT count(DISTINCT id) FROM reservations")
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
    migrate_up_to(pool, i64::MAX).await
}

/// Applies the [`MIGRATIONS`] up to version `last` that `schema_migrations` does not list, as
/// [`migrate`] does: a database as an earlier release left it, to test what a migration does
/// to its data.
///
/// # Errors
/// When a migration fails; it is rolled back, and the ones before it stay applied.
pub async fn migrate_up_to(pool: &SqlitePool, last: i64) -> Result<(), BoxError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     INTEGER NOT NULL PRIMARY KEY,
             description TEXT NOT NULL,
             applied_ms  INTEGER NOT NULL
         )",
    )
    .execute(pool)
    .await?;
    for migration in MIGRATIONS
        .iter()
        .take_while(|migration| migration.version <= last)
    {
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

/// A limit or an instant as an SQLite integer, saturating at `i64::MAX`.
fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A limit, a quantity or an instant read back from the database.
fn count(value: i64) -> Result<u64, BoxError> {
    u64::try_from(value).map_err(|_| format!("a negative count ({value}) in the database").into())
}

/// A used count or a number of held units as stored: the 64 bits of the `u64` in an SQLite
/// integer, the same number up to `i64::MAX`, a negative one beyond (`-1` is `u64::MAX`).
fn to_db(value: u64) -> i64 {
    i64::from_ne_bytes(value.to_ne_bytes())
}

/// A used count or a number of held units read back (see [`to_db`]).
fn from_db(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

/// How a [`Counted`] keys its row and its holds: `items`, the action's name, [`CREDITS`] or
/// `$grant:<id>`. A create is the item count, as in [`MemoryStore`](tower_plans::MemoryStore),
/// so that a resource's item count is one counter.
fn counted_key(counted: &Counted) -> Result<String, BoxError> {
    let action = match counted {
        Counted::Items => return Ok(ITEMS.to_owned()),
        Counted::Credits => return Ok(CREDITS.to_owned()),
        Counted::Grant(id) => return Ok(format!("{GRANT}{id}")),
        Counted::Action(action) => Action::custom(action.as_str()),
    };
    match action {
        Action::Create => Ok(ITEMS.to_owned()),
        Action::Custom(name) => {
            countable(&name)?;
            Ok(name.to_string())
        }
        other => Ok(other.as_str().to_owned()),
    }
}

/// Whether a custom action's name can name a row of its own: not one of the names the store
/// keeps for its counters ([`ITEMS`], [`PLAIN`], a name starting with `$` as [`CREDITS`] and
/// grants do, or holding the `@` of a quota's period). The schema refuses such names in
/// `actions` too.
fn countable(name: &str) -> Result<(), BoxError> {
    if name == ITEMS || name == PLAIN || name.starts_with('$') || name.contains('@') {
        return Err(format!(
            "a custom action named `{name}` cannot be counted in this store: `items`, `*`, \
             names starting with `$` and names holding `@` name its own counters"
        )
        .into());
    }
    Ok(())
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

/// A credit pool's allowance as its `max` column: `None` for an unlimited pool, else the
/// maximum, when it fits an SQLite integer (the error names `what`).
fn maximum(allowance: Limit, what: impl FnOnce() -> String) -> Result<Option<i64>, BoxError> {
    allowance
        .maximum()
        .map(|max| sql_integer(max, what))
        .transpose()
}

/// `value` as an SQLite integer; an error naming `what` when it is past `i64::MAX`.
fn sql_integer(value: u64, what: impl FnOnce() -> String) -> Result<i64, BoxError> {
    i64::try_from(value).map_err(|_| {
        format!(
            "{}: {value} does not fit an SQLite integer (at most {})",
            what(),
            i64::MAX
        )
        .into()
    })
}

/// A meter from its columns: `cost` units (`NULL`: 1), or for a reported meter `estimate` units
/// (`NULL`: 1), drawn from `pool` if it names one.
fn meter_of(
    cost: Option<i64>,
    report: bool,
    estimate: Option<i64>,
    pool: Option<String>,
) -> Result<Cost, BoxError> {
    let units = |units: Option<i64>| -> Result<u64, BoxError> { units.map_or(Ok(1), count) };
    let meter = match (report, cost, estimate) {
        (true, Some(cost), _) => {
            return Err(format!(
                "a reported meter with a fixed cost ({cost}); a reported meter has an estimate"
            )
            .into())
        }
        (false, _, Some(estimate)) => {
            return Err(format!(
                "an estimate ({estimate}) on a meter that is not reported (report = 0)"
            )
            .into())
        }
        (true, None, estimate) => Cost::reported(units(estimate)?),
        (false, cost, None) => Cost::fixed(units(cost)?),
    };
    Ok(match pool {
        Some(pool) => meter.from_pool(pool),
        None => meter,
    })
}

/// Names what an error is about: `what: error`.
trait Naming<T> {
    fn naming(self, what: impl FnOnce() -> String) -> Result<T, BoxError>;
}

impl<T, E: Into<BoxError>> Naming<T> for Result<T, E> {
    fn naming(self, what: impl FnOnce() -> String) -> Result<T, BoxError> {
        self.map_err(|error| format!("{}: {}", what(), error.into()).into())
    }
}

/// What a counter is, among the rows of its resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The item count: the [`ITEMS`] row, else the [`PLAIN`] row.
    Items,
    /// An action's own count: the row named after the action, else the [`PLAIN`] row.
    Action,
    /// A count of its own, never part of the record: a quota's in one period, a credit pool's
    /// or a grant's. Its row alone, created at its seed.
    Own,
}

/// A counter's key: whose, which resource, how its row and its holds are keyed (a period
/// counter's names its period after an `@`: `show@2026-11`), and what kind of count it is.
struct Key {
    user: String,
    resource: String,
    hold: String,
    kind: Kind,
}

impl Key {
    fn of(counter: &Counter) -> Result<Self, BoxError> {
        let counted = counted_key(&counter.counted)?;
        let pooled = matches!(counter.counted, Counted::Credits | Counted::Grant(_));
        let (hold, kind) = match &counter.period {
            Some(window) => (format!("{counted}@{window}"), Kind::Own),
            None if pooled => (counted, Kind::Own),
            None if counted == ITEMS => (counted, Kind::Items),
            None => (counted, Kind::Action),
        };
        Ok(Self {
            user: counter.user.to_string(),
            resource: counter.resource.to_string(),
            hold,
            kind,
        })
    }

    /// Which rows of the resource exist, read in the transaction `tx` (or on the connection)
    /// that then uses them.
    async fn shape(&self, tx: &mut SqliteConnection) -> Result<Shape, BoxError> {
        let (recorded, items, plain, any): (bool, bool, bool, bool) = sqlx::query_as(SHAPE)
            .bind(&self.user)
            .bind(&self.resource)
            .bind(ITEMS)
            .bind(PLAIN)
            .fetch_one(tx)
            .await?;
        Ok(Shape {
            recorded,
            items,
            plain,
            any,
        })
    }

    /// How the counter reads and writes its rows, given which exist (see the
    /// [module docs](self)).
    fn rows(&self, shape: Shape) -> Rows<'_> {
        match self.kind {
            Kind::Own => Rows {
                own: &self.hold,
                fallback: None,
                recorded: false,
                target: &self.hold,
                plain_first: false,
            },
            Kind::Items => Rows {
                own: ITEMS,
                fallback: Some(PLAIN),
                recorded: shape.recorded,
                // The `create` count when there is one (a create reads it first), else the
                // plain count; a resource without either is counted per action when it has
                // other rows, else plainly.
                target: if shape.items || (!shape.plain && shape.any) {
                    ITEMS
                } else {
                    PLAIN
                },
                plain_first: false,
            },
            Kind::Action => Rows {
                own: &self.hold,
                fallback: shape.recorded.then_some(PLAIN),
                recorded: shape.recorded,
                target: &self.hold,
                plain_first: shape.recorded && !shape.any,
            },
        }
    }

    /// The counter's used count (its row, as [`Rows`] reads it, else `default`) and the units
    /// held at `now` by live reservations other than `beside` (saturating).
    async fn count_beside(
        &self,
        rows: &Rows<'_>,
        default: Option<u64>,
        beside: &str,
        now: i64,
        tx: &mut SqliteConnection,
    ) -> Result<(Option<u64>, u64), BoxError> {
        let used = self.used(rows, default, &mut *tx).await?;
        let held: Vec<i64> = sqlx::query_scalar(HELD_BESIDE)
            .bind(&self.user)
            .bind(&self.resource)
            .bind(&self.hold)
            .bind(beside)
            .bind(now)
            .fetch_all(tx)
            .await?;
        let held = held
            .into_iter()
            .fold(0u64, |sum, units| sum.saturating_add(from_db(units)));
        Ok((used, held))
    }

    /// Forgets the counter's holds that expired at `now`.
    async fn purge(&self, now: i64, tx: &mut SqliteConnection) -> Result<(), BoxError> {
        sqlx::query(PURGE_COUNTER)
            .bind(&self.user)
            .bind(&self.resource)
            .bind(&self.hold)
            .bind(now)
            .execute(tx)
            .await?;
        Ok(())
    }

    /// Renews the lease of reservation `id`'s hold on the counter, if it is live at `now`, to
    /// `expires`; whether it was.
    async fn renew(
        &self,
        id: &str,
        expires: i64,
        now: i64,
        tx: &mut SqliteConnection,
    ) -> Result<bool, BoxError> {
        let renewed = sqlx::query(RENEW)
            .bind(&self.user)
            .bind(&self.resource)
            .bind(&self.hold)
            .bind(id)
            .bind(now)
            .bind(expires)
            .execute(tx)
            .await?
            .rows_affected();
        Ok(renewed > 0)
    }

    /// Whether reservation `id` holds units on the counter at `now`.
    async fn holds(&self, id: &str, now: i64, tx: &mut SqliteConnection) -> Result<bool, BoxError> {
        Ok(sqlx::query_scalar(HOLDS)
            .bind(&self.user)
            .bind(&self.resource)
            .bind(&self.hold)
            .bind(id)
            .bind(now)
            .fetch_one(tx)
            .await?)
    }

    /// Deletes the hold of reservation `id` on the counter, and the expired ones; the units of
    /// `id`'s hold if it was live at `now`.
    async fn take_hold(
        &self,
        id: &str,
        now: i64,
        tx: &mut SqliteConnection,
    ) -> Result<Option<u64>, BoxError> {
        let taken: Vec<Option<i64>> = sqlx::query_scalar(TAKE_HOLD)
            .bind(&self.user)
            .bind(&self.resource)
            .bind(&self.hold)
            .bind(id)
            .bind(now)
            .fetch_all(tx)
            .await?;
        Ok(taken.into_iter().flatten().next().map(from_db))
    }

    /// Creates the counter's row at `start` unless it exists: a counter of its own, at its
    /// first reservation.
    async fn create_at(
        &self,
        rows: &Rows<'_>,
        start: u64,
        tx: &mut SqliteConnection,
    ) -> Result<(), BoxError> {
        sqlx::query(CREATE_ROW)
            .bind(&self.user)
            .bind(&self.resource)
            .bind(rows.target)
            .bind(to_db(start))
            .execute(tx)
            .await?;
        Ok(())
    }

    /// Adds `units` to the counter's used count (saturating), starting at `seed` when it does
    /// not exist yet (0 for a user with a record, as the record reads); the count after.
    async fn add(
        &self,
        units: u64,
        seed: Seed,
        tx: &mut SqliteConnection,
    ) -> Result<u64, BoxError> {
        let rows = self.rows(self.shape(&mut *tx).await?);
        let start = self.start(&rows, seed, &mut *tx).await?;
        let used = self
            .used(&rows, Some(start), &mut *tx)
            .await?
            .ok_or("a counter without a count while committing")?;
        let after = used.saturating_add(units);
        self.write(&rows, after, tx).await?;
        Ok(after)
    }

    /// The counter's used count: its row, as [`Rows`] reads it, else `default`.
    async fn used(
        &self,
        rows: &Rows<'_>,
        default: Option<u64>,
        tx: &mut SqliteConnection,
    ) -> Result<Option<u64>, BoxError> {
        let used: Option<i64> = sqlx::query_scalar(USED)
            .bind(&self.user)
            .bind(&self.resource)
            .bind(rows.own)
            .bind(rows.fallback)
            .bind(default.map(to_db))
            .fetch_one(tx)
            .await?;
        Ok(used.map(from_db))
    }

    /// Writes `used` as the counter's count, in the transaction `tx`.
    async fn write(
        &self,
        rows: &Rows<'_>,
        used: u64,
        tx: &mut SqliteConnection,
    ) -> Result<(), BoxError> {
        self.plain_first(rows, tx).await?;
        sqlx::query(SET_USED)
            .bind(&self.user)
            .bind(&self.resource)
            .bind(rows.target)
            .bind(to_db(used))
            .execute(tx)
            .await?;
        Ok(())
    }

    /// Writes the plain count of 0 that an action's first count of its own on a resource the
    /// record does not name goes with ([`Rows::plain_first`]).
    async fn plain_first(
        &self,
        rows: &Rows<'_>,
        tx: &mut SqliteConnection,
    ) -> Result<(), BoxError> {
        if rows.plain_first {
            sqlx::query(CREATE_ROW)
                .bind(&self.user)
                .bind(&self.resource)
                .bind(PLAIN)
                .bind(0_i64)
                .execute(tx)
                .await?;
        }
        Ok(())
    }
}

/// Which rows of a user's resource exist.
#[derive(Clone, Copy, Debug)]
struct Shape {
    /// The user has a record: a subscriber row.
    recorded: bool,
    /// The resource has an [`ITEMS`] row.
    items: bool,
    /// The resource has a [`PLAIN`] row.
    plain: bool,
    /// The resource has a row that is not a quota's.
    any: bool,
}

/// How a counter reads and writes the rows of its resource (see the [module docs](self)).
#[derive(Debug)]
struct Rows<'k> {
    /// The row read first, the counter's own: [`ITEMS`], the action's name, or the quota's
    /// `action@period`.
    own: &'k str,
    /// The row read when `own` is missing: the plain count, or none.
    fallback: Option<&'static str>,
    /// Whether the user's record is the truth for this counter: a count that neither row holds
    /// reads 0, whatever the seed, and a reservation writes no row. Otherwise (a user without a
    /// record, a quota) the counter is a row of its own, created at its seed when first used.
    recorded: bool,
    /// The row a new count is written to.
    target: &'k str,
    /// Whether writing the count first writes a plain count of 0: an action's first count of
    /// its own on a resource that the record does not name, which read as a plain count of 0
    /// and must go on reading so for the other actions.
    plain_first: bool,
}

impl Key {
    /// What a count that neither of its rows holds reads: 0 when the record is the truth, else
    /// where the `seed` says it starts (the user's item count, for a seed that follows it and a
    /// counter without a period, when that count exists).
    async fn start(
        &self,
        rows: &Rows<'_>,
        seed: Seed,
        tx: &mut SqliteConnection,
    ) -> Result<u64, BoxError> {
        if rows.recorded {
            return Ok(0);
        }
        if let (Seed::Items(_), Kind::Action) = (seed, &self.kind) {
            let items: Option<i64> = sqlx::query_scalar(
                "SELECT used FROM usage_counters
                  WHERE user_id = ?1 AND resource = ?2 AND counted IN (?3, ?4)
                  ORDER BY counted = ?3 DESC LIMIT 1",
            )
            .bind(&self.user)
            .bind(&self.resource)
            .bind(ITEMS)
            .bind(PLAIN)
            .fetch_optional(tx)
            .await?;
            if let Some(items) = items {
                return Ok(from_db(items));
            }
        }
        Ok(seed.count())
    }
}

/// When a lease taken at `now` ends, in whole milliseconds rounded up, saturating.
fn expiry(now: i64, lease: Duration) -> i64 {
    let lease_ms = lease.as_nanos().div_ceil(1_000_000);
    now.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX))
}

/// A grant of credits from its `subscriber_grants` row (id, pool, amount, starts, expires).
fn credit_grant(row: &sqlx::sqlite::SqliteRow, id: &str) -> Result<CreditGrant, BoxError> {
    let pool: String = row.try_get(1)?;
    if id.is_empty() || pool.is_empty() {
        return Err("a grant of credits without an id or a pool".into());
    }
    let mut grant = CreditGrant::new(id, pool, count(row.try_get(2)?)?);
    if let Some(starts) = row.try_get::<Option<i64>, _>(3)? {
        grant = grant.starts_at(count(starts)?);
    }
    if let Some(expires) = row.try_get::<Option<i64>, _>(4)? {
        grant = grant.expires_at(count(expires)?);
    }
    if let (Some(starts), Some(expires)) = (grant.starts, grant.expires) {
        if expires < starts {
            return Err(format!("it expires ({expires}) before it starts ({starts})").into());
        }
    }
    Ok(grant)
}

/// The credit pools of the `plan_credits` or `addon_credits` rows (`owner`, pool, max, per),
/// by plan or add-on, each pool's allowance read as a limit is; `kind` ("plan", "add-on") names
/// the owner in an error.
fn pools_of(
    rows: Vec<sqlx::sqlite::SqliteRow>,
    kind: &str,
) -> Result<BTreeMap<String, Vec<(String, Limit)>>, BoxError> {
    let mut pools: BTreeMap<String, Vec<(String, Limit)>> = BTreeMap::new();
    for row in rows {
        let owner: String = row.try_get(0)?;
        let pool: String = row.try_get(1)?;
        let allowance = limit_of(row.try_get(2)?, row.try_get(3)?)
            .naming(|| format!("{kind} `{owner}`, credit pool `{pool}`"))?;
        pools.entry(owner).or_default().push((pool, allowance));
    }
    Ok(pools)
}

/// Per resource of a record being read: its plain count, then the counts of each action.
type ResourceCounts = BTreeMap<String, (Option<u64>, Vec<(Action, u64)>)>;

impl PlanStore for SqliteStore {
    fn plans<'a>(&'a self) -> StoreFuture<'a, Arc<Catalog>> {
        StoreFuture::new(async move {
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
            let plan_pools = sqlx::query("SELECT plan, pool, max, per FROM plan_credits")
                .fetch_all(&mut *tx)
                .await?;
            let addon_pools = sqlx::query("SELECT addon, pool, max, per FROM addon_credits")
                .fetch_all(&mut *tx)
                .await?;
            let meters = sqlx::query(
                "SELECT resource, action, cost, report, estimate, pool FROM meters
                  ORDER BY resource, action",
            )
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
            let mut plan_pools = pools_of(plan_pools, "plan")?;
            let plans = plans.into_iter().map(|mut plan| {
                for (pool, allowance) in plan_pools.remove(plan.name()).unwrap_or_default() {
                    plan = plan.with_credits(pool, allowance);
                }
                plan
            });
            let mut addon_pools = pools_of(addon_pools, "add-on")?;
            let addons = addons.into_iter().map(|mut addon| {
                for (pool, extra) in addon_pools.remove(addon.name()).unwrap_or_default() {
                    addon = addon.with_credits(pool, extra);
                }
                addon
            });
            let mut catalog = Catalog::builder().plans(plans).addons(addons);
            for action in declared {
                catalog = catalog.action(action);
            }
            for row in meters {
                let resource: String = row.try_get(0)?;
                let action: String = row.try_get(1)?;
                let meter = meter_of(
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    row.try_get(5)?,
                )
                .naming(|| format!("the meter of `{resource}.{action}`"))?;
                catalog = catalog.meter(resource, Action::custom(action), meter);
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
        })
    }

    fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
        StoreFuture::new(async move {
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
            let credit_grants = sqlx::query(
                "SELECT id, pool, amount, starts_ms, expires_ms
               FROM subscriber_grants WHERE user_id = ?1 ORDER BY position, id",
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
            for row in &credit_grants {
                let grant_id: String = row.try_get(0)?;
                let grant = credit_grant(row, &grant_id)
                    .naming(|| format!("the grant `{grant_id}` of `{id}`"))?;
                subscriber = subscriber.with_grant(grant);
            }
            // Per resource: the plain count (`*`), then the counts of each action (`items` is the
            // `create` count). The plain count stays the usage of the actions without a count of
            // their own.
            let mut resources: ResourceCounts = BTreeMap::new();
            for row in &rows {
                let (Some(resource), Some(counted), Some(used)) = (
                    row.try_get::<Option<String>, _>(5)?,
                    row.try_get::<Option<String>, _>(6)?,
                    row.try_get::<Option<i64>, _>(7)?,
                ) else {
                    continue;
                };
                // A quota's, a credit pool's and a grant's counters are not the record's usage.
                if counted.starts_with('$') || counted.contains('@') {
                    continue;
                }
                let entry = resources.entry(resource).or_default();
                match counted.as_str() {
                    PLAIN => entry.0 = Some(from_db(used)),
                    ITEMS => entry.1.push((Action::Create, from_db(used))),
                    _ => entry.1.push((Action::custom(counted), from_db(used))),
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
        })
    }
}

/// The user whose counters `hold` touches, `None` for a hold without lines: a reservation's
/// counters belong to one user.
fn user_of(hold: &Hold) -> Result<Option<&str>, BoxError> {
    let mut counters = hold.lines().iter().flat_map(|line| {
        std::iter::once(line.counter()).chain(line.grants().iter().map(Spill::counter))
    });
    let Some(first) = counters.next() else {
        return Ok(None);
    };
    if counters.any(|counter| counter.user != first.user) {
        return Err("the counters of one reservation belong to one user".into());
    }
    Ok(Some(&first.user))
}

/// One counter of a [`Line`]: the line's own, or one of its grants'.
struct Part {
    key: Key,
    /// Where it starts when it does not exist yet: the line's seed, or 0 for a grant.
    seed: Seed,
    /// Its limit: the line's, or the grant's amount; `None`: unlimited.
    max: Option<u64>,
}

/// The parts of `line`: its counter, then its grants in their order.
fn parts_of(line: &Line) -> Result<Vec<Part>, BoxError> {
    let mut parts = Vec::with_capacity(1 + line.grants().len());
    parts.push(Part {
        key: Key::of(line.counter())?,
        seed: line.start(),
        max: line.max(),
    });
    for grant in line.grants() {
        parts.push(Part {
            key: Key::of(grant.counter())?,
            seed: Seed::Count(0),
            max: Some(grant.amount()),
        });
    }
    Ok(parts)
}

impl Part {
    /// The counter's count at `now`: its used count (or where it starts) and the units held by
    /// live reservations other than `beside`.
    async fn count(
        &self,
        beside: &str,
        now: i64,
        tx: &mut SqliteConnection,
    ) -> Result<Count, BoxError> {
        let rows = self.key.rows(self.key.shape(tx).await?);
        let start = self.key.start(&rows, self.seed, tx).await?;
        let (used, held) = self
            .key
            .count_beside(&rows, Some(start), beside, now, tx)
            .await?;
        Ok(Count {
            used: used.ok_or("a counter without a count while reserving")?,
            held,
        })
    }

    /// Holds `units` for reservation `id` until `expires` with the guarded [`RESERVE`]; a
    /// counter of its own that does not exist yet starts at its seed. Whether they are held.
    async fn hold(
        &self,
        id: &str,
        units: u64,
        expires: i64,
        now: i64,
        tx: &mut SqliteConnection,
    ) -> Result<bool, BoxError> {
        let key = &self.key;
        let rows = key.rows(key.shape(tx).await?);
        let start = key.start(&rows, self.seed, tx).await?;
        let held = sqlx::query(RESERVE)
            .bind(&key.user)
            .bind(&key.resource)
            .bind(rows.own)
            .bind(rows.fallback)
            .bind(to_db(start))
            .bind(id)
            .bind(&key.hold)
            .bind(now)
            .bind(self.max.map(clamp))
            .bind(to_db(units))
            .bind(expires)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if held && !rows.recorded {
            key.create_at(&rows, start, tx).await?;
        }
        Ok(held)
    }
}

/// The units `line` takes on each of its `parts` when it fits (see the trait's "Lines and
/// grants"): what its limit leaves (`count` is its counter's), then from its grants in order;
/// all of them when it has no grants.
async fn fit(
    line: &Line,
    parts: &[Part],
    count: Count,
    id: &str,
    now: i64,
    tx: &mut SqliteConnection,
) -> Result<Option<Vec<u64>>, BoxError> {
    let units = line.units();
    let room = line
        .max()
        .map_or(u64::MAX, |max| max.saturating_sub(count.total()));
    if line.grants().is_empty() {
        return Ok((units <= room).then(|| vec![units]));
    }
    let own = units.min(room);
    let mut taken = vec![own];
    let mut rest = units - own;
    for grant in &parts[1..] {
        let take = if rest == 0 {
            0
        } else {
            let count = grant.count(id, now, tx).await?;
            let room = grant
                .max
                .map_or(u64::MAX, |max| max.saturating_sub(count.total()));
            rest.min(room)
        };
        taken.push(take);
        rest -= take;
    }
    Ok((rest == 0).then_some(taken))
}

/// How `spent` units of a line are counted on its `parts`, given what each `held` (its hold
/// already given back): on the parts held first, in order; beyond, on its counter while its
/// limit allows, then on its grants while their amounts allow, and the rest on its counter past
/// its limit (see [`UsageStore::commit`]).
async fn spend(
    parts: &[Part],
    held: &[u64],
    spent: u64,
    id: &str,
    now: i64,
    tx: &mut SqliteConnection,
) -> Result<Vec<u64>, BoxError> {
    let mut taken: Vec<u64> = Vec::with_capacity(held.len());
    let mut rest = spent;
    for held in held {
        let take = rest.min(*held);
        taken.push(take);
        rest -= take;
    }
    for (index, part) in parts.iter().enumerate() {
        if rest == 0 {
            return Ok(taken);
        }
        let Some(max) = part.max else {
            // Unlimited: the rest goes here.
            taken[index] = taken[index].saturating_add(rest);
            return Ok(taken);
        };
        let count = part.count(id, now, tx).await?;
        let room = max.saturating_sub(count.total().saturating_add(taken[index]));
        let take = rest.min(room);
        taken[index] += take;
        rest -= take;
    }
    // Past every limit: on the counter.
    if let Some(first) = taken.first_mut() {
        *first = first.saturating_add(rest);
    }
    Ok(taken)
}

impl SqliteStore {
    /// [`UsageStore::reserve`]: every part of every line in one `BEGIN IMMEDIATE` transaction,
    /// each with the guarded [`RESERVE`], or none.
    async fn reserve_hold(&self, hold: &Hold, lease: Duration) -> Result<Held, BoxError> {
        if user_of(hold)?.is_none() {
            return Ok(Held::Reserved(Default::default()));
        }
        let lines: Vec<Vec<Part>> = hold
            .lines()
            .iter()
            .map(parts_of)
            .collect::<Result<_, _>>()?;
        let id = hold.id().to_string();
        let now = self.now();
        let expires = expiry(now, lease);
        // BEGIN IMMEDIATE: the write lock from the start, so that no other writer changes the
        // rows between the counts read here and the guarded inserts.
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        // Already held on one of its counters (a retry): renew the leases, hold nothing more,
        // and answer the counts beside it.
        let mut renewed = false;
        for part in lines.iter().flatten() {
            part.key.purge(now, &mut tx).await?;
            renewed |= part.key.renew(&id, expires, now, &mut tx).await?;
        }
        let mut counts = Vec::with_capacity(lines.len());
        let mut taken = Vec::with_capacity(lines.len());
        for (index, (line, parts)) in hold.lines().iter().zip(&lines).enumerate() {
            let count = parts[0].count(&id, now, &mut tx).await?;
            counts.push(count);
            if renewed {
                continue;
            }
            match fit(line, parts, count, &id, now, &mut tx).await? {
                Some(units) => taken.push(units),
                None => {
                    // Nothing written but the purge of expired holds.
                    tx.commit().await?;
                    return Ok(Held::Refused { line: index, count });
                }
            }
        }
        if renewed {
            // A counter of its own that lost its row (or never had one) starts at its seed.
            for parts in &lines {
                let own = &parts[0];
                let rows = own.key.rows(own.key.shape(&mut tx).await?);
                if !rows.recorded && own.key.holds(&id, now, &mut tx).await? {
                    let start = own.key.start(&rows, own.seed, &mut tx).await?;
                    own.key.create_at(&rows, start, &mut tx).await?;
                }
            }
            tx.commit().await?;
            return Ok(Held::Reserved(counts.into_iter().collect()));
        }
        for (index, (parts, units)) in lines.iter().zip(&taken).enumerate() {
            for (part, units) in parts.iter().zip(units) {
                // A part of 0 holds nothing, and creates nothing.
                if *units > 0 && !part.hold(&id, *units, expires, now, &mut tx).await? {
                    // The guard disagrees with the counts read in this same transaction: hold
                    // nothing at all.
                    tx.rollback().await?;
                    return Ok(Held::Refused {
                        line: index,
                        count: counts[index],
                    });
                }
            }
        }
        tx.commit().await?;
        Ok(Held::Reserved(counts.into_iter().collect()))
    }

    /// [`UsageStore::commit`], in one `BEGIN IMMEDIATE` transaction.
    async fn commit_hold(&self, hold: &Hold, spent: &[u64]) -> Result<(), BoxError> {
        if user_of(hold)?.is_none() {
            return Ok(());
        }
        let lines: Vec<Vec<Part>> = hold
            .lines()
            .iter()
            .map(parts_of)
            .collect::<Result<_, _>>()?;
        let id = hold.id().to_string();
        let now = self.now();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        for (index, (line, parts)) in hold.lines().iter().zip(&lines).enumerate() {
            // What each part held, given back.
            let mut held = Vec::with_capacity(parts.len());
            let mut any = false;
            for part in parts {
                let units = part.key.take_hold(&id, now, &mut tx).await?;
                any |= units.is_some();
                held.push(units.unwrap_or(0));
            }
            if !any {
                // Not held (settled, expired or unknown): nothing to count.
                continue;
            }
            let spent = spent.get(index).copied().unwrap_or(line.units());
            let taken = spend(parts, &held, spent, &id, now, &mut tx).await?;
            for (part, units) in parts.iter().zip(taken) {
                if units > 0 {
                    part.key.add(units, part.seed, &mut tx).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// [`UsageStore::release`], in one `BEGIN IMMEDIATE` transaction (a commit of the same id
    /// sees all of its hold or none of it).
    async fn release_hold(&self, hold: &Hold) -> Result<(), BoxError> {
        if user_of(hold)?.is_none() {
            return Ok(());
        }
        let lines: Vec<Vec<Part>> = hold
            .lines()
            .iter()
            .map(parts_of)
            .collect::<Result<_, _>>()?;
        let id = hold.id().to_string();
        let now = self.now();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        for part in lines.iter().flatten() {
            part.key.take_hold(&id, now, &mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl UsageStore for SqliteStore {
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
        StoreFuture::new(async move {
            let key = Key::of(counter)?;
            // Read, then write: BEGIN IMMEDIATE holds the write lock from the start, so no other
            // writer comes in between.
            let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
            let rows = key.rows(key.shape(&mut tx).await?);
            let start = key.start(&rows, seed, &mut tx).await?;
            let before = key
                .used(&rows, Some(start), &mut tx)
                .await?
                .ok_or("a counter without a count while adjusting")?;
            let after = before.saturating_add_signed(delta);
            key.write(&rows, after, &mut tx).await?;
            tx.commit().await?;
            Ok(after)
        })
    }

    fn set<'a>(&'a self, counter: &'a Counter, used: u64) -> StoreFuture<'a, ()> {
        StoreFuture::new(async move {
            let key = Key::of(counter)?;
            let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
            let rows = key.rows(key.shape(&mut tx).await?);
            key.write(&rows, used, &mut tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, counter: &'a Counter) -> StoreFuture<'a, Option<Count>> {
        StoreFuture::new(async move {
            let key = Key::of(counter)?;
            // One read transaction: which rows exist and their counts come from one snapshot.
            let mut tx = self.reader.begin().await?;
            let rows = key.rows(key.shape(&mut tx).await?);
            let default = rows.recorded.then_some(0);
            let (used, held) = key
                .count_beside(&rows, default, "", self.now(), &mut tx)
                .await?;
            tx.commit().await?;
            if used.is_none() && held == 0 {
                return Ok(None);
            }
            Ok(Some(Count {
                used: used.unwrap_or(0),
                held,
            }))
        })
    }

    fn mark<'a>(&'a self, counter: &'a Counter, mark: &'a str) -> StoreFuture<'a, bool> {
        StoreFuture::new(async move {
            let key = Key::of(counter)?;
            let kept_until = counter.marks_kept_until().map(clamp);
            let set: Option<i64> = sqlx::query_scalar(MARK)
                .bind(&key.user)
                .bind(&key.resource)
                .bind(&key.hold)
                .bind(mark)
                .bind(kept_until)
                .bind(self.now())
                .fetch_optional(&self.writer)
                .await?;
            Ok(set.is_some())
        })
    }
}

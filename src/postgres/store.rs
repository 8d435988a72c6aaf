//! [`PostgresStore`]: the connection pool, the schema's migrations, and the sweep of expired
//! holds.

use std::fmt;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::schema::migrate;
use super::usage::PERIOD_KEPT_MS;
use super::Error;

/// How many connections [`PostgresStore::connect`] opens at most.
const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long [`PostgresStore::connect`]'s pool waits for a free connection (or a new one).
const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`PlanStore`](crate::PlanStore) and a [`UsageStore`](crate::UsageStore) over one Postgres
/// database, shared by every instance that connects to it. See the [module docs](super) for the
/// schema and what each method runs.
///
/// Cloning is cheap: clones share the connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    pub(super) pool: PgPool,
}

/// What [`PostgresStore::sweep`] deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Swept {
    /// Holds whose lease had ended.
    pub holds: u64,
    /// Counters of periods that ended more than an hour before.
    pub counters: u64,
    /// Usage alert markers kept past their time
    /// ([`Counter::marks_kept_until`](crate::store::Counter::marks_kept_until): one period
    /// after their period's end).
    pub marks: u64,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or
    /// `postgres:///database?host=/run/postgresql` for a Unix socket) with a pool of up to 10
    /// connections, and applies the schema's migrations that the database lacks.
    ///
    /// The pool does not test a connection before handing it out (that would cost a round trip
    /// per call): a connection that Postgres closed (a restart) fails the call it serves, which
    /// the layer answers with its failure policy, and is replaced.
    /// [`with_pool`](Self::with_pool) takes a pool configured otherwise.
    ///
    /// # Errors
    /// When the URL is malformed, Postgres cannot be reached, or a migration fails.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(DEFAULT_MAX_CONNECTIONS)
            .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Self::with_pool(pool).await
    }

    /// A store on `pool`, after applying the schema's migrations that the database lacks (in one
    /// transaction, under an advisory lock: instances that start together apply them once).
    ///
    /// # Errors
    /// When Postgres fails, a migration fails, or the database's schema is newer than this
    /// version of the crate knows ([`Error::NewerSchema`]).
    pub async fn with_pool(pool: PgPool) -> Result<Self, Error> {
        migrate(&pool).await?;
        Ok(Self { pool })
    }

    /// The connection pool, for the application's own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Deletes every hold whose lease has ended, the counters of periods that ended more than
    /// an hour before and hold nothing, and the usage alert markers of periods that ended more
    /// than a period before; returns how many of each. Reservations ignore expired holds
    /// anyway, and delete those of the counters they touch; this keeps the tables small when
    /// counters go untouched: run it now and then (every few minutes). Rows that a reservation
    /// holds locked are left for the next sweep.
    ///
    /// # Errors
    /// When Postgres fails.
    pub async fn sweep(&self) -> Result<Swept, Error> {
        let (holds, counters, marks): (i64, i64, i64) =
            sqlx::query_as("SELECT o_holds, o_counters, o_marks FROM tower_plans.sweep($1)")
                .bind(PERIOD_KEPT_MS)
                .fetch_one(&self.pool)
                .await?;
        Ok(Swept {
            holds: u64::try_from(holds).unwrap_or(0),
            counters: u64::try_from(counters).unwrap_or(0),
            marks: u64::try_from(marks).unwrap_or(0),
        })
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

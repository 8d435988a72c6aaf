//! The embedded schema: versioned migrations, applied by [`migrate`] when the store connects.

use sqlx::PgPool;

use super::Error;

/// One schema migration: applied once, in order, recorded in `tower_plans.schema_migrations`.
#[derive(Debug)]
pub(crate) struct Migration {
    /// Its number: migrations run in increasing order, each once.
    pub(crate) version: i64,
    /// What it does, recorded beside the version.
    pub(crate) description: &'static str,
    /// The SQL, run as one script in the migration's transaction.
    pub(crate) sql: &'static str,
}

/// The schema. Never edit an applied migration: add one.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "catalog, subscribers, counters, holds, invalidation triggers",
        sql: include_str!("migrations/0001_schema.sql"),
    },
    Migration {
        version: 2,
        description: "counting functions: reserve, commit, adjust, sweep",
        sql: include_str!("migrations/0002_counting.sql"),
    },
    Migration {
        version: 3,
        description: "alert markers, swept with the holds",
        sql: include_str!("migrations/0003_alert_marks.sql"),
    },
];

/// The key of the transaction-level advisory lock that migrations take, so that instances
/// starting together apply each migration once (`tower_plans` as ASCII, in an `i64`).
const MIGRATION_LOCK: i64 = 0x746f_7765_725f_706c;

/// Applies the [`MIGRATIONS`] that `tower_plans.schema_migrations` does not list, in one
/// transaction under an advisory lock: instances that connect at once apply each migration once,
/// and a failing migration leaves the schema as it was. Returns the newest version applied.
///
/// # Errors
/// When Postgres fails, a migration fails, or the database is at a migration newer than this
/// crate knows ([`Error::NewerSchema`]).
pub(crate) async fn migrate(pool: &PgPool) -> Result<i64, Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(
        "CREATE SCHEMA IF NOT EXISTS tower_plans;
         CREATE TABLE IF NOT EXISTS tower_plans.schema_migrations (
             version     bigint PRIMARY KEY,
             description text NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         );",
    )
    .execute(&mut *tx)
    .await?;
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM tower_plans.schema_migrations")
            .fetch_one(&mut *tx)
            .await?;
    let applied = applied.unwrap_or(0);
    let known = MIGRATIONS.last().map_or(0, |migration| migration.version);
    if applied > known {
        return Err(Error::NewerSchema {
            found: applied,
            known,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
        sqlx::raw_sql(migration.sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO tower_plans.schema_migrations (version, description) VALUES ($1, $2)",
        )
        .bind(migration.version)
        .bind(migration.description)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i64 + 1);
            assert!(!migration.sql.trim().is_empty());
        }
    }
}

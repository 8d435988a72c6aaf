//! Several instances over one Postgres: plans, subscribers, shared counters and reservations in
//! tables, and invalidation broadcast with `LISTEN`/`NOTIFY`. A deployment whose data lives in
//! Postgres needs no Redis.
//!
//! - [`PostgresStore`] is a [`PlanStore`](crate::PlanStore) and a
//!   [`UsageStore`](crate::UsageStore): every instance connects to the same database and runs its
//!   own [`PlanLimitLayer`](crate::PlanLimitLayer) with its own caches. Reserving, committing and
//!   releasing are each one statement, atomic in Postgres, so 200 concurrent creates spread over
//!   four instances at `limit - 1` let exactly one through.
//! - [`PostgresInvalidator`] notifies "user X changed", "all users" and "catalog", and a
//!   background task applies what it hears to the local layer. The schema's triggers notify the
//!   same channel whenever a subscriber's rows or the catalog change, so a write reaches every
//!   instance however it was made. A lost connection drops every cached user and the catalog,
//!   and the task listens again.
//!
//! When Postgres is down or slow, the layer answers as with any store: `store_timeout` bounds
//! every call, and the failure policy answers `503` (or lets requests pass, failing open).
//! Connections that the server closed are replaced as they fail, so requests succeed again once
//! Postgres is back, without a restart; the invalidator listens again.
//!
//! # Schema
//!
//! [`PostgresStore::connect`] applies the embedded migrations that the database lacks, in one
//! transaction under an advisory lock (instances that start together apply them once), and
//! records them in `tower_plans.schema_migrations`. Every table lives in the schema
//! `tower_plans`, beside the application's own:
//!
//! | table | holds |
//! |---|---|
//! | `plans`, `plan_limits`, `plan_credits` | each plan, its limits per resource and its credit pools |
//! | `addons`, `addon_limits`, `addon_credits` | each add-on, the same |
//! | `meters`, `actions`, `trial` | the catalog's meters, custom actions and trial policy |
//! | `subscribers` | each user's name, plan assignment (`plan`, `trial`, `joined_ms`, `expires_ms`) and `cycle_anchor_ms` |
//! | `subscriber_usage`, `subscriber_addons`, `subscriber_grants` | each user's recorded usage, add-ons and credit grants |
//! | `counters` | counted usage: one row per user, resource, what is counted and period, with its `used` count |
//! | `holds` | the units held by requests in flight: one row per reservation and counter, with the end of its lease |
//! | `alert_marks` | the markers of usage alerts: one row per counter (and period) and marker, with when it may be swept |
//!
//! Limits, credit allowances and meters are kept in the catalog's JSON form (`jsonb`, such as
//! `{"show": 10, "create": {"max": 3, "per": "month"}}`), read with
//! [`Catalog::from_value`](crate::Catalog::from_value), which names the path of a bad value; a
//! new form of limit needs no migration. Counts are `numeric(20, 0)`: every `u64` fits.
//! Instants are milliseconds since the Unix epoch in `bigint` columns.
//!
//! The writers ([`set_catalog_json`](PostgresStore::set_catalog_json),
//! [`set_user_json`](PostgresStore::set_user_json), [`put_user`](PostgresStore::put_user),
//! [`load_json`](PostgresStore::load_json), [`remove_user`](PostgresStore::remove_user)) take the
//! JSON formats of [`MemoryStore`](crate::MemoryStore), check them and write each in one
//! transaction. The application may write the tables with its own SQL as well.
//!
//! # Counting
//!
//! The counters are the layer's, apart from the records: a counter that does not exist yet
//! starts from the [`Seed`](crate::store::Seed) the layer gives (what the subscriber record's
//! usage says), and from then on it is the truth for counted limits, as with the Redis store. A
//! resource's item count and its creates are one counter.
//!
//! Each counting call is one statement, a call of one of the schema's functions, run under
//! `READ COMMITTED`:
//!
//! | method | what the function does |
//! |---|---|
//! | `reserve` | locks each counter of the hold (`SELECT ... FOR UPDATE`, or `INSERT ... ON CONFLICT DO NOTHING` at its seed on first use), in key order; deletes their expired holds; renews the lease of a hold already there (a retry); else checks every line (`used + held + units <= limit`, grants in turn) and inserts the hold rows, or deletes the counters it created and answers which line did not fit |
//! | `commit` | locks the counters, deletes this reservation's holds, and adds the units spent to `used` (the parts held first, then what each limit allows, the rest on the counter) |
//! | `release` | one `DELETE` of the reservation's holds |
//! | `adjust`, `set`, `get` | one locked update, one upsert, one read |
//! | `mark` | `INSERT INTO alert_marks ... ON CONFLICT DO NOTHING RETURNING true`: of concurrent calls, the one whose row goes in answers `true` |
//!
//! A reservation thus sees no count and no hold change between its check and its write, and two
//! reservations never take the last unit both. Commit and release are idempotent by reservation
//! id: a reservation that is not held any more (committed, released or expired) counts nothing.
//! Leases run on the server's clock, which every instance shares: a hold whose lease has ended
//! counts for nothing, is deleted when its counter is next reserved or committed, and by
//! [`PostgresStore::sweep`], which also deletes the counters of periods that ended an hour ago
//! and the alert markers of periods that ended a period ago.
//!
//! Each counted request thus costs two statements (a reservation, then a commit or a release).
//! For counters far from their limits (a high-volume quota, a credit pool), wrap the store in
//! [`Leased`](crate::lease::Leased) (`.count_usage(Leased::builder(store.clone()).build())`):
//! each instance then holds a block of units per counter, an ordinary hold in `holds`, and
//! serves requests from it in memory, settling it in the background; near a limit every
//! request is counted here as before, so no count passes its limit.
//!
//! # Example
//!
//! One instance; run the same code in every instance. It needs a Postgres; `examples/postgres.rs`
//! starts one and runs two instances.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use axum::{routing::post, Router};
//! use tower_plans::postgres::PostgresStore;
//! use tower_plans::{PlanLimitLayer, UserCache};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect("postgres://app@localhost/app").await?;
//!
//! // Seed the plans once (an admin tool or a deployment step would).
//! store
//!     .load_json(
//!         r#"[{"name": "free", "clients": 3}, {"name": "pro", "clients": 30}]"#,
//!         r#"{"john": {"plan": "free", "usage": {"clients": 1}}}"#,
//!     )
//!     .await?;
//!
//! let layer = PlanLimitLayer::builder(store.clone())
//!     .base("/api")
//!     .count_usage(store.clone())
//!     .user_cache(UserCache::time_to_live(Duration::from_secs(600), 10_000))
//!     .store_timeout(Duration::from_millis(500))
//!     .build()?;
//! // Keep it for as long as the instance serves: it listens to the other instances.
//! let invalidator = store.invalidator(layer.invalidator())?;
//!
//! let app: Router = Router::new()
//!     .route("/api/clients", post(|| async { "created" }))
//!     .route_layer(layer);
//!
//! // An admin action on any instance: john moves to "pro". The write notifies every
//! // instance, which drops its cached record of john.
//! store.set_user_json("john", r#"{"plan": "pro", "usage": {"clients": 1}}"#).await?;
//! # let _ = (app, invalidator);
//! # Ok(())
//! # }
//! ```

mod error;
mod invalidation;
mod plans;
mod records;
mod schema;
mod store;
mod usage;

pub use error::Error;
pub use invalidation::{PostgresInvalidator, PostgresInvalidatorBuilder};
pub use store::{PostgresStore, Swept};

/// The `sqlx` crate these types are built on, so that a [`PgPool`](driver::PgPool) you make
/// for [`PostgresStore::with_pool`] is of the same version.
pub use ::sqlx as driver;

//! Several instances over one Redis or a Redis Cluster: shared counters and reservations, plans
//! in Redis, and invalidation broadcast to every instance.
//!
//! Every instance runs its own [`PlanLimitLayer`](crate::PlanLimitLayer), with its own caches;
//! they share state through Redis ([the guide's chapter](crate::guide::redis) says how the pieces
//! fit):
//!
//! - [`RedisUsageStore`] keeps the counters and reservations of counted usage
//!   ([`count_usage`](crate::PlanLimitLayerBuilder::count_usage)). Reserve, commit and release
//!   of a whole hold (every counter it takes units on) are each one Lua script, atomic in Redis,
//!   so 200 concurrent creates spread over four instances at `limit - 1` let exactly one
//!   through. Reservations carry the layer's
//!   [`lease`](crate::PlanLimitLayerBuilder::lease): those of an instance that crashed expire by
//!   themselves.
//! - [`RedisRates`] keeps the plans' rates
//!   ([`rate_store`](crate::PlanLimitLayerBuilder::rate_store)): one Lua script takes a
//!   request of a rate (GCRA, as in memory), so a rate of 60 a minute lets 60 requests through
//!   across all the instances.
//! - [`RedisPlanStore`] reads the catalog and the subscriber records from Redis keys, as JSON in
//!   the formats of [`Catalog::from_json`](crate::Catalog::from_json) and
//!   [`Subscriber::from_json`](crate::Subscriber::from_json), and writes them
//!   ([`load_json`](RedisPlanStore::load_json), [`set_user_json`](RedisPlanStore::set_user_json),
//!   ...). An application whose plans live in its own database keeps its own
//!   [`PlanStore`](crate::PlanStore) and uses only the counters and the invalidation.
//! - [`RedisInvalidator`] publishes "user X changed", "all users" and "catalog" on a channel and
//!   applies them to the local layer; a background task applies what the other instances
//!   publish. An instance that loses its subscription drops every cached user and the catalog
//!   and subscribes again. With the `webhook` feature it is a
//!   `webhook::Invalidate`, so a webhook that reaches one instance
//!   updates all of them.
//! - [`RedisConnection`] opens the connection, to one Redis or (feature `redis-cluster`) to a
//!   cluster, sets the key prefix, and makes the others; they work the same on both (see
//!   [Cluster](#cluster)).
//!
//! When Redis is down or slow, the layer answers as with any store: `store_timeout` bounds every
//! call, and the failure policy answers `503` (or lets requests pass, failing open). The
//! connection reconnects in the background, so requests succeed again once Redis is back,
//! without a restart; the invalidator subscribes again.
//!
//! # Keys
//!
//! With the default prefix `tower-plans`, user `john` and resource `clients`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `tower-plans:catalog` | string | the catalog, as JSON |
//! | `tower-plans:{john}:user` | string | john's subscriber record, as JSON |
//! | `tower-plans:{john}:used` | hash | john's used counts: field `clients:i` for the items (and creates), `tasks:a:show` for an action, `ai:c` for credit pool `ai`, `ai:g:g1` for its grant `g1` |
//! | `tower-plans:{john}:used@2026-11` | hash | john's counts of one period (same fields), expiring an hour after the period |
//! | `tower-plans:{john}:held:clients:i` | sorted set | the reservations held on one counter (its field, then `@2026-11` for a period counter), scored by the end of their lease (ms, Redis time) |
//! | `tower-plans:{john}:units:clients:i` | hash | the units each of those reservations holds, by id, and their sum (field `total`); it expires with the sorted set |
//! | `tower-plans:{john}:marks:clients:i` | hash | the usage alert markers set on one counter (its field, then `@2026-11` for a period counter), one field each (`alert:80%`); a period's expires one period after it ends |
//! | `tower-plans:{john}:rate` | string | john's plan-wide rate: its theoretical arrival time (µs, on the layers' clock), expiring a second after it |
//! | `tower-plans:{john}:rate:clients:index` | string | the same for john's rate on one action of one resource |
//! | `tower-plans:invalidate` | channel | `user:<id>`, `all-users`, `catalog` |
//!
//! The braces are a cluster hash tag: every key of one user lives in one slot, so a script can
//! reserve a whole hold (a credit pool, its grants and an action's limit) at once. User ids,
//! resource, action, pool and grant names are escaped so that no two share a key or a field:
//! every byte other than an ASCII letter, a digit, `-`, `_` or `.` is written `%XX` (`a:b` is
//! `a%3Ab`, `zoë` is `zo%C3%AB`), and the empty id is written `%`. Counters that do not exist yet start from the subscriber
//! record's usage, as with [`MemoryStore`](crate::MemoryStore); from then on the counters are the
//! truth for counted limits.
//!
//! # Cluster
//!
//! With the `redis-cluster` feature, `RedisConnection::open_cluster` connects to a Redis
//! Cluster (or a managed service in cluster mode) through the `redis` crate's cluster client,
//! which sends each command to the master that serves its key's slot and follows the cluster as
//! slots move and replicas take over. The stores and the invalidator are the same types:
//!
//! - every key of one user is in the user's slot (the `{user}` hash tag above), so each script
//!   names the keys of one slot and runs, atomic, on one master: it is sent with `EVALSHA`,
//!   routed by its first key, and with `EVAL` and its body when that master does not know it yet
//!   (a restarted node, a replica just promoted). The catalog has a slot of its own.
//!   [`RedisPlanStore::load_json`] writes the catalog and each record on its own there, since a
//!   transaction cannot span slots.
//! - invalidations travel by `PUBLISH`, which a cluster carries to the subscribers of every
//!   node: each instance's task subscribes on one healthy node (the instances spread over them)
//!   and publishing goes to any reachable one. Sharded pub/sub (`SSUBSCRIBE`) would tie every
//!   message to the one shard that serves the channel name, down while that shard fails over;
//!   invalidations are rare, so the cluster bus carrying them to every node costs little. When
//!   its node goes away (the connection closes, a health check fails, or the cluster marks the
//!   node failed or forgets it) the task drops every cached user and the catalog and subscribes
//!   on another node, as with one Redis.
//! - while a master is down, its users' calls fail within `store_timeout`, answered by the
//!   failure policy, until its replica takes over (the cluster's `cluster-node-timeout`, then an
//!   election of a second or so); the users of the other masters are served throughout, provided
//!   the cluster runs with `cluster-require-full-coverage no` (with Redis's default, `yes`, every
//!   node refuses while any slot has no master). No restart is needed afterwards.
//! - Redis replicates asynchronously: a count or a reservation that a master acknowledged in the
//!   last moment before it died may be missing on the replica that takes over, and the limit can
//!   be exceeded by those few creates. That is Redis's guarantee, not the layer's.
//!
//! ```no_run
//! # #[cfg(feature = "redis-cluster")]
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! use tower_plans::redis::RedisConnection;
//! use tower_plans::PlanLimitLayer;
//!
//! // A few of the nodes are enough: the client finds the others.
//! let redis = RedisConnection::open_cluster([
//!     "redis://10.0.0.1:7000/",
//!     "redis://10.0.0.2:7000/",
//!     "redis://10.0.0.3:7000/",
//! ])
//! .await?
//! .key_prefix("myapp");
//!
//! // From here on, as with one Redis.
//! let layer = PlanLimitLayer::builder(redis.plan_store())
//!     .count_usage(redis.usage_store())
//!     .store_timeout(Duration::from_millis(500))
//!     .build()?;
//! let invalidator = redis.invalidator(layer.invalidator())?;
//! # let _ = invalidator;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "redis-cluster"))]
//! # fn main() {}
//! ```
//!
//! # Example
//!
//! One instance; run the same code in every instance. It needs a Redis
//! (`redis-server --port 6379`); `examples/redis.rs` runs two instances and a tour.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use axum::{routing::post, Router};
//! use tower_plans::redis::RedisConnection;
//! use tower_plans::{PlanLimitLayer, UserCache};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = RedisConnection::open("redis://127.0.0.1:6379/").await?.key_prefix("myapp");
//!
//! // Seed the plans once (an admin tool or a deployment step would).
//! redis
//!     .plan_store()
//!     .load_json(
//!         r#"[{"name": "free", "clients": 3}, {"name": "pro", "clients": 30}]"#,
//!         r#"{"john": {"plan": "free", "usage": {"clients": 1}}}"#,
//!     )
//!     .await?;
//!
//! let layer = PlanLimitLayer::builder(redis.plan_store())
//!     .base("/api")
//!     .count_usage(redis.usage_store())
//!     .user_cache(UserCache::time_to_live(Duration::from_secs(600), 10_000))
//!     .store_timeout(Duration::from_millis(500))
//!     .build()?;
//! // Keep it for as long as the instance serves: it listens to the other instances.
//! let invalidator = redis.invalidator(layer.invalidator())?;
//!
//! let app: Router = Router::new()
//!     .route("/api/clients", post(|| async { "created" }))
//!     .route_layer(layer);
//!
//! // An admin action on any instance: john moves to "pro", and every instance sees it.
//! redis.plan_store().set_user_json("john", r#"{"plan": "pro", "usage": {"clients": 1}}"#).await?;
//! invalidator.user("john").await?;
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

mod connection;
mod error;
mod invalidation;
mod keys;
mod link;
#[cfg(feature = "redis-cluster")]
mod nodes;
mod plans;
mod rates;
mod scripts;
mod usage;

pub use connection::RedisConnection;
pub use error::Error;
pub use invalidation::{RedisInvalidator, RedisInvalidatorBuilder};
pub use plans::RedisPlanStore;
pub use rates::RedisRates;
pub use usage::RedisUsageStore;

/// The `redis` crate these types are built on, so that a [`Client`](driver::Client) or a
/// [`ConnectionManagerConfig`](driver::aio::ConnectionManagerConfig) you make is of the same
/// version.
pub use ::redis as driver;

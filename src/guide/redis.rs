//! # Several instances: Redis
//!
//! Behind a load balancer every instance runs its own layer, with its own caches. With the
//! `redis` feature (off by default; it brings in the `redis` crate with Tokio, and `futures`)
//! they share their state in one Redis, and with `redis-cluster` in a Redis Cluster.
//! [`tower_plans::redis`](crate::redis) describes the pieces in full, with the key layout; this
//! chapter says how they fit.
//!
//! - [`RedisUsageStore`](crate::redis::RedisUsageStore) keeps [counted usage](super::counting):
//!   counters and reservations changed by Lua scripts, so that reserve, commit and release are
//!   atomic across instances (200 concurrent creates spread over four instances at `limit - 1`
//!   let exactly one through), each for a whole reservation: a metered request's credit pool,
//!   its top-up grants and its action's limit, all or none. Reservations carry the layer's lease: what a crashed instance held
//!   is freed when its lease ends. Counters that do not exist yet start from the records' usage.
//! - [`RedisPlanStore`](crate::redis::RedisPlanStore) reads the catalog and the subscriber
//!   records from Redis keys, as JSON in the [formats of the first chapter](super::catalog);
//!   [`load_json`](crate::redis::RedisPlanStore::load_json),
//!   [`set_catalog_json`](crate::redis::RedisPlanStore::set_catalog_json) and
//!   [`set_user_json`](crate::redis::RedisPlanStore::set_user_json) check what they write.
//!   Malformed JSON found in Redis is a store failure: logged, never shown to a client. An
//!   application whose plans live in its own database keeps its own
//!   [`PlanStore`](crate::PlanStore) and uses only the counters and the invalidation.
//! - [`RedisInvalidator`](crate::redis::RedisInvalidator) publishes "user X changed", "all users"
//!   and "catalog" on a pub/sub channel and applies them to the local layer at once; a
//!   background task in every instance applies what the others publish. An instance that loses
//!   its subscription drops every cached user and the catalog, and subscribes again with a
//!   bounded backoff; cache lifetimes remain the backstop. Give it to a
//!   [webhook receiver](super::webhooks) and an event that reaches one instance updates all of
//!   them.
//! - [`RedisConnection`](crate::redis::RedisConnection) opens the connection and makes the
//!   three, all under one key prefix.
//!
//! When Redis is down or slow, requests are answered within `store_timeout`, by the
//! [failure policy](super::configuration#when-a-store-fails): `503`, or passed with a warning
//! when failing open. The connection reconnects in the background: requests succeed again, and
//! the subscription comes back, once Redis does, without a restart. All of one user's keys share
//! a cluster hash slot (`{user}`), and user ids are escaped so that no id reaches another's keys.
//!
//! ## Example
//!
//! Run the same code in every instance. It needs a Redis (`redis-server --port 6379`; on Debian
//! `apt-get install redis-server`):
//!
//! ```no_run
//! # #[cfg(feature = "redis")]
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! use axum::{routing::post, Router};
//! use tower_plans::redis::RedisConnection;
//! use tower_plans::{PlanLimitLayer, UserCache};
//!
//! let redis = RedisConnection::open("redis://127.0.0.1:6379/").await?.key_prefix("myapp");
//!
//! // Once, from a deployment step or an admin tool: the plans and the users, checked.
//! redis
//!     .plan_store()
//!     .load_json(
//!         r#"[{"name": "free", "clients": 3}, {"name": "pro", "clients": 30}]"#,
//!         r#"{"john": {"plan": "free"}}"#,
//!     )
//!     .await?;
//!
//! let plans = PlanLimitLayer::builder(redis.plan_store())
//!     .base("/api")
//!     .count_usage(redis.usage_store())
//!     .user_cache(UserCache::time_to_live(Duration::from_secs(600), 10_000))
//!     .store_timeout(Duration::from_millis(500))
//!     .build()?;
//! // Keep it while the instance serves: it listens to the other instances.
//! let invalidator = redis.invalidator(plans.invalidator())?;
//!
//! let app: Router = Router::new()
//!     .route("/api/clients", post(|| async { "created" }))
//!     .route_layer(plans);
//!
//! // An admin change on any instance: every instance drops john's cached record.
//! redis.plan_store().set_user_json("john", r#"{"plan": "pro"}"#).await?;
//! invalidator.user("john").await?;
//! # let _ = app;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "redis"))]
//! # fn main() {}
//! ```
//!
//! `cargo run --example redis --features redis` starts two instances on `127.0.0.1:3001` and
//! `:3002` over one Redis and prints a curl tour: a create on one is counted on the other, and
//! a plan change made on one is seen by the other. `-- --check` runs the tour itself; `--redis
//! URL` and `--ports A,B` move it.
//!
//! ## Rates
//!
//! A plan's [rates](crate::rate) (`"rate": {"max": 60, "per": "minute"}`) are kept in each
//! layer's memory unless told otherwise, so four instances would let 240 a minute through. Give
//! every instance [`RedisRates`](crate::redis::RedisRates) instead:
//! `.rate_store(redis.rate_store())` beside `.count_usage(redis.usage_store())`. Each rate of a
//! user is one key in the user's slot, holding the generic cell rate algorithm's one number; one
//! Lua script reads and advances it, so 100 concurrent requests spread over four instances let
//! exactly 60 through, and a request refused by its quota gives its rate back. The time is the
//! layer's clock, not Redis's: keep the instances' clocks in step (NTP). A key expires a second
//! after the rate is whole again, so idle users cost nothing.
//!
//! ## Counting at scale: block leases
//!
//! Every counted request over Redis makes two Lua calls, a reservation before the handler and a
//! commit after. For counters far from their limits (a monthly quota of 100 000 calls, a credit
//! pool) wrap the usage store in [`Leased`](crate::lease::Leased): each instance then holds a
//! *block* of units per counter on Redis, an ordinary reservation, and serves requests from it
//! in memory; it commits what it spent on a timer (every 100 ms near a limit, every second far
//! from it), when the block is spent, and when it stops. Near a limit the blocks shrink to
//! nothing and every request is counted on Redis as before, so the layer still never lets a
//! count pass its limit (200 concurrent creates at `limit - 1` over four instances still create
//! exactly one). The price: an instance that crashes loses what it spent from its blocks and
//! did not commit yet, at most one block per counter
//! ([the module docs](crate::lease#guarantees) state the bounds). Over Postgres (feature
//! `postgres`) wrap the `PostgresStore` the same way: `Leased::builder(store.clone())`.
//!
//! ```no_run
//! # #[cfg(feature = "redis")]
//! # #[tokio::main]
//! # async fn main() -> Result<(), tower_plans::BoxError> {
//! use tower_plans::lease::Leased;
//! use tower_plans::redis::RedisConnection;
//! use tower_plans::PlanLimitLayer;
//!
//! let redis = RedisConnection::open("redis://127.0.0.1/").await?;
//! // Four instances share this Redis.
//! let usage = Leased::builder(redis.usage_store()).instances(4).build();
//! let plans = PlanLimitLayer::builder(redis.plan_store())
//!     .count_usage(usage.clone())
//!     .build()?;
//! // ... serve; then, when the instance stops, commit what its blocks spent:
//! usage.shutdown().await?;
//! # let _ = plans;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "redis"))]
//! # fn main() {}
//! ```
//!
//! ## Redis Cluster
//!
//! With the `redis-cluster` feature, `RedisConnection::open_cluster([...nodes])` connects to a
//! Redis Cluster (or a managed service in cluster mode); the stores and the invalidator are the
//! same types, and everything above holds. Each script touches the keys of one user, which share
//! a slot, so it runs atomically on one master. Invalidations travel by `PUBLISH`, which the
//! cluster carries to every node. While a master is down its users' calls fail within
//! `store_timeout` until a replica takes over; the other users are served throughout when the
//! cluster runs with `cluster-require-full-coverage no`. Redis replicates asynchronously, so a
//! count acknowledged just before a master died can be missing on the replica that takes over:
//! that is Redis's guarantee, not the layer's. [The module's Cluster section](crate::redis#cluster)
//! has the details.
//!
//! ```no_run
//! # #[cfg(feature = "redis-cluster")]
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tower_plans::redis::RedisConnection;
//! use tower_plans::PlanLimitLayer;
//!
//! // A few of the nodes are enough: the client finds the others.
//! let redis = RedisConnection::open_cluster(["redis://10.0.0.1:7000/", "redis://10.0.0.2:7000/"])
//!     .await?
//!     .key_prefix("myapp");
//! let plans = PlanLimitLayer::builder(redis.plan_store())
//!     .count_usage(redis.usage_store())
//!     .build()?;
//! let invalidator = redis.invalidator(plans.invalidator())?;
//! # let _ = invalidator;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "redis-cluster"))]
//! # fn main() {}
//! ```
//!
//! ## Testing
//!
//! The Redis tests (`cargo test --all-features`) start a `redis-server` of their own on a Unix
//! socket, and the cluster tests six of them on loopback ports joined with
//! `redis-cli --cluster create` (Redis 7); they fail, rather than skip, when the programs are not
//! installed.

// The links to the `redis` module resolve when the feature is on, as on docs.rs.
#![cfg_attr(not(feature = "redis"), allow(rustdoc::broken_intra_doc_links))]

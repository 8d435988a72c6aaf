//! tower-plans over a real Redis: the scripts of the usage store (the same semantics as the
//! in-memory store's, and the usage store suite every store passes), the rate store (the rate
//! store suite, and the in-memory rates' decisions), the plan store (with add-ons), key
//! escaping, several instances sharing one Redis (metered and rate-limited requests too), and
//! Redis going away and coming back. Every test starts its own `redis-server`. With the
//! `redis-cluster` feature, the same over a Redis Cluster of three masters with one replica
//! each, which each of those tests starts too, and a master killed mid-run. Usage alerts fire
//! once per threshold across instances, on both.

#[cfg(feature = "redis-cluster")]
#[path = "../support/redis_cluster.rs"]
mod redis_cluster;
#[path = "../support/redis_server.rs"]
mod redis_server;

mod common;

#[path = "../support/counting_differential.rs"]
mod counting_model;
#[path = "../support/lease_quota.rs"]
mod lease_quota;
#[path = "../support/rate_conformance.rs"]
mod rate_conformance;
#[path = "../support/usage_conformance.rs"]
mod usage_conformance;

mod addons;
mod alerts;
#[cfg(feature = "redis-cluster")]
mod cluster;
#[cfg(feature = "redis-cluster")]
mod cluster_failover;
#[cfg(feature = "redis-cluster")]
mod cluster_instances;
#[cfg(feature = "redis-cluster")]
mod cluster_invalidation;
#[cfg(feature = "redis-cluster")]
mod cluster_keys;
mod counting;
mod differential;
mod holds;
mod instances;
mod keys;
mod leases;
mod metering;
mod outage;
mod plans;
mod rates;
mod scripts;
#[cfg(feature = "stripe")]
mod stripe;
mod usage_store;
#[cfg(feature = "webhook")]
mod webhook;

//! The layer at work: in axum, hyper and plain tower stacks, its caches and their invalidation,
//! cancellation, counted usage, rates, add-ons, the metrics, store failures, stores that answer at once, readiness, what it governs,
//! the quickstart example, and the SQLite example's store.

#[path = "../support/mod.rs"]
mod support;

#[path = "../support/counting_differential.rs"]
mod counting_model;

#[path = "../support/usage_conformance.rs"]
mod usage_conformance;

#[path = "../support/rate_conformance.rs"]
mod rate_conformance;

mod addons;
mod axum;
mod caching;
mod cancellation;
mod counting;
mod cycles;
mod differential;
mod failure_policy;
mod governable_scope;
mod hyper;
mod immediate;
mod invalidation;
mod leases;
mod metering;
#[cfg(feature = "metrics")]
mod metrics;
mod poll_ready;
mod quickstart;
mod quotas;
mod rate_store;
mod sqlite;
mod tower_stack;
mod usage_store;

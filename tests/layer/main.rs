//! The layer at work: in axum, hyper and plain tower stacks, its caches and their invalidation,
//! cancellation, counted usage, store failures, readiness, what it governs, and the quickstart
//! example.

#[path = "../support/mod.rs"]
mod support;

mod axum;
mod caching;
mod cancellation;
mod counting;
mod failure_policy;
mod governable_scope;
mod hyper;
mod invalidation;
mod poll_ready;
mod quickstart;
mod tower_stack;

//! tower-plans over a real Postgres: the usage store suite and the counting model (the same
//! semantics as the in-memory store's), the plan store, several instances sharing one database
//! (with block leases too), and the server restarted mid-run. The tests share one server per
//! run (started on first use, each test in a database of its own), except those that stop
//! theirs.

#[path = "../support/lease_quota.rs"]
mod lease_quota;
#[path = "../support/postgres_server.rs"]
mod postgres_server;
#[path = "../support/usage_conformance.rs"]
mod usage_conformance;

mod common;

#[path = "../support/counting_differential.rs"]
mod counting_model;

mod counting;
mod instances;
mod leases;
mod outage;
mod plans;
mod usage_store;

//! tower-plans over a real Redis: the scripts of the usage store (the same semantics as the
//! in-memory store's), the plan store (with add-ons), key escaping, several instances sharing one Redis, and
//! Redis going away and coming back. Every test starts its own `redis-server`.

#[path = "../support/redis_server.rs"]
mod redis_server;

mod common;

mod addons;
mod differential;
mod instances;
mod keys;
mod outage;
mod plans;
mod scripts;
#[cfg(feature = "webhook")]
mod webhook;

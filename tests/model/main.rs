//! The plan model and its configuration: catalogs, subscriber records, decisions, add-ons, the
//! route table, resource names, the layer's builder and the in-memory store.

#[path = "../support/mod.rs"]
mod support;

mod addons;
mod builder;
mod catalog;
mod decision;
mod memory_store;
mod metering;
mod resource_names;
mod routes;
mod rules;
mod structure;
mod subscriber;

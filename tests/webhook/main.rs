//! The webhook receiver: signatures, parsing, acknowledgement, redelivery and retries, the
//! `MemoryStore` hook for plans and add-ons, and the receiver with the layer over loopback.
#![cfg(feature = "webhook")]

mod support;

mod addon_events;
mod delivery;
mod end_to_end;
mod events;
mod memory_store_hook;
mod signatures;

//! Allocation counts, under a counting global allocator: a binary of their own, since a binary
//! has one global allocator. Each test counts the allocations of its own thread only, so the
//! tests may run in parallel.

// Installs the counting allocator.
#[path = "../support/alloc.rs"]
mod counting;

mod decision;
mod layer;
mod routes;

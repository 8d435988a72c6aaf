//! A counting global allocator, shared by the allocation tests (`tests/alloc`) and
//! `benches/alloc.rs`, which include this file with `#[path]`. Including it installs it.
//!
//! It forwards every call unchanged to the system allocator and counts twice:
//!
//! - process-wide totals of allocations and of bytes allocated and freed ([`snapshot`]), for
//!   work spread over several threads;
//! - the allocations of the current thread ([`allocations`]), so that a test's count is not
//!   disturbed by the test harness's other threads, nor by other tests running in parallel.
//!
//! It is not a module of `tests/support`: every test binary including that would get it.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static THREAD_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count(allocated: usize) {
    ALLOCATIONS.fetch_add(1, Relaxed);
    ALLOCATED.fetch_add(allocated as u64, Relaxed);
    // `try_with`: the thread-local may already be gone while a thread shuts down.
    let _ = THREAD_ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// atomics and a const-initialised thread-local `Cell`, none of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        FREED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result with the number of allocations it made on this thread.
pub fn allocations<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = THREAD_ALLOCATIONS.with(Cell::get);
    let result = f();
    (result, THREAD_ALLOCATIONS.with(Cell::get) - before)
}

/// Allocations and allocated bytes so far, and live bytes now, over all threads.
#[derive(Clone, Copy)]
pub struct Snapshot {
    pub allocations: u64,
    pub allocated: u64,
    pub live: i64,
}

pub fn snapshot() -> Snapshot {
    let allocated = ALLOCATED.load(Relaxed);
    Snapshot {
        allocations: ALLOCATIONS.load(Relaxed),
        allocated,
        live: allocated as i64 - FREED.load(Relaxed) as i64,
    }
}

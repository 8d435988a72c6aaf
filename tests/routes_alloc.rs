//! Matching an already clean path allocates nothing; any other spelling allocates one string.
//!
//! A counting global allocator counts the allocations of the current thread only, so the test
//! harness's own threads do not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use http::Method;
use tower_plans::{Action, RouteConfig, RouteTable};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the thread-local may already be gone while a thread shuts down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded to the system allocator unchanged; counting touches only a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while `f` runs.
fn allocations<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let value = f();
    (ALLOCATIONS.with(Cell::get) - before, value)
}

#[test]
fn clean_paths_match_without_allocating() {
    let config = RouteConfig::new()
        .base("/api")
        .path("clients", "/my/clients")
        .path("groups", "some/groups")
        .route(
            Method::POST,
            "reports/:id/export",
            "reports",
            Action::custom("export"),
        );
    let resources: Vec<Arc<str>> = vec!["clients".into(), "groups".into(), "reports".into()];
    let table = RouteTable::new(&config, &resources).unwrap();

    let clean: &[(Method, &str, Option<Action>)] = &[
        (Method::GET, "/my/clients", Some(Action::Index)),
        (Method::POST, "/my/clients", Some(Action::Create)),
        (Method::GET, "/my/clients/42", Some(Action::Show)),
        (Method::HEAD, "/my/clients/42", Some(Action::Show)),
        (Method::PATCH, "/my/clients/42", Some(Action::Patch)),
        (Method::DELETE, "/api/some/groups/7", Some(Action::Delete)),
        (Method::GET, "/api/some/groups?page=2", Some(Action::Index)),
        (
            Method::POST,
            "/api/reports/9/export",
            Some(Action::custom("export")),
        ),
        (Method::GET, "/my/clients/été", Some(Action::Show)),
        (Method::GET, "/", None),
        (Method::GET, "/my/clients/42/extra", None),
        (Method::PUT, "/my/clients", None),
        (Method::OPTIONS, "/my/clients", None),
    ];
    for (method, path, expected) in clean {
        let (n, found) = allocations(|| table.resolve(method, path).map(|m| m.action));
        assert_eq!(found, expected.as_ref(), "{method} {path}");
        assert_eq!(n, 0, "{method} {path} allocated");
    }

    // Any other spelling is normalised into one buffer, which every reading reuses.
    for path in [
        "/My/Clients/42",
        "//my/clients/42/",
        "/my/cl%69ents/42",
        "/my/./clients/42",
        "/my/clients/..",
        "/my/x/../clients/42",
        "/my%2Fclients/42",
        "/my%2Fx/../clients/42",
    ] {
        let (n, found) = allocations(|| table.resolve(&Method::GET, path).map(|m| m.action));
        assert_eq!(found, Some(&Action::Show), "{path}");
        assert_eq!(n, 1, "{path}");
    }
}

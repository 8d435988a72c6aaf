//! An allowed request checked in a `MemoryStore` through the layer, without a user cache,
//! allocates only for the `Allowed` extension: the store answers at once (a ready
//! `StoreFuture`), so there is no check future and no store-call box; a counted create
//! allocates once, for the reservation its response settles.
//!
//! The counts are the same with the `metrics` feature (`cargo test --features metrics`): this
//! binary installs no recorder, and the metric keys are made before any request (statics, and
//! the route's keys when the catalog is loaded), so recording through the facade's no-op
//! recorder allocates nothing.

use std::convert::Infallible;
use std::future::{ready, Future};

use bytes::Bytes;
use futures::FutureExt;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::Empty;
use tower::{service_fn, Layer, Service};
use tower_plans::{
    subscriber::Assignment, Allowed, Catalog, MemoryStore, PlanLimitLayer, Subscriber, UserId,
};

use crate::counting::allocations;

/// The output of `future`, which a `MemoryStore` lets complete on its first poll.
fn at_once<F: Future>(future: F) -> F::Output {
    future
        .now_or_never()
        .expect("a request checked in a MemoryStore waited")
}

/// `POST /api/clients` by `john`, as an authentication layer would leave it.
fn create(john: &UserId) -> Request<()> {
    let mut request = Request::new(());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = Uri::from_static("/api/clients");
    request.extensions_mut().insert(john.clone());
    request
}

/// A store whose `free` plan keeps `clients` clients, and john on it with one.
fn john_on_free(clients: u64) -> (MemoryStore, UserId) {
    let catalog = Catalog::from_json(&format!(
        r#"{{"plans": [{{"name": "free", "limits": {{"clients": {clients}}}}}]}}"#
    ))
    .unwrap();
    let store = MemoryStore::new(catalog);
    store.insert_user(
        "john",
        Subscriber::new()
            .with_plan(Assignment::new("free"))
            .with_usage("clients", 1),
    );
    (store, UserId::new("john"))
}

#[test]
fn an_allowed_request_checked_in_the_store_allocates_only_its_extension() {
    let (store, john) = john_on_free(3);

    // With the extension on, the `Allowed` decision inserted into the request extensions (the
    // map already holds the user id, so it does not grow). Nothing else: not the store call
    // (`MemoryStore` answers at once, so no check is boxed to wait for it), the decision, the
    // logging, the spans, the metrics (with the `metrics` feature and no recorder) nor the
    // inner call.
    for (extension, expected) in [(true, 1), (false, 0)] {
        let layer = PlanLimitLayer::builder(store.clone())
            .base("/api")
            .allowed_extension(extension)
            .build()
            .unwrap();
        // The inner service answers `200` with the `Allowed` extension, `204` without; it
        // allocates nothing.
        let mut service = layer.layer(service_fn(|request: Request<()>| {
            let mut response = Response::new(Empty::<Bytes>::new());
            if request.extensions().get::<Allowed>().is_none() {
                *response.status_mut() = StatusCode::NO_CONTENT;
            }
            ready(Ok::<_, Infallible>(response))
        }));
        let status = if extension {
            StatusCode::OK
        } else {
            StatusCode::NO_CONTENT
        };

        // Warm: the first request loads the catalog.
        for _ in 0..2 {
            let response = at_once(service.call(create(&john))).unwrap();
            assert_eq!(response.status(), status, "extension {extension}");
        }

        let request = create(&john);
        let (response, count) = allocations(|| at_once(service.call(request)).unwrap());
        assert_eq!(response.status(), status, "extension {extension}");
        assert_eq!(
            count,
            expected,
            "an allowed request checked in the store (extension {extension}, metrics feature \
             {}, no recorder) allocated {count} times",
            cfg!(feature = "metrics")
        );
    }
}

#[test]
fn a_counted_create_allocates_once() {
    let (store, john) = john_on_free(1000);
    let layer = PlanLimitLayer::builder(store.clone())
        .base("/api")
        .allowed_extension(false)
        .count_usage(store.clone())
        .build()
        .unwrap();
    let mut service = layer.layer(service_fn(|_: Request<()>| {
        ready(Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())))
    }));

    // Warm: the first request loads the catalog, and the first counted one makes the user's
    // counter.
    for _ in 0..2 {
        let response = at_once(service.call(create(&john))).unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    // Once: the box the reservation travels in. The store answers at once, so the request is
    // not boxed to wait for it, and its reserve and commit allocate nothing (the counter is
    // kept beside the record, and the commit raises the record's count in place). The metrics
    // (with the `metrics` feature and no recorder: the decision, the store calls, the
    // reservation's outcome) allocate nothing either.
    let request = create(&john);
    let (response, count) = allocations(|| at_once(service.call(request)).unwrap());
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        count,
        1,
        "a counted create (metrics feature {}, no recorder) allocated {count} times",
        cfg!(feature = "metrics")
    );
    let john = store.subscriber("john").unwrap();
    assert_eq!(john.usage.count("clients"), Some(4));
}

#[test]
fn names_longer_than_the_inline_ones_allocate_nothing_more() {
    // Past `Name::INLINE` bytes, the decision's names and the counter's resource share the
    // catalog's text instead of copying it: the same single allocations as with short names.
    const PLAN: &str = "an-enterprise-plan-for-the-whole-year";
    const RESOURCE: &str = "client-organisations-and-their-teams";
    assert!(PLAN.len() > tower_plans::decision::Name::INLINE);
    assert!(RESOURCE.len() > tower_plans::decision::Name::INLINE);
    let catalog = Catalog::from_json(&format!(
        r#"{{"plans": [{{"name": "{PLAN}", "limits": {{"{RESOURCE}": 1000}}}}]}}"#
    ))
    .unwrap();
    let store = MemoryStore::new(catalog);
    store.insert_user(
        "john",
        Subscriber::new()
            .with_plan(Assignment::new(PLAN))
            .with_usage(RESOURCE, 1),
    );
    let john = UserId::new("john");
    let create_long = || {
        let mut request = create(&john);
        *request.uri_mut() = format!("/api/{RESOURCE}").parse().unwrap();
        request
    };

    for counted in [false, true] {
        let builder = PlanLimitLayer::builder(store.clone()).base("/api");
        let builder = if counted {
            builder.count_usage(store.clone())
        } else {
            builder
        };
        let layer = builder.build().unwrap();
        // The inner service answers `200` when the decision names the long plan and resource.
        let mut service = layer.layer(service_fn(|request: Request<()>| {
            let mut response = Response::new(Empty::<Bytes>::new());
            let named = request
                .extensions()
                .get::<Allowed>()
                .is_some_and(|allowed| allowed.plan == PLAN && allowed.resource == RESOURCE);
            if !named {
                *response.status_mut() = StatusCode::IM_A_TEAPOT;
            }
            ready(Ok::<_, Infallible>(response))
        }));
        for _ in 0..2 {
            let response = at_once(service.call(create_long())).unwrap();
            assert_eq!(response.status(), StatusCode::OK, "counted {counted}");
        }

        // The `Allowed` extension; counted, also the box of the reservation.
        let request = create_long();
        let (response, count) = allocations(|| at_once(service.call(request)).unwrap());
        assert_eq!(response.status(), StatusCode::OK, "counted {counted}");
        let expected = if counted { 2 } else { 1 };
        assert_eq!(
            count, expected,
            "an allowed request with long names (counted {counted}) allocated {count} times"
        );
    }
    let john = store.subscriber("john").unwrap();
    assert_eq!(john.usage.count(RESOURCE), Some(4));
}

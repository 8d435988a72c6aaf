//! The route table alone: from a method and a path to a governed resource and action.
//!
//! Three cases: a clean path (matched as it is, without allocating), a spelling that needs
//! normalising (percent-encoding, repeated and trailing slashes, upper case, a query), and a
//! path the table does not govern.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;
use tower_plans::{
    routes::{RouteConfig, RouteTable},
    Action,
};

fn table() -> RouteTable {
    let config = RouteConfig::new()
        .base("/api")
        .path("projects", "/api/users/:uid/projects")
        .route(
            Method::POST,
            "reports/{id}/export",
            "reports",
            Action::custom("export"),
        );
    let resources: Vec<Arc<str>> = ["clients", "groups", "tasks", "projects", "reports"]
        .into_iter()
        .map(Arc::from)
        .collect();
    RouteTable::new(&config, &resources).expect("the bench table compiles")
}

fn bench_resolve(c: &mut Criterion) {
    let table = table();
    let cases = [
        ("clean", Method::GET, "/api/clients/42"),
        ("normalised", Method::GET, "//API/Cl%69ents//42/?page=2"),
        ("ungoverned", Method::GET, "/api/health"),
    ];
    // Each case resolves as its name says, outside the measurement.
    for (name, method, path) in &cases {
        let found = table.resolve(method, path);
        match *name {
            "ungoverned" => assert!(found.is_none(), "{path}"),
            _ => {
                let found = found.unwrap_or_else(|| panic!("{path} is governed"));
                assert_eq!(&**found.resource, "clients");
                assert_eq!(*found.action, Action::Show);
            }
        }
    }

    let mut group = c.benchmark_group("route_resolve");
    for (name, method, path) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| {
                table
                    .resolve(black_box(method), black_box(path))
                    .map(|found| Arc::as_ptr(found.resource))
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_resolve
}
criterion_main!(benches);

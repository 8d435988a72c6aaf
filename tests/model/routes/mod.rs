//! The route table seen from outside: the README configurations, the spellings that must stay
//! governed, custom routes, configuration errors and property tests.

mod custom;
mod errors;
mod matching;
mod properties;
mod rest;

use std::sync::Arc;

use http::Method;
use tower_plans::{
    routes::{RouteConfig, RouteTable},
    Action, Catalog,
};

/// The resources the README's plan `{name: "bronze", clients: 10, groups: 20}` governs.
fn bronze() -> Vec<Arc<str>> {
    let catalog = Catalog::from_json(r#"[{"name": "bronze", "clients": 10, "groups": 20}]"#)
        .expect("the README plan parses");
    catalog.resources().to_vec()
}

fn table(config: &RouteConfig, resources: &[&str]) -> RouteTable {
    let resources: Vec<Arc<str>> = resources.iter().map(|&name| Arc::from(name)).collect();
    RouteTable::new(config, &resources).expect("the table compiles")
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("a valid method")
}

/// `(resource, action)` of a request, or `None` when not governed.
fn resolve(table: &RouteTable, method: &Method, path: &str) -> Option<(String, Action)> {
    table
        .resolve(method, path)
        .map(|found| (found.resource.to_string(), found.action.clone()))
}

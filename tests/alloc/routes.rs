//! Matching an already clean path allocates nothing; any other spelling allocates one string.

use std::sync::Arc;

use http::Method;
use tower_plans::{
    routes::{RouteConfig, RouteTable},
    Action,
};

use crate::counting::allocations;

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
        let (found, n) = allocations(|| table.resolve(method, path).map(|m| m.action));
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
        let (found, n) = allocations(|| table.resolve(&Method::GET, path).map(|m| m.action));
        assert_eq!(found, Some(&Action::Show), "{path}");
        assert_eq!(n, 1, "{path}");
    }
}

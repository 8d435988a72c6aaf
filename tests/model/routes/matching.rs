//! Matching that cannot be bypassed: every spelling of a governed path (case, percent-encoding,
//! dot segments, doubled slashes, queries) stays governed, look-alikes do not, and the literal
//! reading of dot segments wins as it does in axum's router.

use http::Method;
use tower_plans::{
    routes::{RouteConfig, RouteTable},
    Action,
};

use super::{method, resolve, table};

/// The configuration for the spelling tests: `/api/clients` and `/groups`.
fn spelling_table() -> RouteTable {
    let config = RouteConfig::new().base("/api").path("groups", "/groups");
    table(&config, &["clients", "groups"])
}

#[test]
fn spellings_of_governed_paths_stay_governed() {
    use Action::*;
    let table = spelling_table();
    let cases: &[(&str, &str, &str, Action)] = &[
        ("GET", "/api/clients", "clients", Index),
        ("GET", "/api/clients?", "clients", Index),
        ("GET", "/api/clients?page=2", "clients", Index),
        ("GET", "/api/clients?/../../elsewhere", "clients", Index),
        ("GET", "/api/clients#top", "clients", Index),
        ("GET", "/api/clients/", "clients", Index),
        ("GET", "/api/clients///", "clients", Index),
        ("GET", "//api//clients", "clients", Index),
        ("GET", "api/clients", "clients", Index),
        ("GET", "/API/Clients", "clients", Index),
        ("GET", "/api/CLIENTS/?x", "clients", Index),
        ("GET", "/api/cl%69ents", "clients", Index),
        ("GET", "/api/%63%6C%69%65%6E%74%73", "clients", Index),
        ("GET", "/api/CL%49ENTS", "clients", Index),
        ("GET", "/%61pi/clients", "clients", Index),
        ("GET", "/api/./clients", "clients", Index),
        ("GET", "/api/%2e/clients", "clients", Index),
        ("GET", "/api/x/../clients", "clients", Index),
        ("GET", "/api/x/%2E%2e/clients", "clients", Index),
        ("GET", "/api/clients/5/..", "clients", Index),
        ("GET", "/api/clients/5/%2e%2e/", "clients", Index),
        ("GET", "/../api/clients", "clients", Index),
        ("GET", "/api/../../api/clients", "clients", Index),
        ("GET", "/api%2Fclients", "clients", Index),
        ("GET", "/api%2fclients/", "clients", Index),
        ("HEAD", "/api/clients", "clients", Index),
        ("HEAD", "/Api/Clients/", "clients", Index),
        ("GET", "/api/clients/7", "clients", Show),
        ("HEAD", "/api/clients/7", "clients", Show),
        ("GET", "/api/clients/7?next=/a/b", "clients", Show),
        ("GET", "/api/clients/7/", "clients", Show),
        ("GET", "/api/clients//7", "clients", Show),
        ("GET", "/api/Clients/ABC", "clients", Show),
        ("GET", "/api/clients/%37", "clients", Show),
        ("GET", "/api/clients/a%2Fb", "clients", Show),
        ("GET", "/api/clients%2F7", "clients", Show),
        ("GET", "/api/clients/..", "clients", Show),
        ("GET", "/api/clients/%2e%2e", "clients", Show),
        ("GET", "/api/clients/.", "clients", Show),
        ("GET", "/api/clients/7/.", "clients", Show),
        ("GET", "/api/clients/%FF", "clients", Show),
        ("GET", "/api/clients/%C3%A9t%C3%A9", "clients", Show),
        ("GET", "/api/clients/été", "clients", Show),
        ("GET", "/api/clients/7%3Fx", "clients", Show),
        ("GET", "/api/clients/%", "clients", Show),
        ("POST", "/api/clients/", "clients", Create),
        ("POST", "/API/CLIENTS?redirect=/x", "clients", Create),
        ("POST", "/api//clients//", "clients", Create),
        ("POST", "/api/clients/new/..", "clients", Create),
        ("PUT", "/api/clients/7/", "clients", Update),
        ("PUT", "/api/clients/x/../7", "clients", Update),
        ("PATCH", "/api/clients/7", "clients", Patch),
        ("PATCH", "/Api/Clients/7?x", "clients", Patch),
        ("DELETE", "/api/clients/7/./", "clients", Delete),
        ("DELETE", "/api/clients/7%2F", "clients", Delete),
        ("GET", "/groups", "groups", Index),
        ("GET", "/GROUPS/1", "groups", Show),
        ("DELETE", "/gr%4Fups/1", "groups", Delete),
        ("POST", "/api/../groups", "groups", Create),
    ];
    assert!(cases.len() >= 40);
    for (verb, path, resource, action) in cases {
        assert_eq!(
            resolve(&table, &method(verb), path),
            Some((resource.to_string(), action.clone())),
            "{verb} {path}"
        );
    }
}

#[test]
fn look_alikes_are_not_governed() {
    let table = spelling_table();
    let cases: &[(&str, &str)] = &[
        ("GET", "/api/clients5"),
        ("GET", "/api/clientsx/1"),
        ("GET", "/api/clients/1/extra"),
        ("GET", "/api/clients/1/2"),
        ("GET", "/api2/clients"),
        ("GET", "/apiclients"),
        ("GET", "/api/client"),
        ("GET", "/api/clients.json"),
        ("GET", "/api/clients%20"),
        ("GET", "/api/clients%2F1%2Fextra"),
        ("GET", "/clients"),
        ("GET", "/api"),
        ("GET", "/"),
        ("GET", ""),
        ("GET", "?/api/clients"),
        ("GET", "/api/clients/../.."),
        ("GET", "/api/%2e%2e/clients"),
        ("GET", "/groups2"),
        ("GET", "/api/groups"),
        ("POST", "/api/clients/1"),
        ("PUT", "/api/clients"),
        ("PATCH", "/api/clients"),
        ("DELETE", "/api/clients"),
        ("OPTIONS", "/api/clients"),
        ("OPTIONS", "/api/clients/1"),
    ];
    for (verb, path) in cases {
        assert_eq!(resolve(&table, &method(verb), path), None, "{verb} {path}");
    }
}

/// Projects nested below users: `/users/{uid}/projects` and `/users/{id}`.
fn nested_table() -> RouteTable {
    let config = RouteConfig::new().path("projects", "/users/{uid}/projects");
    table(&config, &["users", "projects"])
}

/// A method, a path and the expected `(resource, action)`, `None` when not governed.
type Expectation<'a> = (&'a str, &'a str, Option<(&'a str, Action)>);

#[test]
fn the_literal_reading_wins_over_resolved_dots() {
    use Action::*;
    let table = nested_table();
    let cases: &[Expectation<'_>] = &[
        ("DELETE", "/users/5/projects/7", Some(("projects", Delete))),
        // The router hands these to the project item handler with the id `..` or `.`.
        ("DELETE", "/users/5/projects/..", Some(("projects", Delete))),
        (
            "DELETE",
            "/users/5/projects/%2e%2E",
            Some(("projects", Delete)),
        ),
        (
            "DELETE",
            "/users/5/projects/%2E%2e/",
            Some(("projects", Delete)),
        ),
        (
            "DELETE",
            "//Users/5/PROJECTS/..?x=1",
            Some(("projects", Delete)),
        ),
        ("PUT", "/users/5/projects/.", Some(("projects", Update))),
        ("PATCH", "/users/5/projects/%2e", Some(("projects", Patch))),
        ("GET", "/users/5/projects/..", Some(("projects", Show))),
        ("HEAD", "/users/5/projects/..", Some(("projects", Show))),
        // `%2F` as a separator comes before resolving dots in that reading.
        (
            "DELETE",
            "/users/5%2Fprojects/..",
            Some(("projects", Delete)),
        ),
        (
            "DELETE",
            "/users/5/projects%2F..",
            Some(("projects", Delete)),
        ),
        // When the literal reading is not governed, the resolved one may still be.
        ("DELETE", "/users/5/x/..", Some(("users", Delete))),
        ("GET", "/users/5/projects/7/..", Some(("projects", Index))),
        ("DELETE", "/users/5", Some(("users", Delete))),
        ("DELETE", "/users/5/projects/7/..", None),
        ("DELETE", "/users/5/..", None),
    ];
    for (verb, path, expected) in cases {
        let expected = expected
            .as_ref()
            .map(|(resource, action)| (resource.to_string(), action.clone()));
        assert_eq!(
            resolve(&table, &method(verb), path),
            expected,
            "{verb} {path}"
        );
    }
}

/// axum's router does not resolve dot segments: the table names the resource of the handler
/// that axum calls.
#[tokio::test]
async fn dot_segments_resolve_to_the_handler_axum_calls() {
    use axum::routing::delete;
    use tower::ServiceExt;

    let app = axum::Router::new()
        .route(
            "/users/{uid}/projects/{id}",
            delete(|| async { "projects" }),
        )
        .route("/users/{uid}", delete(|| async { "users" }));
    let table = nested_table();
    for path in [
        "/users/5/projects/7",
        "/users/5/projects/..",
        "/users/5/projects/%2e%2E",
        "/users/5/projects/.",
        "/users/5",
    ] {
        let request = http::Request::delete(path)
            .body(axum::body::Body::empty())
            .expect("a valid request");
        let response = app.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), http::StatusCode::OK, "{path}");
        let body = axum::body::to_bytes(response.into_body(), 64)
            .await
            .expect("a short body");
        let handler = std::str::from_utf8(&body).expect("UTF-8").to_owned();
        assert_eq!(
            resolve(&table, &Method::DELETE, path),
            Some((handler, Action::Delete)),
            "{path}"
        );
    }
}

#[test]
fn case_sensitive_matching() {
    let config = RouteConfig::new()
        .path("Clients", "/My/Clients")
        .case_sensitive(true);
    let table = table(&config, &["Clients"]);
    assert!(table.is_case_sensitive());
    assert_eq!(
        resolve(&table, &Method::GET, "/My/Clients/Ab"),
        Some(("Clients".into(), Action::Show))
    );
    assert_eq!(
        resolve(&table, &Method::GET, "//My/Cl%69ents/"),
        Some(("Clients".into(), Action::Index))
    );
    assert_eq!(resolve(&table, &Method::GET, "/my/clients"), None);
    assert_eq!(resolve(&table, &Method::GET, "/MY/CLIENTS"), None);

    let insensitive = RouteConfig::new().path("Clients", "/My/Clients");
    let table = self::table(&insensitive, &["Clients"]);
    assert!(!table.is_case_sensitive());
    assert_eq!(
        resolve(&table, &Method::GET, "/my/clients"),
        Some(("Clients".into(), Action::Index))
    );
    // The listing keeps the template as configured.
    assert_eq!(table.routes().next().unwrap().template, "/My/Clients");
    // Non-ASCII letters fold too.
    let table = self::table(&RouteConfig::new(), &["équipes"]);
    assert_eq!(
        resolve(&table, &Method::GET, "/ÉQUIPES/1"),
        Some(("équipes".into(), Action::Show))
    );
    assert_eq!(
        resolve(&table, &Method::GET, "/%C3%89quipes"),
        Some(("équipes".into(), Action::Index))
    );
}

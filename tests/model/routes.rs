//! The route table seen from outside: the README configurations, the spellings that must stay
//! governed, custom routes, configuration errors and property tests.

use std::sync::Arc;

use http::{Method, Uri};
use proptest::prelude::*;
use tower_plans::{
    routes::{RouteConfig, RouteTable},
    Action, Catalog, ConfigError,
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

/// The action the README implies for a method on a collection or an item.
fn rest_action(method: &Method, item: bool) -> Action {
    match (method.as_str(), item) {
        ("GET", false) => Action::Index,
        ("POST", false) => Action::Create,
        ("GET", true) => Action::Show,
        ("PUT", true) => Action::Update,
        ("PATCH", true) => Action::Patch,
        ("DELETE", true) => Action::Delete,
        other => panic!("the README lists no {other:?}"),
    }
}

/// Checks a README path list (`GET /clients/:client`, ...) against the table: the listing holds
/// exactly these routes, and each resolves (also as `HEAD` for `GET`) to its resource and action.
fn check_readme(table: &RouteTable, readme: &str) {
    let mut expected: Vec<(String, String, String, Action)> = Vec::new();
    for line in readme
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
    {
        let (verb, path) = line.split_once(' ').expect("METHOD PATH");
        let verb = method(verb);
        let segments: Vec<&str> = path.split('/').collect();
        let last = *segments.last().expect("a segment");
        let item = last.starts_with(':');
        let resource = if item {
            segments[segments.len() - 2]
        } else {
            last
        };
        let template = if item {
            format!("{}/{{id}}", segments[..segments.len() - 1].join("/"))
        } else {
            path.to_owned()
        };
        let action = rest_action(&verb, item);

        let concrete = if item {
            format!("{}/42", segments[..segments.len() - 1].join("/"))
        } else {
            path.to_owned()
        };
        assert_eq!(
            resolve(table, &verb, &concrete),
            Some((resource.to_owned(), action.clone())),
            "{verb} {concrete}"
        );
        if verb == Method::GET {
            assert_eq!(
                resolve(table, &Method::HEAD, &concrete),
                Some((resource.to_owned(), action.clone())),
                "HEAD {concrete}"
            );
        }
        expected.push((verb.to_string(), template, resource.to_owned(), action));
    }
    let mut listed: Vec<(String, String, String, Action)> = table
        .routes()
        .map(|route| {
            assert!(!route.custom);
            (
                route.method.to_string(),
                route.template.to_owned(),
                route.resource.to_string(),
                route.action.clone(),
            )
        })
        .collect();
    expected.sort();
    listed.sort();
    assert_eq!(listed, expected);
    assert_eq!(table.len(), 12);
}

/// Requests a README configuration must not govern, on top of the common ones.
fn check_ungoverned(table: &RouteTable, collection: &str, extra: &[(&str, &str)]) {
    let item = format!("{collection}/42");
    let common: Vec<(&str, String)> = vec![
        ("POST", item.clone()),
        ("PUT", collection.to_owned()),
        ("PATCH", collection.to_owned()),
        ("DELETE", collection.to_owned()),
        ("OPTIONS", collection.to_owned()),
        ("OPTIONS", item.clone()),
        ("TRACE", item.clone()),
        ("CONNECT", item.clone()),
        ("PROPFIND", item.clone()),
        ("GET", format!("{item}/extra")),
        ("GET", format!("{collection}5")),
        ("GET", "/".to_owned()),
    ];
    for (verb, path) in common
        .iter()
        .map(|(verb, path)| (*verb, path.as_str()))
        .chain(extra.iter().copied())
    {
        assert_eq!(resolve(table, &method(verb), path), None, "{verb} {path}");
    }
}

#[test]
fn readme_nothing() {
    let table = RouteTable::new(&RouteConfig::new(), &bronze()).unwrap();
    check_readme(
        &table,
        "GET /clients
         GET /clients/:client
         PUT /clients/:client
         POST /clients
         PATCH /clients/:client
         DELETE /clients/:client
         GET /groups
         GET /groups/:group
         PUT /groups/:group
         POST /groups
         PATCH /groups/:group
         DELETE /groups/:group",
    );
    check_ungoverned(
        &table,
        "/clients",
        &[
            ("GET", "/api/clients"),
            ("GET", "/client"),
            ("GET", "/users"),
        ],
    );
    check_ungoverned(&table, "/groups", &[]);
}

#[test]
fn readme_base() {
    for base in ["/api", "/api/", "api", "//api//"] {
        let table = RouteTable::new(&RouteConfig::new().base(base), &bronze()).unwrap();
        check_readme(
            &table,
            "GET /api/clients
             GET /api/clients/:client
             PUT /api/clients/:client
             POST /api/clients
             PATCH /api/clients/:client
             DELETE /api/clients/:client
             GET /api/groups
             GET /api/groups/:group
             PUT /api/groups/:group
             POST /api/groups
             PATCH /api/groups/:group
             DELETE /api/groups/:group",
        );
        check_ungoverned(
            &table,
            "/api/clients",
            &[
                ("GET", "/clients"),
                ("GET", "/clients/42"),
                ("POST", "/groups"),
                ("GET", "/api"),
                ("GET", "/api2/clients"),
            ],
        );
        check_ungoverned(&table, "/api/groups", &[]);
    }
}

#[test]
fn readme_paths() {
    let config = RouteConfig::new().path("clients", "/foo/path/to/clients");
    config.validate().unwrap();
    let table = RouteTable::new(&config, &bronze()).unwrap();
    check_readme(
        &table,
        "GET /foo/path/to/clients
         GET /foo/path/to/clients/:client
         PUT /foo/path/to/clients/:client
         POST /foo/path/to/clients
         PATCH /foo/path/to/clients/:client
         DELETE /foo/path/to/clients/:client
         GET /groups
         GET /groups/:group
         PUT /groups/:group
         POST /groups
         PATCH /groups/:group
         DELETE /groups/:group",
    );
    check_ungoverned(
        &table,
        "/foo/path/to/clients",
        &[
            ("GET", "/clients"),
            ("POST", "/clients"),
            ("GET", "/foo/path/to"),
            ("GET", "/foo/path/clients"),
        ],
    );
}

#[test]
fn readme_base_and_paths() {
    let config = RouteConfig::new()
        .base("/api")
        .path("clients", "/my/clients")
        .path("groups", "some/groups");
    config.validate().unwrap();
    let table = RouteTable::new(&config, &bronze()).unwrap();
    check_readme(
        &table,
        "GET /my/clients
         GET /my/clients/:client
         PUT /my/clients/:client
         POST /my/clients
         PATCH /my/clients/:client
         DELETE /my/clients/:client
         GET /api/some/groups
         GET /api/some/groups/:group
         PUT /api/some/groups/:group
         POST /api/some/groups
         PATCH /api/some/groups/:group
         DELETE /api/some/groups/:group",
    );
    check_ungoverned(
        &table,
        "/my/clients",
        &[
            ("GET", "/api/clients"),
            ("GET", "/api/my/clients"),
            ("GET", "/clients"),
            ("GET", "/some/groups"),
            ("POST", "/api/groups"),
        ],
    );
    check_ungoverned(&table, "/api/some/groups", &[]);
}

#[test]
fn listing_is_sorted_by_template_then_method() {
    let table = RouteTable::new(&RouteConfig::new(), &bronze()).unwrap();
    let listed: Vec<String> = table
        .routes()
        .map(|route| format!("{} {}", route.method, route.template))
        .collect();
    assert_eq!(
        listed,
        [
            "GET /clients",
            "POST /clients",
            "GET /clients/{id}",
            "PUT /clients/{id}",
            "PATCH /clients/{id}",
            "DELETE /clients/{id}",
            "GET /groups",
            "POST /groups",
            "GET /groups/{id}",
            "PUT /groups/{id}",
            "PATCH /groups/{id}",
            "DELETE /groups/{id}",
        ]
    );
}

#[test]
fn only_catalog_resources_are_governed() {
    let config = RouteConfig::new().path("tasks", "/my/tasks");
    let table = RouteTable::new(&config, &bronze()).unwrap();
    assert_eq!(resolve(&table, &Method::GET, "/my/tasks"), None);
    assert_eq!(resolve(&table, &Method::GET, "/tasks"), None);
    let resources: Vec<Arc<str>> = vec!["clients".into(), "clients".into()];
    let table = RouteTable::new(&RouteConfig::new(), &resources).unwrap();
    assert_eq!(table.len(), 6);
    let table = RouteTable::new(&RouteConfig::new(), &Vec::<Arc<str>>::new()).unwrap();
    assert!(table.is_empty());
    assert_eq!(resolve(&table, &Method::GET, "/clients"), None);
}

#[test]
fn parameters_in_paths() {
    let config = RouteConfig::new()
        .base("/tenants/{tenant}")
        .path("projects", "/users/:uid/projects")
        .path("tasks", "projects/{id}/tasks");
    let table = table(&config, &["projects", "tasks"]);
    assert_eq!(
        resolve(&table, &Method::GET, "/users/7/projects"),
        Some(("projects".into(), Action::Index))
    );
    assert_eq!(
        resolve(&table, &Method::DELETE, "/users/7/projects/9"),
        Some(("projects".into(), Action::Delete))
    );
    assert_eq!(
        resolve(&table, &Method::POST, "/tenants/acme/projects/3/tasks"),
        Some(("tasks".into(), Action::Create))
    );
    assert_eq!(
        resolve(&table, &Method::PUT, "/tenants/acme/projects/3/tasks/4"),
        Some(("tasks".into(), Action::Update))
    );
    let templates: Vec<&str> = table.routes().map(|route| route.template).collect();
    assert!(templates.contains(&"/users/{uid}/projects/{id}"));
    // The item parameter gets a name the template does not use yet.
    assert!(templates.contains(&"/tenants/{tenant}/projects/{id}/tasks/{id2}"));
}

#[test]
fn resolve_uri_uses_the_path_only() {
    let table = RouteTable::new(&RouteConfig::new(), &bronze()).unwrap();
    let uri: Uri = "https://example.com/Clients/5/?next=/groups"
        .parse()
        .unwrap();
    let found = table.resolve_uri(&Method::PATCH, &uri).unwrap();
    assert_eq!(&**found.resource, "clients");
    assert_eq!(*found.action, Action::Patch);
    let uri: Uri = "/groups?x=1".parse().unwrap();
    assert_eq!(
        table
            .resolve_uri(&Method::POST, &uri)
            .map(|m| m.action.clone()),
        Some(Action::Create)
    );
    let uri: Uri = "*".parse().unwrap();
    assert!(table.resolve_uri(&Method::OPTIONS, &uri).is_none());
}

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

#[test]
fn custom_routes_take_precedence() {
    let config = RouteConfig::new()
        .route(
            Method::POST,
            "/clients",
            "imports",
            Action::custom("import"),
        )
        .route(
            Method::GET,
            "/clients/{id}",
            "clients",
            Action::custom("peek"),
        );
    config.validate().unwrap();
    let table = table(&config, &["clients", "imports"]);
    assert_eq!(
        resolve(&table, &Method::POST, "/Clients/"),
        Some(("imports".into(), Action::Custom("import".into())))
    );
    assert_eq!(
        resolve(&table, &Method::GET, "/clients"),
        Some(("clients".into(), Action::Index))
    );
    assert_eq!(
        resolve(&table, &Method::GET, "/clients/3"),
        Some(("clients".into(), Action::Custom("peek".into())))
    );
    assert_eq!(
        resolve(&table, &Method::HEAD, "/clients/3"),
        Some(("clients".into(), Action::Custom("peek".into())))
    );
    let listed: Vec<String> = table
        .routes()
        .filter(|route| {
            route.template.starts_with("/clients")
                && (route.template == "/clients" || route.method == Method::GET)
        })
        .map(|route| {
            format!(
                "{} {} {} {} {}",
                route.method, route.template, route.resource, route.action, route.custom
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            "GET /clients clients index false",
            "POST /clients imports import true",
            "GET /clients/{id} clients peek true",
        ]
    );
}

#[test]
fn custom_routes_with_named_actions_and_colon_parameters() {
    let config = RouteConfig::new()
        .base("/api")
        .path("clients", "/clients")
        .route(
            Method::POST,
            "/reports/{id}/export",
            "exports",
            Action::custom("export"),
        )
        .route(
            Method::POST,
            "reports/:rid/archive",
            "reports",
            Action::custom("archive"),
        )
        .route(Method::POST, "/clients/export", "exports", Action::Create)
        .route(
            method("REPORT"),
            "/clients/:cid",
            "reports",
            Action::custom("report"),
        );
    let table = table(&config, &["clients", "exports", "reports"]);
    assert_eq!(
        resolve(&table, &Method::POST, "/reports/9/export"),
        Some(("exports".into(), Action::Custom("export".into())))
    );
    assert_eq!(
        resolve(&table, &Method::POST, "/api/reports/9/archive"),
        Some(("reports".into(), Action::Custom("archive".into())))
    );
    assert_eq!(resolve(&table, &Method::POST, "/reports/9/archive"), None);
    assert_eq!(resolve(&table, &Method::GET, "/reports/9/export"), None);
    assert_eq!(
        resolve(&table, &Method::POST, "/clients/export"),
        Some(("exports".into(), Action::Create))
    );
    // Routes are kept per method: another method still reaches the generated item route.
    assert_eq!(
        resolve(&table, &Method::GET, "/clients/export"),
        Some(("clients".into(), Action::Show))
    );
    assert_eq!(
        resolve(&table, &Method::DELETE, "/clients/EXPORT"),
        Some(("clients".into(), Action::Delete))
    );
    assert_eq!(
        resolve(&table, &method("REPORT"), "/clients/4"),
        Some(("reports".into(), Action::Custom("report".into())))
    );
    assert_eq!(resolve(&table, &method("REPORT"), "/clients"), None);
}

#[test]
fn custom_head_route_wins_over_get_for_head() {
    let config = RouteConfig::new().route(
        Method::HEAD,
        "/clients/:id",
        "clients",
        Action::custom("probe"),
    );
    let table = table(&config, &["clients"]);
    assert_eq!(
        resolve(&table, &Method::HEAD, "/clients/1"),
        Some(("clients".into(), Action::Custom("probe".into())))
    );
    assert_eq!(
        resolve(&table, &Method::GET, "/clients/1"),
        Some(("clients".into(), Action::Show))
    );
    assert_eq!(
        resolve(&table, &Method::HEAD, "/clients"),
        Some(("clients".into(), Action::Index))
    );
}

#[test]
fn custom_route_of_an_ungoverned_resource() {
    let config = RouteConfig::new()
        .route(Method::POST, "/clients", "imports", Action::Create)
        .route(Method::POST, "/imports/run", "imports", Action::Create);
    let table = table(&config, &["clients"]);
    // No plan limits `imports`: its routes are not governed, and the custom route still replaces
    // the generated `POST /clients`.
    assert_eq!(resolve(&table, &Method::POST, "/clients"), None);
    assert_eq!(resolve(&table, &Method::POST, "/imports/run"), None);
    assert_eq!(
        resolve(&table, &Method::GET, "/clients"),
        Some(("clients".into(), Action::Index))
    );
    assert_eq!(table.len(), 5);
    assert!(table.routes().all(|route| &**route.resource == "clients"));
}

fn error_of(config: &RouteConfig, resources: &[&str]) -> ConfigError {
    let resources: Vec<Arc<str>> = resources.iter().map(|&name| Arc::from(name)).collect();
    RouteTable::new(config, &resources).expect_err("a configuration error")
}

#[test]
fn empty_resource_names() {
    assert_eq!(
        RouteConfig::new().path("", "/x").validate(),
        Err(ConfigError::EmptyResource)
    );
    assert_eq!(
        RouteConfig::new()
            .route(Method::GET, "/x", "", Action::Index)
            .validate(),
        Err(ConfigError::EmptyResource)
    );
    assert_eq!(
        error_of(&RouteConfig::new(), &["clients", ""]),
        ConfigError::EmptyResource
    );
}

#[test]
fn invalid_templates() {
    let cases: &[(RouteConfig, &str, &str)] = &[
        (
            RouteConfig::new().path("files", "/files/{*rest}"),
            "/files/{*rest}",
            "catch-all",
        ),
        (
            RouteConfig::new().path("files", "/files/{id"),
            "/files/{id",
            "whole segment",
        ),
        (
            RouteConfig::new().path("files", "/files/id}/x"),
            "/files/id}/x",
            "whole segment",
        ),
        (
            RouteConfig::new().path("files", "/files/:/x"),
            "/files/:/x",
            "needs a name",
        ),
        (
            RouteConfig::new().path("files", "/files/{}"),
            "/files/{}",
            "needs a name",
        ),
        (
            RouteConfig::new().path("files", "/files?x=1"),
            "/files?x=1",
            "`?`",
        ),
        (
            RouteConfig::new().path("files", "/a/../files"),
            "/a/../files",
            "dot segments",
        ),
        (
            RouteConfig::new().path("files", "/a%2Ffiles"),
            "/a%2Ffiles",
            "encoded slash",
        ),
        (
            RouteConfig::new().base("/api/{v"),
            "/api/{v",
            "whole segment",
        ),
        (
            RouteConfig::new().route(Method::GET, "/r/{*all}", "r", Action::Index),
            "/r/{*all}",
            "catch-all",
        ),
    ];
    for (config, template, reason) in cases {
        match config.validate() {
            Err(ConfigError::InvalidTemplate {
                template: got,
                reason: why,
            }) => {
                assert_eq!(&got, template);
                assert!(why.contains(reason), "{why} should mention {reason}");
            }
            other => panic!("{template}: {other:?}"),
        }
    }
    // A resource name is literal text, but it cannot be a dot segment.
    assert!(matches!(
        error_of(&RouteConfig::new(), &[".."]),
        ConfigError::InvalidTemplate { .. }
    ));
}

#[test]
fn duplicate_parameters() {
    assert_eq!(
        RouteConfig::new().path("tasks", "/p/:x/t/{x}").validate(),
        Err(ConfigError::DuplicateParameter {
            template: "/p/:x/t/{x}".into(),
            name: "x".into(),
        })
    );
    assert_eq!(
        RouteConfig::new()
            .base("/t/:tenant")
            .path("tasks", "u/{tenant}/tasks")
            .validate(),
        Err(ConfigError::DuplicateParameter {
            template: "/t/{tenant}/u/{tenant}/tasks".into(),
            name: "tenant".into(),
        })
    );
    assert_eq!(
        RouteConfig::new()
            .route(Method::GET, "/a/{b}/{b}", "a", Action::Index)
            .validate(),
        Err(ConfigError::DuplicateParameter {
            template: "/a/{b}/{b}".into(),
            name: "b".into(),
        })
    );
}

#[test]
fn conflicts() {
    // Two resources at the same path.
    assert_eq!(
        RouteConfig::new()
            .path("clients", "/x")
            .path("groups", "/x/")
            .validate(),
        Err(ConfigError::Conflict {
            template: "GET /x -> groups index".into(),
            existing: "GET /x -> clients index".into(),
        })
    );
    // Parameter names do not tell templates apart.
    assert_eq!(
        RouteConfig::new()
            .path("projects", "/users/:uid/projects")
            .path("tasks", "/users/{user}/projects")
            .validate(),
        Err(ConfigError::Conflict {
            template: "GET /users/{user}/projects -> tasks index".into(),
            existing: "GET /users/{uid}/projects -> projects index".into(),
        })
    );
    // A collection on another resource's items.
    assert_eq!(
        RouteConfig::new()
            .path("clients", "/a")
            .path("notes", "/a/:note")
            .validate(),
        Err(ConfigError::Conflict {
            template: "GET /a/{note} -> notes index".into(),
            existing: "GET /a/{id} -> clients show".into(),
        })
    );
    // Case-insensitive matching makes these the same path.
    assert_eq!(
        RouteConfig::new()
            .path("clients", "/Clients")
            .path("groups", "/clients")
            .validate(),
        Err(ConfigError::Conflict {
            template: "GET /clients -> groups index".into(),
            existing: "GET /Clients -> clients index".into(),
        })
    );
    assert!(RouteConfig::new()
        .path("clients", "/Clients")
        .path("groups", "/clients")
        .case_sensitive(true)
        .validate()
        .is_ok());
    // Two custom routes on the same method and path.
    assert_eq!(
        RouteConfig::new()
            .route(Method::POST, "/r/:id", "a", Action::Create)
            .route(Method::POST, "/r/{x}/", "b", Action::custom("run"))
            .validate(),
        Err(ConfigError::Conflict {
            template: "POST /r/{x} -> b run".into(),
            existing: "POST /r/{id} -> a create".into(),
        })
    );
    // A default path meets a configured one: found once the catalog is known.
    let config = RouteConfig::new().path("groups", "/clients");
    assert!(config.validate().is_ok());
    assert_eq!(
        error_of(&config, &["clients", "groups"]),
        ConfigError::Conflict {
            template: "GET /clients -> groups index".into(),
            existing: "GET /clients -> clients index".into(),
        }
    );
}

#[test]
fn validate_accepts_good_configurations() {
    RouteConfig::new().validate().unwrap();
    RouteConfig::default().validate().unwrap();
    RouteConfig::new()
        .base("api")
        .path("clients", "/my/clients")
        .path("clients", "/our/clients")
        .path("groups", "some/groups")
        .route(Method::POST, "/my/clients", "clients", Action::Create)
        .validate()
        .unwrap();
    // The last path given for a resource counts.
    let config = RouteConfig::new()
        .path("clients", "/my/clients")
        .path("clients", "/our/clients");
    let table = table(&config, &["clients"]);
    assert_eq!(resolve(&table, &Method::GET, "/my/clients"), None);
    assert_eq!(
        resolve(&table, &Method::GET, "/our/clients"),
        Some(("clients".into(), Action::Index))
    );
}

// ---- property tests ----

/// The configuration of the property tests: every kind of route, no parameter at the root.
fn property_table(case_sensitive: bool) -> RouteTable {
    let config = RouteConfig::new()
        .base("/api")
        .path("clients", "/my/clients")
        .path("groups", "some/groups")
        .route(
            Method::POST,
            "reports/:id/export",
            "reports",
            Action::custom("export"),
        )
        .case_sensitive(case_sensitive);
    table(&config, &["clients", "groups", "reports", "tasks"])
}

/// Clean governed requests: method, path with `{id}` to fill in, resource, action.
const GOVERNED: &[(&str, &str, &str, &str)] = &[
    ("GET", "/my/clients", "clients", "index"),
    ("POST", "/my/clients", "clients", "create"),
    ("GET", "/my/clients/{id}", "clients", "show"),
    ("HEAD", "/my/clients/{id}", "clients", "show"),
    ("PUT", "/my/clients/{id}", "clients", "update"),
    ("PATCH", "/my/clients/{id}", "clients", "patch"),
    ("DELETE", "/my/clients/{id}", "clients", "delete"),
    ("GET", "/api/some/groups", "groups", "index"),
    ("DELETE", "/api/some/groups/{id}", "groups", "delete"),
    ("POST", "/api/tasks", "tasks", "create"),
    ("PATCH", "/api/tasks/{id}", "tasks", "patch"),
    ("POST", "/api/reports/{id}/export", "reports", "export"),
];

/// Reads random choices from a byte list; zero once it runs out.
struct Dice<'a>(std::slice::Iter<'a, u8>);

impl Dice<'_> {
    fn roll(&mut self, sides: u8) -> u8 {
        self.0.next().copied().unwrap_or(0) % sides
    }
}

/// Which dot segments [`respell`] may add.
#[derive(Clone, Copy)]
struct Dots {
    /// `./`, `x/../` and `./zz/./../` before segments.
    insertions: bool,
    /// A trailing `/.`. Read literally, it makes a collection path an item (`/clients/.` is the
    /// item `.`, as the application's router sees it), so it only suits item paths.
    suffix: bool,
}

/// Re-spells a clean path: doubled slashes, dot segments (as `dots` allows), trailing slashes,
/// random case, random percent-encoding and a query suffix.
///
/// A slash is only percent-encoded where it is the single separator between two segments: an
/// encoded slash elsewhere (`/clients/%2F`, `/a%2Fx/../b`) has a second, equally valid reading
/// in which it is part of a segment, and the table then governs the request either way.
fn respell(path: &str, dots: Dots, dice: &mut Dice<'_>) -> String {
    // Each character, with whether it may be percent-encoded.
    let mut spelled: Vec<(char, bool)> = Vec::new();
    let push = |text: &str, encodable: bool, spelled: &mut Vec<(char, bool)>| {
        spelled.extend(text.chars().map(|c| (c, encodable)));
    };
    for (i, segment) in path.split('/').skip(1).enumerate() {
        let doubled = dice.roll(4) == 0;
        let insertion = if dots.insertions {
            ["./", "x/../", "./zz/./../", "", "", ""][usize::from(dice.roll(6))]
        } else {
            ""
        };
        let separator_encodable = i > 0 && !doubled && insertion.is_empty();
        push(
            if doubled { "//" } else { "/" },
            separator_encodable,
            &mut spelled,
        );
        for c in insertion.chars() {
            spelled.push((c, c != '/'));
        }
        push(segment, true, &mut spelled);
    }
    let suffixes: &[&str] = if dots.suffix {
        &["", "/", "//", "/."]
    } else {
        &["", "/", "//"]
    };
    let suffix = suffixes[usize::from(dice.roll(4)) % suffixes.len()];
    push(suffix, false, &mut spelled);

    let mut out = String::new();
    for (c, encodable) in spelled {
        let c = if dice.roll(2) == 0 {
            c
        } else {
            c.to_ascii_uppercase()
        };
        if encodable && dice.roll(4) == 0 {
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                if dice.roll(2) == 0 {
                    out.push_str(&format!("%{byte:02X}"));
                } else {
                    out.push_str(&format!("%{byte:02x}"));
                }
            }
        } else {
            out.push(c);
        }
    }
    out.push_str(["", "?", "?a=1", "?next=/../x//y", "#frag", "?%2F/"][usize::from(dice.roll(6))]);
    out
}

/// Arbitrary bytes written as a path: printable ASCII as it is, everything else percent-encoded.
fn escaped(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &byte in bytes {
        if byte.is_ascii_graphic() && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn resolve_all(table: &RouteTable, path: &str) {
    for verb in [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "REPORT",
    ] {
        let _ = table.resolve(&method(verb), path);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn resolve_never_panics_on_strings(path in any::<String>()) {
        resolve_all(&property_table(false), &path);
        resolve_all(&property_table(true), &path);
    }

    #[test]
    fn resolve_never_panics_on_escaped_bytes(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        let path = escaped(&bytes);
        resolve_all(&property_table(false), &path);
        resolve_all(&property_table(true), &path);
    }

    #[test]
    fn resolve_never_panics_on_path_pieces(
        pieces in prop::collection::vec(
            prop::sample::select(vec![
                "/", "//", ".", "..", "%2e", "%2E%2e", "%2F", "%2f", "%", "%F", "%FF", "%C3",
                "%C3%A9", "é", "É", "ǅ", "İ", "K", "my", "clients", "CLIENTS", "api", "some",
                "groups", "reports", "export", "7", "?", "#", "{", "}", ":", "*", "\u{0}",
            ]),
            0..24,
        )
    ) {
        let path: String = pieces.concat();
        resolve_all(&property_table(false), &path);
        resolve_all(&property_table(true), &path);
    }

    #[test]
    fn respellings_resolve_like_the_clean_path(
        case in 0..GOVERNED.len(),
        id in "[a-z0-9]{1,8}",
        choices in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let table = property_table(false);
        let (verb, template, resource, action) = GOVERNED[case];
        let verb = method(verb);
        let clean = template.replace("{id}", &id);
        let expected = Some((resource.to_owned(), Action::custom(action)));
        prop_assert_eq!(resolve(&table, &verb, &clean), expected.clone());
        let dots = Dots {
            insertions: true,
            suffix: !matches!(action, "index" | "create"),
        };
        let spelled = respell(&clean, dots, &mut Dice(choices.iter()));
        prop_assert_eq!(resolve(&table, &verb, &spelled), expected, "{} {}", verb, spelled);
    }

    /// An id that is a dot segment (`.` or `..`, and percent-encoded by `respell`) is still the
    /// item the router hands it to: the literal reading wins over the resolved one whenever it
    /// is governed.
    #[test]
    fn dot_segment_ids_stay_items(
        case in 0..GOVERNED.len(),
        id in prop::sample::select(vec![".", ".."]),
        choices in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let table = property_table(false);
        let (verb, template, resource, action) = GOVERNED[case];
        prop_assume!(template.contains("{id}"));
        let verb = method(verb);
        let expected = Some((resource.to_owned(), Action::custom(action)));
        let literal = template.replace("{id}", id);
        prop_assert_eq!(resolve(&table, &verb, &literal), expected.clone(), "{} {}", verb, literal);
        let dots = Dots { insertions: false, suffix: false };
        let spelled = respell(&literal, dots, &mut Dice(choices.iter()));
        prop_assert_eq!(resolve(&table, &verb, &spelled), expected, "{} {}", verb, spelled);
    }
}

#[test]
fn tables_are_shareable_across_threads() {
    fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
    assert_shareable::<RouteTable>();
    assert_shareable::<RouteConfig>();
    let table = RouteTable::new(&RouteConfig::new(), &bronze()).unwrap();
    let debug = format!("{table:?}");
    assert!(
        debug.starts_with("RouteTable { routes: [RouteEntry { method: GET, template: \"/clients\"")
    );
}

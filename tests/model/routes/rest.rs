//! The table generated from the catalog: the README's configurations (the REST methods on each
//! resource's collection and items), the listing, parameters in paths, and resolving a URI.

use std::sync::Arc;

use http::{Method, Uri};
use tower_plans::{
    routes::{RouteConfig, RouteTable},
    Action,
};

use super::{bronze, method, resolve, table};

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

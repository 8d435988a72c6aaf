//! Custom routes: they take precedence over the generated ones, per method, with named actions,
//! and are not governed when no plan limits their resource.

use http::Method;
use tower_plans::{routes::RouteConfig, Action};

use super::{method, resolve, table};

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

//! Resource names used as paths: percent-decoded like the literal text of a template, so that a
//! name is governed wherever an application routing its raw spelling serves it; names that decode
//! to a slash or a dot segment are refused, and the error names the resource.

use std::sync::Arc;

use crate::support::*;
use http::{Method, StatusCode};
use tower_plans::{
    routes::{RouteConfig, RouteTable},
    Action, ConfigError,
};

fn table(config: &RouteConfig, resources: &[&str]) -> RouteTable {
    let resources: Vec<Arc<str>> = resources.iter().map(|&name| Arc::from(name)).collect();
    RouteTable::new(config, &resources).expect("the table compiles")
}

fn error_of(config: &RouteConfig, resources: &[&str]) -> ConfigError {
    let resources: Vec<Arc<str>> = resources.iter().map(|&name| Arc::from(name)).collect();
    RouteTable::new(config, &resources).expect_err("a configuration error")
}

/// `(resource, action)` of a request, or `None` when not governed.
fn resolve(table: &RouteTable, method: &Method, path: &str) -> Option<(String, Action)> {
    table
        .resolve(method, path)
        .map(|found| (found.resource.to_string(), found.action.clone()))
}

fn found(resource: &str, action: Action) -> Option<(String, Action)> {
    Some((resource.to_owned(), action))
}

#[test]
fn percent_encoded_names_match_like_template_literals() {
    let table = table(
        &RouteConfig::new().base("/api"),
        &["a%41", "b%20c", "100%", "clients"],
    );
    let cases = [
        (Method::GET, "/api/a%41", found("a%41", Action::Index)),
        (Method::GET, "/api/aA", found("a%41", Action::Index)),
        (Method::GET, "/api/AA", found("a%41", Action::Index)),
        (Method::POST, "/api/a%61", found("a%41", Action::Create)),
        (Method::DELETE, "/api/a%41/7", found("a%41", Action::Delete)),
        (Method::GET, "/api/b%20c", found("b%20c", Action::Index)),
        (Method::GET, "/api/100%", found("100%", Action::Index)),
        (Method::GET, "/api/100%25", found("100%", Action::Index)),
        (Method::GET, "/api/clients", found("clients", Action::Index)),
        // `%2541` decodes to the text `%41`: another name.
        (Method::GET, "/api/a%2541", None),
        (Method::GET, "/api/a", None),
        (Method::GET, "/api/b%20", None),
    ];
    for (method, path, expected) in cases {
        assert_eq!(resolve(&table, &method, path), expected, "{method} {path}");
    }
    let listed: Vec<String> = table
        .routes()
        .filter(|route| &**route.resource == "a%41")
        .map(|route| format!("{} {}", route.method, route.template))
        .collect();
    assert_eq!(
        listed,
        [
            "GET /api/aA",
            "POST /api/aA",
            "GET /api/aA/{id}",
            "PUT /api/aA/{id}",
            "PATCH /api/aA/{id}",
            "DELETE /api/aA/{id}",
        ]
    );
}

#[test]
fn percent_encoded_names_keep_their_case_when_matching_is_case_sensitive() {
    let table = table(
        &RouteConfig::new().base("/api").case_sensitive(true),
        &["a%41"],
    );
    assert_eq!(
        resolve(&table, &Method::GET, "/api/a%41"),
        found("a%41", Action::Index)
    );
    assert_eq!(
        resolve(&table, &Method::GET, "/api/aA"),
        found("a%41", Action::Index)
    );
    assert_eq!(resolve(&table, &Method::GET, "/api/aa"), None);
    assert_eq!(resolve(&table, &Method::GET, "/api/a%61"), None);
}

#[test]
fn a_name_and_its_decoded_spelling_conflict() {
    assert_eq!(
        error_of(&RouteConfig::new(), &["aA", "a%41"]),
        ConfigError::Conflict {
            template: "GET /aA -> a%41 index".to_owned(),
            existing: "GET /aA -> aA index".to_owned(),
        }
    );
}

#[test]
fn names_that_decode_to_a_slash_or_a_dot_segment_are_refused() {
    const SLASH: &str = "it holds an encoded slash (`%2F`)";
    const DOTS: &str = "it holds a dot segment (`.` or `..`, also percent-encoded)";
    const UTF8: &str = "it is not valid UTF-8 once percent-decoded";
    let cases = [
        ("/api", "x%2Fy", "/api/x%2Fy", SLASH),
        ("/api", "x%2fy", "/api/x%2fy", SLASH),
        ("/", "x%2Fy", "/x%2Fy", SLASH),
        ("/api", "%2e", "/api/%2e", DOTS),
        ("/api", "%2E%2e", "/api/%2E%2e", DOTS),
        ("/api", ".", "/api/.", DOTS),
        ("/api", "a/%2e%2e/b", "/api/a/%2e%2e/b", DOTS),
        ("/api", "%ff", "/api/%ff", UTF8),
    ];
    for (base, name, template, why) in cases {
        assert_eq!(
            error_of(&RouteConfig::new().base(base), &["clients", name]),
            ConfigError::InvalidTemplate {
                template: template.to_owned(),
                reason: format!("resource name `{name}` cannot be used as a path: {why}"),
            },
            "{name}"
        );
    }
    // With a configured path the name is not a path: it is accepted.
    let table = table(&RouteConfig::new().path("x%2Fy", "/xy"), &["x%2Fy"]);
    assert_eq!(
        resolve(&table, &Method::GET, "/xy"),
        found("x%2Fy", Action::Index)
    );
    // And the error displays the resource.
    let error = error_of(&RouteConfig::new().base("/api"), &["x%2Fy"]);
    assert_eq!(
        error.to_string(),
        "invalid path template `/api/x%2Fy`: resource name `x%2Fy` cannot be used as a path: \
         it holds an encoded slash (`%2F`)"
    );
}

/// axum matches the raw path: a route spelled `/api/a%41` serves the request `/api/a%41`, and
/// the table names its resource.
#[tokio::test]
async fn an_encoded_name_resolves_where_axum_routes_its_raw_spelling() {
    use axum::routing::get;
    use tower::ServiceExt;

    let app = axum::Router::new()
        .route("/api/a%41", get(|| async { "a%41" }))
        .route("/api/a%41/{id}", get(|| async { "a%41" }));
    let table = table(&RouteConfig::new().base("/api"), &["a%41"]);
    for (path, action) in [("/api/a%41", Action::Index), ("/api/a%41/7", Action::Show)] {
        let request = http::Request::get(path)
            .body(axum::body::Body::empty())
            .expect("a valid request");
        let response = app.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body = axum::body::to_bytes(response.into_body(), 64)
            .await
            .expect("a short body");
        let handler = std::str::from_utf8(&body).expect("UTF-8");
        assert_eq!(
            resolve(&table, &Method::GET, path),
            found(handler, action),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_layer_governs_an_encoded_name() {
    let store = CountingStore::new();
    store.set_catalog(r#"{"plans": [{"name": "free", "limits": {"a%41": 0}}]}"#);
    let layer = builder(&store).base("/api").build().unwrap();
    for path in ["/api/a%41", "/api/aA"] {
        let response = send(&layer, request(Method::POST, path, Some("ann"))).await;
        assert_eq!(
            text(response).await,
            r#"{"reason":"subscription","plan":"free","item":"a%41","action":"create","maximum":0,"usage":0}"#,
            "{path}"
        );
    }
}

/// Collects what the `tracing` events of the current thread print.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_catalog_with_a_refused_name_is_a_store_failure_naming_the_resource() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = CountingStore::new();
    store.set_catalog(r#"{"plans": [{"name": "free", "limits": {"x%2Fy": 1, "clients": 3}}]}"#);
    let layer = builder(&store).build().unwrap();
    let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(store.user_calls(), 0);

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("resource name `x%2Fy` cannot be used as a path"),
        "{logged}"
    );
}

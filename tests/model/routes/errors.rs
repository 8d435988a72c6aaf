//! Configuration errors: empty resource names, invalid templates, duplicate parameters and
//! conflicting routes, and the configurations that validate.

use std::sync::Arc;

use http::Method;
use tower_plans::{
    routes::{RouteConfig, RouteTable},
    Action, ConfigError,
};

use super::{resolve, table};

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

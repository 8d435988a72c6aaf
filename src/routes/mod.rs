//! The route table: from a request's method and path to a governed resource and action.
//!
//! A [`RouteConfig`] says where resources live; [`RouteTable::new`] compiles it, once per plan
//! catalog, for the resources the catalog governs; [`RouteTable::resolve`] then maps a request to
//! a [`RouteMatch`] (the resource and the [`Action`]) or to `None`, "not governed".
//!
//! # Paths
//!
//! - The `base` defaults to `/`. A leading slash is added, repeated slashes collapse and a
//!   trailing slash is dropped: `api`, `/api/` and `//api` all mean `/api`.
//! - A resource's collection path is `paths[resource]` when configured with
//!   [`RouteConfig::path`]: absolute when it starts with `/`, otherwise relative to the base.
//!   Without it, the path is the base followed by the resource name (taken as literal text).
//!   Configuring the same resource twice keeps the last path.
//! - Each resource has a collection path `P` and an item path `P/{id}`.
//! - Templates may name parameters as `:name` or `{name}`; either form is one whole segment.
//!   Catch-all parameters (`{*rest}`), braces inside a segment, `?`, `#`, an encoded slash and
//!   dot segments are [`ConfigError::InvalidTemplate`]. Literal text is percent-decoded.
//!
//! | method | collection `P` | item `P/{id}` |
//! |---|---|---|
//! | `GET`, `HEAD` | [`Action::Index`] | [`Action::Show`] |
//! | `POST` | [`Action::Create`] | not governed |
//! | `PUT` | not governed | [`Action::Update`] |
//! | `PATCH` | not governed | [`Action::Patch`] |
//! | `DELETE` | not governed | [`Action::Delete`] |
//! | any other | not governed | not governed |
//!
//! The table reports `PATCH` as [`Action::Patch`]; falling back to the `update` limit when a plan
//! sets no `patch` limit is the decision's job.
//!
//! # Custom routes
//!
//! [`RouteConfig::route`] maps a method and a template to a resource and any [`Action`],
//! including a named [`Action::Custom`] whose limits the catalog lists under that name. A custom
//! template is absolute when it starts with `/`, otherwise relative to the base. Custom routes
//! take precedence: a generated route with the same method and path is dropped. A custom route
//! whose resource the catalog does not govern is left out of the table (no plan limits that
//! resource, so it is unlimited), and it still shadows the generated route it replaces.
//!
//! # Matching cannot be bypassed
//!
//! The table guards limits, so any spelling of a path that an application could route to a
//! governed handler resolves as governed:
//!
//! - Only the path counts: everything from the first `?` (or `#`) on is ignored.
//! - The path is percent-decoded (`/cl%69ents` is `/clients`); repeated slashes collapse and
//!   trailing slashes are ignored (`//clients//5//` is `/clients/5`).
//! - Matching is case-insensitive unless [`RouteConfig::case_sensitive`] is set: templates and
//!   paths are both lowercased character by character (Unicode lowercase mapping).
//! - **Dot segments.** `.` and `..` (also spelled `%2e`, `%2E%2e`, ...) are resolved, `..` above
//!   the root staying at the root: `/clients/7/..` is the collection. Some routers do not resolve
//!   them and would hand `/clients/..` to the item handler with the id `..`; so when the resolved
//!   path is not governed, the path is also tried with its dot segments kept as ordinary segments.
//! - **Encoded slashes.** Whether `%2F` separates segments depends on the framework (axum keeps
//!   it inside the segment; others decode it first). The path is read both ways and is governed
//!   if either reading is; when both are, the reading that keeps `%2F` inside its segment wins.
//!   `/clients/a%2Fb` is the item `a/b`, and `/clients%2F5` is the item `5`.
//! - **Invalid UTF-8.** When the decoded bytes are not UTF-8, each invalid sequence becomes
//!   U+FFFD, so the segments stay where they were and `/clients/%FF` is still an item.
//! - `HEAD` resolves like `GET`, unless a custom route names `HEAD` itself.
//! - Routes are kept per method, so `GET /clients/export` is still the item `export` when a
//!   custom route claims only `POST /clients/export`.
//! - Nothing here panics, whatever the input.
//!
//! An already clean path (starting with `/`, no `%`, no empty segment or trailing slash, no dot
//! segment, no uppercase letter when matching is case-insensitive; a query is simply cut off) is
//! matched as it is, without allocating. Any other spelling is normalised into one `String`
//! (a second one only for the rare extra readings above, invalid UTF-8 or non-ASCII uppercase).
//! The router itself may allocate while backtracking between a literal segment and a parameter
//! at the same place, or for a template with more than three parameters.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use http::Method;
//! use tower_plans::{Action, RouteConfig, RouteTable};
//!
//! let config = RouteConfig::new()
//!     .base("/api")
//!     .path("clients", "/my/clients")
//!     .path("groups", "some/groups")
//!     .route(Method::POST, "reports/:id/export", "reports", Action::custom("export"));
//! config.validate()?;
//!
//! // The catalog governs these resources.
//! let resources: Vec<Arc<str>> = vec!["clients".into(), "groups".into(), "reports".into()];
//! let table = RouteTable::new(&config, &resources)?;
//!
//! let found = table.resolve(&Method::POST, "/my/clients").unwrap();
//! assert_eq!(&**found.resource, "clients");
//! assert_eq!(*found.action, Action::Create);
//!
//! // Any spelling of the same path resolves the same way.
//! let found = table.resolve(&Method::DELETE, "//API/some/%67roups/42/?force=1").unwrap();
//! assert_eq!(&**found.resource, "groups");
//! assert_eq!(*found.action, Action::Delete);
//!
//! let found = table.resolve(&Method::POST, "/api/reports/9/export").unwrap();
//! assert_eq!(&**found.resource, "reports");
//! assert_eq!(found.action.as_str(), "export");
//!
//! // Not governed: another path, or a method the table does not map.
//! assert!(table.resolve(&Method::GET, "/my/clients5").is_none());
//! assert!(table.resolve(&Method::POST, "/my/clients/1").is_none());
//!
//! // The table lists what it governs.
//! let listed: Vec<String> = table
//!     .routes()
//!     .filter(|route| &**route.resource == "groups")
//!     .map(|route| format!("{} {} {}", route.method, route.template, route.action))
//!     .collect();
//! assert_eq!(
//!     listed,
//!     [
//!         "GET /api/some/groups index",
//!         "POST /api/some/groups create",
//!         "GET /api/some/groups/{id} show",
//!         "PUT /api/some/groups/{id} update",
//!         "PATCH /api/some/groups/{id} patch",
//!         "DELETE /api/some/groups/{id} delete",
//!     ]
//! );
//! # Ok::<(), tower_plans::ConfigError>(())
//! ```

use std::sync::Arc;

use http::Method;

use crate::catalog::Action;
use crate::error::ConfigError;

mod normalize;
mod table;
mod template;

pub use table::{RouteEntry, RouteMatch, RouteTable};

/// How resources map to paths: the `base`, per-resource `paths`, custom routes and case
/// sensitivity. Validated by [`RouteConfig::validate`] and compiled per catalog into a
/// [`RouteTable`]. See the [module docs](self) for the rules.
#[derive(Clone, Debug, Default)]
pub struct RouteConfig {
    base: String,
    paths: Vec<(Arc<str>, String)>,
    custom: Vec<CustomRoute>,
    case_sensitive: bool,
}

/// An explicit route: a method and a path template mapped to a resource and an action.
///
/// Added with [`RouteConfig::route`]; see the [module docs](self#custom-routes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomRoute {
    /// The request method.
    pub method: Method,
    /// The path template (`/reports/{id}/export` or `/reports/:id/export`).
    pub template: String,
    /// The resource it touches.
    pub resource: Arc<str>,
    /// The action it performs.
    pub action: Action,
}

impl RouteConfig {
    /// The defaults: base `/`, no explicit paths, no custom routes, case-insensitive matching.
    pub fn new() -> Self {
        Self {
            base: "/".to_owned(),
            ..Self::default()
        }
    }

    /// The base path below which resources live.
    #[must_use]
    pub fn base(mut self, base: impl Into<String>) -> Self {
        self.base = base.into();
        self
    }

    /// An explicit collection path for `resource`: absolute if it starts with `/`, otherwise
    /// relative to the base. Given twice for the same resource, the last one counts.
    #[must_use]
    pub fn path(mut self, resource: impl Into<Arc<str>>, template: impl Into<String>) -> Self {
        self.paths.push((resource.into(), template.into()));
        self
    }

    /// A custom route; custom routes take precedence over generated ones.
    #[must_use]
    pub fn route(
        mut self,
        method: Method,
        template: impl Into<String>,
        resource: impl Into<Arc<str>>,
        action: Action,
    ) -> Self {
        self.custom.push(CustomRoute {
            method,
            template: template.into(),
            resource: resource.into(),
            action,
        });
        self
    }

    /// Whether matching is case-sensitive (default `false`).
    #[must_use]
    pub fn case_sensitive(mut self, yes: bool) -> Self {
        self.case_sensitive = yes;
        self
    }

    /// Checks the configuration on its own: every template compiles and no two routes conflict.
    ///
    /// It compiles the base, the paths configured with [`path`](Self::path) (as if the catalog
    /// governed exactly those resources) and every custom route. Resources that only get their
    /// default path are checked when the catalog is known, by [`RouteTable::new`].
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        table::compile(self, None).map(|_| ())
    }

    /// The custom routes, in the order they were added.
    pub fn custom_routes(&self) -> &[CustomRoute] {
        &self.custom
    }

    /// Whether matching is case-sensitive.
    pub fn is_case_sensitive(&self) -> bool {
        self.case_sensitive
    }

    /// The configured path of `resource`, if any (the last one given).
    fn path_of(&self, resource: &str) -> Option<&str> {
        self.paths
            .iter()
            .rev()
            .find(|(name, _)| &**name == resource)
            .map(|(_, template)| template.as_str())
    }
}

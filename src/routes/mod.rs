//! The route table: from a request's method and path to a governed resource and action.
//!
//! [`RouteConfig`] says where resources live, [`RouteTable`] is its compiled form for one plan
//! catalog. The rules (paths, methods, custom routes, how spellings are normalised) and an
//! example are in the docs of [`RouteTable`].

use std::sync::Arc;

use http::Method;

use crate::catalog::Action;
use crate::error::ConfigError;

mod exact;
mod normalize;
mod scope;
mod table;
mod template;

pub(crate) use scope::Scope;
pub(crate) use table::RouteIndex;
pub use table::{RouteEntry, RouteMatch, RouteTable};

/// How resources map to paths: the `base`, per-resource `paths`, custom routes and case
/// sensitivity. Validated by [`RouteConfig::validate`] and compiled per catalog into a
/// [`RouteTable`]. See [`RouteTable`] for the rules.
#[derive(Clone, Debug, Default)]
pub struct RouteConfig {
    base: String,
    paths: Vec<(Arc<str>, String)>,
    custom: Vec<CustomRoute>,
    case_sensitive: bool,
}

/// An explicit route: a method and a path template mapped to a resource and an action.
///
/// Added with [`RouteConfig::route`]; see [`RouteTable`](RouteTable#custom-routes).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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

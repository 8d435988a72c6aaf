//! The route table: from a request's method and path to a governed resource and action.

use std::sync::Arc;

use http::Method;

use crate::catalog::Action;
use crate::error::ConfigError;

/// How resources map to paths: the `base`, per-resource `paths`, custom routes and case
/// sensitivity. Validated by [`RouteConfig::validate`] and compiled per catalog into a
/// [`RouteTable`].
#[derive(Clone, Debug, Default)]
pub struct RouteConfig {
    base: String,
    paths: Vec<(Arc<str>, String)>,
    custom: Vec<CustomRoute>,
    case_sensitive: bool,
}

/// An explicit route: a method and a path template mapped to a resource and an action.
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
    /// relative to the base.
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
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        todo!("route config validation")
    }
}

/// A compiled route table for one set of governed resources.
#[derive(Clone, Debug)]
pub struct RouteTable {
    _private: (),
}

/// The resource and action a request touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// The governed resource.
    pub resource: &'a Arc<str>,
    /// The action.
    pub action: &'a Action,
}

impl RouteTable {
    /// Compiles the table for `resources` (the catalog's governed resources) under `config`.
    ///
    /// # Errors
    /// A [`ConfigError`] when a template is invalid or two routes conflict.
    pub fn new<'a, I>(config: &RouteConfig, resources: I) -> Result<RouteTable, ConfigError>
    where
        I: IntoIterator<Item = &'a Arc<str>>,
    {
        let _ = (config, resources.into_iter());
        todo!("route table")
    }

    /// The resource and action `method` on `path` (a URI path, without the query) touches, or
    /// `None` when the request is not governed.
    pub fn resolve(&self, method: &Method, path: &str) -> Option<RouteMatch<'_>> {
        let _ = (method, path);
        todo!("route matching")
    }
}

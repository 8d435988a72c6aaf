//! The governable scope: a cheap, catalog-free test of whether a request could be governed by
//! some catalog.
//!
//! A [`RouteTable`](super::RouteTable) needs the catalog's resources; before a catalog is loaded,
//! or while the loaded one may not be used, the layer still has to tell requests that can never
//! be governed (they pass without touching the store) from those that could be (they wait for
//! the catalog). [`Scope`] answers that from the [`RouteConfig`] alone. A request could be
//! governed when, under one of the readings the route table tries:
//!
//! - its method is one the generated routes use (`GET`, `HEAD`, `POST`, `PUT`, `PATCH`,
//!   `DELETE`) and its path is the base or below it, segment by segment (every resource without
//!   a configured path lives there), or is the collection or item path of a resource configured
//!   with [`RouteConfig::path`];
//! - or a custom route with its method (`GET` ones for `HEAD`) matches its path.
//!
//! Every route of every table compiled from the same configuration is inside the scope, whatever
//! the catalog. With the base `/`, every path is below the base: then every request with one of
//! those methods could be governed.

use http::Method;

use super::normalize;
use super::template::{self, Segment};
use super::RouteConfig;
use crate::error::ConfigError;

/// Where governed routes can be, compiled once from a [`RouteConfig`].
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    /// The base: it and everything below it.
    base: Vec<Part>,
    /// Collection and item paths of resources with a configured path.
    paths: Vec<Vec<Part>>,
    /// Custom routes: a method and a template.
    custom: Vec<(Method, Vec<Part>)>,
    case_sensitive: bool,
}

/// One segment of a compiled template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Matches this text only (folded when matching is case-insensitive).
    Literal(String),
    /// Matches any segment.
    Any,
}

/// The methods of the generated routes (`HEAD` resolves like `GET`).
fn is_rest(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

impl Scope {
    /// Compiles the scope of `config`.
    ///
    /// # Errors
    /// A [`ConfigError`] when a template does not parse (which
    /// [`RouteConfig::validate`] reports first).
    pub(crate) fn new(config: &RouteConfig) -> Result<Self, ConfigError> {
        let case_sensitive = config.case_sensitive;
        let base = template::parse(&config.base)?;
        let compile = |raw: &str| -> Result<Vec<Part>, ConfigError> {
            let own = template::parse(raw)?;
            let segments = if raw.starts_with('/') {
                own
            } else {
                base.iter().cloned().chain(own).collect()
            };
            Ok(parts(&segments, case_sensitive))
        };
        let mut paths = Vec::new();
        for (_, raw) in &config.paths {
            let collection = compile(raw)?;
            let mut item = collection.clone();
            item.push(Part::Any);
            paths.push(collection);
            paths.push(item);
        }
        let custom = config
            .custom
            .iter()
            .map(|route| Ok((route.method.clone(), compile(&route.template)?)))
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self {
            base: parts(&base, case_sensitive),
            paths,
            custom,
            case_sensitive,
        })
    }

    /// Whether `method` on `path` (a URI path; a query is ignored) could be governed by a route
    /// table compiled from this configuration, whatever the catalog.
    pub(crate) fn covers(&self, method: &Method, path: &str) -> bool {
        if !is_rest(method) && !self.custom.iter().any(|(m, _)| m == method) {
            return false;
        }
        let path = normalize::strip_query(path);
        if normalize::is_clean(path, self.case_sensitive) {
            return self.covers_normalized(method, path);
        }
        normalize::find_map_readings(path, !self.case_sensitive, |text| {
            self.covers_normalized(method, text).then_some(())
        })
        .is_some()
    }

    /// [`covers`](Self::covers) for a normalised path.
    fn covers_normalized(&self, method: &Method, path: &str) -> bool {
        let segments = || path.split('/').filter(|segment| !segment.is_empty());
        if is_rest(method)
            && (starts_with(segments(), &self.base)
                || self.paths.iter().any(|parts| matches(segments(), parts)))
        {
            return true;
        }
        self.custom.iter().any(|(m, parts)| {
            (m == method || (*method == Method::HEAD && *m == Method::GET))
                && matches(segments(), parts)
        })
    }
}

fn parts(segments: &[Segment], case_sensitive: bool) -> Vec<Part> {
    segments
        .iter()
        .map(|segment| match segment {
            Segment::Literal(text) if case_sensitive => Part::Literal(text.clone()),
            Segment::Literal(text) => Part::Literal(normalize::fold(text)),
            Segment::Param(_) => Part::Any,
        })
        .collect()
}

fn part_matches(part: &Part, segment: &str) -> bool {
    match part {
        Part::Literal(text) => text == segment,
        Part::Any => true,
    }
}

/// Whether the path's segments begin with `parts`.
fn starts_with<'a>(mut segments: impl Iterator<Item = &'a str>, parts: &[Part]) -> bool {
    parts.iter().all(|part| {
        segments
            .next()
            .is_some_and(|segment| part_matches(part, segment))
    })
}

/// Whether the path's segments are exactly `parts`.
fn matches<'a>(mut segments: impl Iterator<Item = &'a str>, parts: &[Part]) -> bool {
    starts_with(&mut segments, parts) && segments.next().is_none()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::catalog::Action;
    use crate::routes::RouteTable;

    fn config() -> RouteConfig {
        RouteConfig::new()
            .base("/api")
            .path("clients", "/my/clients")
            .path("groups", "some/groups")
            .path("projects", "/users/:uid/projects")
            .route(
                Method::POST,
                "/reports/{id}/export",
                "reports",
                Action::Create,
            )
            .route(Method::OPTIONS, "/probe", "probes", Action::custom("probe"))
            .route(Method::GET, "/status/{id}", "probes", Action::Show)
    }

    fn scope(config: &RouteConfig) -> Scope {
        Scope::new(config).unwrap()
    }

    #[test]
    fn the_base_and_everything_below_it() {
        let scope = scope(&config());
        for path in [
            "/api",
            "/api/",
            "/api/invoices",
            "/API//Invoices/7/lines/",
            "/api/a/b/c/d?x=1",
            "/x/../api/invoices",
        ] {
            assert!(scope.covers(&Method::GET, path), "{path}");
            assert!(scope.covers(&Method::DELETE, path), "{path}");
        }
        for path in ["/", "/health", "/apix", "/ap", "/my", "/v2/api"] {
            assert!(!scope.covers(&Method::GET, path), "{path}");
        }
        assert!(!scope.covers(&Method::OPTIONS, "/api/invoices"));
        assert!(!scope.covers(&Method::TRACE, "/api"));
        // Kept as an ordinary segment, `..` is below the base.
        assert!(scope.covers(&Method::GET, "/api/.."));
    }

    #[test]
    fn configured_paths_collection_and_item() {
        let scope = scope(&config());
        for path in [
            "/my/clients",
            "/my/clients/5",
            "/My/Clients/5/",
            "/users/9/projects",
            "/users/9/projects/2",
            "/api/some/groups/3",
        ] {
            assert!(scope.covers(&Method::POST, path), "{path}");
        }
        for path in [
            "/my",
            "/my/clients/5/notes",
            "/my/other",
            "/users/9",
            "/users/projects",
        ] {
            assert!(!scope.covers(&Method::POST, path), "{path}");
        }
    }

    #[test]
    fn custom_routes_with_their_method() {
        let scope = scope(&config());
        assert!(scope.covers(&Method::POST, "/reports/7/export"));
        assert!(scope.covers(&Method::POST, "/reports/7/export/"));
        assert!(!scope.covers(&Method::GET, "/reports/7/export"));
        assert!(!scope.covers(&Method::POST, "/reports/7"));
        assert!(scope.covers(&Method::OPTIONS, "/probe"));
        assert!(!scope.covers(&Method::OPTIONS, "/health"));
        let head = scope_of(RouteConfig::new().base("/api").route(
            Method::GET,
            "/status",
            "status",
            Action::Show,
        ));
        assert!(head.covers(&Method::HEAD, "/status"));
        assert!(!head.covers(&Method::HEAD, "/other"));
    }

    fn scope_of(config: RouteConfig) -> Scope {
        Scope::new(&config).unwrap()
    }

    #[test]
    fn every_reading_counts() {
        let scope = scope_of(RouteConfig::new().base("/api"));
        // Encoded slashes: one reading puts it below the base.
        assert!(scope.covers(&Method::GET, "/api%2Finvoices"));
        // Dot segments kept literally, the way some routers see them.
        assert!(scope.covers(&Method::GET, "/api/invoices/.."));
        assert!(scope.covers(&Method::GET, "/api/%2e%2e"));
        assert!(!scope.covers(&Method::GET, "/health%2Fapi"));
    }

    #[test]
    fn case_sensitive_scopes_keep_case() {
        let scope = scope_of(RouteConfig::new().base("/Api").case_sensitive(true));
        assert!(scope.covers(&Method::GET, "/Api/x"));
        assert!(!scope.covers(&Method::GET, "/api/x"));
        let folded = scope_of(RouteConfig::new().base("/Api"));
        assert!(folded.covers(&Method::GET, "/aPI/x"));
    }

    #[test]
    fn a_root_base_covers_every_rest_request() {
        let scope = scope_of(RouteConfig::new());
        for path in ["/", "/health", "/a/b/c", "", "//x//"] {
            assert!(scope.covers(&Method::GET, path), "{path}");
        }
        assert!(!scope.covers(&Method::OPTIONS, "/health"));
    }

    #[test]
    fn a_base_with_a_parameter() {
        let scope = scope_of(RouteConfig::new().base("/t/{tenant}/api"));
        assert!(scope.covers(&Method::GET, "/t/acme/api/clients"));
        assert!(!scope.covers(&Method::GET, "/t/acme"));
        assert!(!scope.covers(&Method::GET, "/t/acme/web/clients"));
    }

    /// Where governed paths begin under [`config`], in assorted spellings.
    const PREFIXES: &[&str] = &[
        "",
        "/api",
        "/API/",
        "/my/clients",
        "/my//Clients",
        "/users/7/projects",
        "/api/some/groups",
        "/reports/7/export",
        "/probe",
        "/status",
        "/my",
        "/x",
    ];
    const SEGMENTS: &[&str] = &[
        "api",
        "API",
        "my",
        "clients",
        "Clients",
        "users",
        "7",
        "projects",
        "reports",
        "export",
        "some",
        "groups",
        "invoices",
        "health",
        ".",
        "..",
        "%2e%2E",
        "%2F",
        "a%2Fb",
        "cl%69ents",
        "",
        "é",
        "É",
        "clients%2F..",
        "%2F%2E%2E",
        "a%41",
        "aA",
        "a%2541",
        "b%20c",
        "100%",
        "100%25",
    ];
    const METHODS: &[Method] = &[
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever the catalog, every request its table governs is in the scope.
        #[test]
        fn the_scope_covers_every_governed_request(
            prefix in proptest::sample::select(PREFIXES),
            segments in proptest::collection::vec(proptest::sample::select(SEGMENTS), 0..4),
            method in proptest::sample::select(METHODS),
            case_sensitive in any::<bool>(),
            trailing in any::<bool>(),
        ) {
            let config = config().case_sensitive(case_sensitive);
            let resources: Vec<Arc<str>> =
                [
                    "clients", "groups", "projects", "reports", "invoices", "probes", "api",
                    "a%41", "b%20c", "100%",
                ]
                    .into_iter()
                    .map(Arc::from)
                    .collect();
            let table = RouteTable::new(&config, &resources).unwrap();
            let scope = scope(&config);
            let mut path = prefix.to_owned();
            for segment in &segments {
                path.push('/');
                path.push_str(segment);
            }
            if path.is_empty() || trailing {
                path.push('/');
            }
            if table.resolve(&method, &path).is_some() {
                prop_assert!(scope.covers(&method, &path), "{} {}", method, path);
            }
        }
    }
}

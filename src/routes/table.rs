//! The compiled table and its matching.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use http::{Method, Uri};

use super::exact::{self, ExactMap};
use super::normalize;
use super::template::{self, Segment};
use super::RouteConfig;
use crate::catalog::Action;
use crate::error::ConfigError;

/// A compiled route table for one set of governed resources.
///
/// A [`RouteConfig`] says where resources live; [`RouteTable::new`] compiles it, once per plan
/// catalog, for the resources the catalog governs; [`RouteTable::resolve`] then maps a request to
/// a [`RouteMatch`] (the resource and the [`Action`]) or to `None`, "not governed".
///
/// # Paths
///
/// - The `base` defaults to `/`. A leading slash is added, repeated slashes collapse and a
///   trailing slash is dropped: `api`, `/api/` and `//api` all mean `/api`.
/// - A resource's collection path is `paths[resource]` when configured with
///   [`RouteConfig::path`]: absolute when it starts with `/`, otherwise relative to the base.
///   Without it, the path is the base followed by the resource name, taken as literal text:
///   split at `/` and percent-decoded like a template's literal text, so that the name `a%41`
///   governs `/a%41` (the path an application routing that spelling serves) and `/aA`. A name
///   that decodes to an encoded slash, a dot segment or invalid UTF-8 is
///   [`ConfigError::InvalidTemplate`], naming the resource.
///   Configuring the same resource twice keeps the last path.
/// - Each resource has a collection path `P` and an item path `P/{id}`.
/// - Templates may name parameters as `:name` or `{name}`; either form is one whole segment.
///   Catch-all parameters (`{*rest}`), braces inside a segment, `?`, `#`, an encoded slash and
///   dot segments are [`ConfigError::InvalidTemplate`]. Literal text is percent-decoded.
///
/// | method | collection `P` | item `P/{id}` |
/// |---|---|---|
/// | `GET`, `HEAD` | [`Action::Index`] | [`Action::Show`] |
/// | `POST` | [`Action::Create`] | not governed |
/// | `PUT` | not governed | [`Action::Update`] |
/// | `PATCH` | not governed | [`Action::Patch`] |
/// | `DELETE` | not governed | [`Action::Delete`] |
/// | any other | not governed | not governed |
///
/// The table reports `PATCH` as [`Action::Patch`]; falling back to the `update` limit when a plan
/// sets no `patch` limit is the decision's job.
///
/// # Custom routes
///
/// [`RouteConfig::route`] maps a method and a template to a resource and any [`Action`],
/// including a named [`Action::Custom`] whose limits the catalog lists under that name. A custom
/// template is absolute when it starts with `/`, otherwise relative to the base. Custom routes
/// take precedence: a generated route with the same method and path is dropped. A custom route
/// whose resource the catalog does not govern is left out of the table (no plan limits that
/// resource, so it is unlimited), and it still shadows the generated route it replaces.
///
/// # Matching cannot be bypassed
///
/// The table guards limits, so any spelling of a path that an application could route to a
/// governed handler resolves as governed:
///
/// - Only the path counts: everything from the first `?` (or `#`) on is ignored.
/// - The path is percent-decoded (`/cl%69ents` is `/clients`); repeated slashes collapse and
///   trailing slashes are ignored (`//clients//5//` is `/clients/5`).
/// - Matching is case-insensitive unless [`RouteConfig::case_sensitive`] is set: templates and
///   paths are both lowercased character by character (Unicode lowercase mapping).
/// - **Dot segments and encoded slashes: the router's reading first.** The routers of axum
///   (matchit) and hyper do not resolve `.` and `..`, and keep `%2F` inside its segment: they
///   hand `/clients/..` to the item handler with the id `..`. So the path is first read
///   *literally*: percent-decoded except for `%2F`, repeated slashes collapsed, trailing slashes
///   ignored, case folded unless matching is case-sensitive, and dot segments (also spelled
///   `%2e`, `%2E%2e`, ...) kept as ordinary segments. `/clients/..` is the item `..` and
///   `/clients/a%2Fb` the item `a/b`.
/// - **Other readings only add governance.** Only when the literal reading is not governed are
///   the other readings tried, in this order, the first governed one winning: dot segments
///   resolved (`..` above the root staying at the root: `/clients/7/..` is the collection),
///   then `%2F` as a separator (`/clients%2F5` is the item `5`), then both. They cover servers
///   and proxies that normalise the path before routing. Since they come after the literal
///   reading, they can govern a path it leaves ungoverned, but never move a request the router
///   sends to one governed handler over to another resource or action: with projects at
///   `/users/{uid}/projects`, `DELETE /users/5/projects/..` is the projects `delete` (the
///   router's reading), not the users `delete` that resolving the dots would give.
/// - **Invalid UTF-8.** When the decoded bytes are not UTF-8, each invalid sequence becomes
///   U+FFFD, so the segments stay where they were and `/clients/%FF` is still an item.
/// - `HEAD` resolves like `GET`, unless a custom route names `HEAD` itself.
/// - Routes are kept per method, so `GET /clients/export` is still the item `export` when a
///   custom route claims only `POST /clients/export`.
/// - Nothing here panics, whatever the input.
///
/// An already clean path (starting with `/`, no `%`, no empty segment or trailing slash, no dot
/// segment, no uppercase letter when matching is case-insensitive; a query is simply cut off) is
/// matched as it is, without allocating. Any other spelling is normalised into one buffer,
/// which the further readings reuse (a second allocation only for invalid UTF-8 or non-ASCII
/// uppercase).
/// The router itself may allocate while backtracking between a literal segment and a parameter
/// at the same place, or for a template with more than three parameters.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
///
/// use http::Method;
/// use tower_plans::{Action, routes::{RouteConfig, RouteTable}};
///
/// let config = RouteConfig::new()
///     .base("/api")
///     .path("clients", "/my/clients")
///     .path("groups", "some/groups")
///     .route(Method::POST, "reports/:id/export", "reports", Action::custom("export"));
/// config.validate()?;
///
/// // The catalog governs these resources.
/// let resources: Vec<Arc<str>> = vec!["clients".into(), "groups".into(), "reports".into()];
/// let table = RouteTable::new(&config, &resources)?;
///
/// let found = table.resolve(&Method::POST, "/my/clients").unwrap();
/// assert_eq!(&**found.resource, "clients");
/// assert_eq!(*found.action, Action::Create);
///
/// // Any spelling of the same path resolves the same way.
/// let found = table.resolve(&Method::DELETE, "//API/some/%67roups/42/?force=1").unwrap();
/// assert_eq!(&**found.resource, "groups");
/// assert_eq!(*found.action, Action::Delete);
///
/// let found = table.resolve(&Method::POST, "/api/reports/9/export").unwrap();
/// assert_eq!(&**found.resource, "reports");
/// assert_eq!(found.action.as_str(), "export");
///
/// // Not governed: another path, or a method the table does not map.
/// assert!(table.resolve(&Method::GET, "/my/clients5").is_none());
/// assert!(table.resolve(&Method::POST, "/my/clients/1").is_none());
///
/// // The table lists what it governs.
/// let listed: Vec<String> = table
///     .routes()
///     .filter(|route| &**route.resource == "groups")
///     .map(|route| format!("{} {} {}", route.method, route.template, route.action))
///     .collect();
/// assert_eq!(
///     listed,
///     [
///         "GET /api/some/groups index",
///         "POST /api/some/groups create",
///         "GET /api/some/groups/{id} show",
///         "PUT /api/some/groups/{id} update",
///         "PATCH /api/some/groups/{id} patch",
///         "DELETE /api/some/groups/{id} delete",
///     ]
/// );
/// # Ok::<(), tower_plans::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RouteTable {
    /// The governed routes, in listing order; routers store indices into it.
    entries: Vec<Entry>,
    /// One router per method that has routes.
    routers: Vec<(Method, matchit::Router<usize>)>,
    /// The routes without parameters of the standard methods, by their one path: only paths
    /// that are clean and that the method's router resolves to the same route, so that
    /// finding a path here is finding it clean and routing it.
    exact: ExactMap,
    /// The routes whose only parameter is the last segment, by the path before it (with its
    /// slash), for the methods whose routes without parameters are all in `exact`: a path
    /// that no route without parameters has, and whose part before its last (non-empty)
    /// segment is here, is routed to this route (any other route that matches has a parameter
    /// where this one has a literal segment, and the router prefers literal segments).
    parents: ExactMap,
    case_sensitive: bool,
}

/// The position of a route in its [`RouteTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RouteIndex(usize);

impl RouteIndex {
    /// The route's place among [`RouteTable::routes`].
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn position(self) -> usize {
        self.0
    }
}

/// The resource and action a request touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteMatch<'a> {
    /// The governed resource.
    pub resource: &'a Arc<str>,
    /// The action.
    pub action: &'a Action,
}

/// One route of a [`RouteTable`], as listed by [`RouteTable::routes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteEntry<'a> {
    /// The method (`HEAD` is not listed: it resolves like `GET` unless a custom route names it).
    pub method: &'a Method,
    /// The template with `{name}` parameters and normalised slashes, such as `/clients/{id}`.
    pub template: &'a str,
    /// The governed resource.
    pub resource: &'a Arc<str>,
    /// The action.
    pub action: &'a Action,
    /// Whether it is a custom route (rather than generated from a resource's path).
    pub custom: bool,
}

#[derive(Clone, Debug)]
struct Entry {
    method: Method,
    template: String,
    key: String,
    /// The one path the route matches, when its template has no parameter.
    exact: Option<String>,
    /// The path before the parameter, with its slash, when the last segment is the only
    /// parameter.
    parent: Option<String>,
    resource: Arc<str>,
    action: Action,
    custom: bool,
    governed: bool,
}

impl Entry {
    /// How a conflict names the route: `GET /clients/{id} -> clients show`.
    fn describe(&self) -> String {
        format!(
            "{} {} -> {} {}",
            self.method, self.template, self.resource, self.action
        )
    }
}

const COLLECTION: [(Method, Action); 2] =
    [(Method::GET, Action::Index), (Method::POST, Action::Create)];

const ITEM: [(Method, Action); 4] = [
    (Method::GET, Action::Show),
    (Method::PUT, Action::Update),
    (Method::PATCH, Action::Patch),
    (Method::DELETE, Action::Delete),
];

/// Collects routes and finds conflicts.
struct Compiler {
    case_sensitive: bool,
    base: Vec<Segment>,
    entries: Vec<Entry>,
    by_key: HashMap<(Method, String), usize>,
}

impl Compiler {
    /// The segments of `raw`: absolute when it starts with `/`, otherwise below the base.
    fn template(&self, raw: &str) -> Result<Vec<Segment>, ConfigError> {
        let own = template::parse(raw)?;
        if let Some(name) = template::duplicate_param(&own) {
            return Err(ConfigError::DuplicateParameter {
                template: raw.to_owned(),
                name: name.to_owned(),
            });
        }
        if raw.starts_with('/') {
            return Ok(own);
        }
        let mut segments = self.base.clone();
        segments.extend(own);
        if let Some(name) = template::duplicate_param(&segments) {
            return Err(ConfigError::DuplicateParameter {
                template: template::display(&segments),
                name: name.to_owned(),
            });
        }
        Ok(segments)
    }

    fn add(
        &mut self,
        method: Method,
        segments: &[Segment],
        resource: &Arc<str>,
        action: Action,
        custom: bool,
        governed: bool,
    ) -> Result<(), ConfigError> {
        let entry = Entry {
            method,
            template: template::display(segments),
            key: template::key(segments, self.case_sensitive),
            exact: template::exact_path(segments, self.case_sensitive),
            parent: template::item_parent(segments, self.case_sensitive),
            resource: Arc::clone(resource),
            action,
            custom,
            governed,
        };
        let slot = (entry.method.clone(), entry.key.clone());
        if let Some(existing) = self.by_key.get(&slot).and_then(|&i| self.entries.get(i)) {
            if existing.custom && !custom {
                // A custom route takes precedence over the generated one.
                return Ok(());
            }
            return Err(ConfigError::Conflict {
                template: entry.describe(),
                existing: existing.describe(),
            });
        }
        self.by_key.insert(slot, self.entries.len());
        self.entries.push(entry);
        Ok(())
    }

    fn resource(&mut self, config: &RouteConfig, resource: &Arc<str>) -> Result<(), ConfigError> {
        if resource.is_empty() {
            return Err(ConfigError::EmptyResource);
        }
        let collection = match config.path_of(resource) {
            Some(raw) => self.template(raw)?,
            None => {
                let mut segments = self.base.clone();
                let configured = match template::display(&self.base).as_str() {
                    "/" => format!("/{resource}"),
                    base => format!("{base}/{resource}"),
                };
                segments.extend(template::literal(resource, &configured)?);
                segments
            }
        };
        let mut item = collection.clone();
        item.push(Segment::Param(template::fresh_param(&collection)));
        for (method, action) in COLLECTION {
            self.add(method, &collection, resource, action, false, true)?;
        }
        for (method, action) in ITEM {
            self.add(method, &item, resource, action, false, true)?;
        }
        Ok(())
    }
}

/// Compiles `config` for `resources`, or, when `None`, for the resources it gives paths for.
pub(super) fn compile(
    config: &RouteConfig,
    resources: Option<Vec<Arc<str>>>,
) -> Result<RouteTable, ConfigError> {
    let base = template::parse(&config.base)?;
    if let Some(name) = template::duplicate_param(&base) {
        return Err(ConfigError::DuplicateParameter {
            template: config.base.clone(),
            name: name.to_owned(),
        });
    }
    let mut compiler = Compiler {
        case_sensitive: config.case_sensitive,
        base,
        entries: Vec::new(),
        by_key: HashMap::new(),
    };

    let resources = resources.unwrap_or_else(|| {
        let mut named: Vec<Arc<str>> = Vec::new();
        for (resource, _) in &config.paths {
            if !named.contains(resource) {
                named.push(Arc::clone(resource));
            }
        }
        named
    });
    let governed: HashSet<&str> = resources.iter().map(|resource| &**resource).collect();

    for route in &config.custom {
        if route.resource.is_empty() {
            return Err(ConfigError::EmptyResource);
        }
        let segments = compiler.template(&route.template)?;
        let is_governed = governed.contains(&*route.resource);
        compiler.add(
            route.method.clone(),
            &segments,
            &route.resource,
            route.action.clone(),
            true,
            is_governed,
        )?;
    }
    let mut done: HashSet<&str> = HashSet::new();
    for resource in &resources {
        if done.insert(&**resource) {
            compiler.resource(config, resource)?;
        }
    }

    let mut entries: Vec<Entry> = compiler
        .entries
        .into_iter()
        .filter(|entry| entry.governed)
        .collect();
    entries.sort_by(|a, b| {
        a.template
            .cmp(&b.template)
            .then_with(|| method_rank(&a.method).cmp(&method_rank(&b.method)))
            .then_with(|| a.method.as_str().cmp(b.method.as_str()))
    });

    let mut routers: Vec<(Method, matchit::Router<usize>)> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let position = match routers
            .iter()
            .position(|(method, _)| *method == entry.method)
        {
            Some(position) => position,
            None => {
                routers.push((entry.method.clone(), matchit::Router::new()));
                routers.len() - 1
            }
        };
        let Some((_, router)) = routers.get_mut(position) else {
            continue;
        };
        if let Err(error) = router.insert(entry.key.clone(), index) {
            return Err(insert_error(&entries, entry, error));
        }
    }

    let routed = |entry: &Entry, path: &str| {
        routers
            .iter()
            .find(|(method, _)| *method == entry.method)
            .and_then(|(_, router)| router.at(path).ok())
            .map(|found| *found.value)
    };
    let mut exact = Vec::new();
    // The method slots with a route without parameters that is not in `exact`.
    let mut incomplete = [false; exact::METHODS];
    for (index, entry) in entries.iter().enumerate() {
        let (Some(path), Some(slot)) = (&entry.exact, method_slot(&entry.method)) else {
            continue;
        };
        if normalize::is_clean(path, config.case_sensitive) && routed(entry, path) == Some(index) {
            exact.push((path.clone(), slot, index));
        } else if let Some(incomplete) = incomplete.get_mut(slot) {
            *incomplete = true;
        }
    }
    let mut parents = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let (Some(parent), Some(slot)) = (&entry.parent, method_slot(&entry.method)) else {
            continue;
        };
        // Checked with one segment; other segments are routed alike, unless a route without
        // parameters has the path, and those are looked up first.
        let sample = format!("{parent}\u{1}");
        if !incomplete.get(slot).copied().unwrap_or(true) && routed(entry, &sample) == Some(index) {
            parents.push((parent.clone(), slot, index));
        }
    }

    Ok(RouteTable {
        exact: ExactMap::new(&exact),
        parents: ExactMap::new(&parents),
        entries,
        routers,
        case_sensitive: config.case_sensitive,
    })
}

fn insert_error(entries: &[Entry], entry: &Entry, error: matchit::InsertError) -> ConfigError {
    match error {
        matchit::InsertError::Conflict { with } => {
            let existing = entries
                .iter()
                .find(|other| other.method == entry.method && other.key == with)
                .map_or_else(|| format!("{} {with}", entry.method), Entry::describe);
            ConfigError::Conflict {
                template: entry.describe(),
                existing,
            }
        }
        other => ConfigError::InvalidTemplate {
            template: entry.template.clone(),
            reason: other.to_string(),
        },
    }
}

/// The slot of a standard method in the [`ExactMap`] (below [`exact::METHODS`]; the map reads
/// its slots with bounds checks all the same).
#[inline]
fn method_slot(method: &Method) -> Option<usize> {
    Some(match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => return None,
    })
}

/// Listing order of methods: the REST ones first (in the order of their [`method_slot`]s),
/// then the others by name.
fn method_rank(method: &Method) -> usize {
    const OTHERS: usize = 6;
    method_slot(method).map_or(OTHERS, |slot| slot.min(OTHERS))
}

impl RouteTable {
    /// Compiles the table for `resources` (the catalog's governed resources) under `config`.
    ///
    /// Only these resources are in the table: a path configured for another resource is left
    /// out, and so is a custom route whose resource is not among them (it still takes
    /// precedence over the generated route it replaces, which is then not governed either).
    /// Repeated resources count once.
    ///
    /// # Errors
    /// A [`ConfigError`] when a template is invalid, a resource name is empty or two routes
    /// conflict.
    pub fn new<'a, I>(config: &RouteConfig, resources: I) -> Result<RouteTable, ConfigError>
    where
        I: IntoIterator<Item = &'a Arc<str>>,
    {
        compile(config, Some(resources.into_iter().cloned().collect()))
    }

    /// The resource and action `method` on `path` (a URI path, without the query) touches, or
    /// `None` when the request is not governed.
    ///
    /// A query (from `?` on) is ignored; every spelling of a governed path is governed, as the
    /// [type docs](RouteTable#matching-cannot-be-bypassed) describe. A clean path is matched
    /// without allocating.
    pub fn resolve(&self, method: &Method, path: &str) -> Option<RouteMatch<'_>> {
        self.resolve_index(method, path)
            .map(|index| self.route(index))
    }

    /// Like [`resolve`](Self::resolve), giving the index of the route, for [`route`](Self::route).
    #[inline]
    pub(crate) fn resolve_index(&self, method: &Method, path: &str) -> Option<RouteIndex> {
        // The exact paths are clean, and the router gives them their route: a path found there
        // is resolved without testing it or asking the router. (For `HEAD`, a `HEAD` route
        // comes before the `GET` ones, as in `lookup`.)
        let slot = method_slot(method);
        if let Some(slot) = slot {
            if let Some(index) = self.exact_index(path, slot) {
                debug_assert!(normalize::is_clean(path, self.case_sensitive));
                return Some(index);
            }
        }
        self.resolve_other(method, path, slot.is_some())
    }

    /// [`resolve_index`](Self::resolve_index) for a path that is not one of the exact paths
    /// of `method` (when `probed`, the exact paths were looked up).
    #[inline(never)]
    fn resolve_other(&self, method: &Method, path: &str, probed: bool) -> Option<RouteIndex> {
        // A clean path has no query to strip (`?` and `#` are not clean).
        if normalize::is_clean(path, self.case_sensitive) {
            return self.lookup_probed(method, path, probed);
        }
        // Without a query the path is the one just found not clean: test it again only when a
        // query was cut off.
        let stripped = normalize::strip_query(path);
        if stripped.len() < path.len() && normalize::is_clean(stripped, self.case_sensitive) {
            return self.lookup(method, stripped);
        }
        self.resolve_spelling(method, stripped)
    }

    /// The route at `index`, which [`resolve_index`](Self::resolve_index) of this table gave.
    pub(crate) fn route(&self, index: RouteIndex) -> RouteMatch<'_> {
        // In bounds: a `RouteIndex` is only made from a position in `entries`, which never
        // changes once the table is built.
        let entry = &self.entries[index.0];
        RouteMatch {
            resource: &entry.resource,
            action: &entry.action,
        }
    }

    /// Like [`resolve`](Self::resolve), for a full URI: only its path counts.
    pub fn resolve_uri(&self, method: &Method, uri: &Uri) -> Option<RouteMatch<'_>> {
        self.resolve(method, uri.path())
    }

    /// The governed routes, sorted by template and then by method (`GET`, `HEAD`, `POST`,
    /// `PUT`, `PATCH`, `DELETE`, then others by name).
    pub fn routes(&self) -> impl Iterator<Item = RouteEntry<'_>> + '_ {
        self.entries.iter().map(|entry| RouteEntry {
            method: &entry.method,
            template: &entry.template,
            resource: &entry.resource,
            action: &entry.action,
            custom: entry.custom,
        })
    }

    /// The number of governed routes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table governs nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether matching is case-sensitive.
    pub fn is_case_sensitive(&self) -> bool {
        self.case_sensitive
    }

    /// Normalises a path that is not clean, trying the readings in turn.
    ///
    /// The literal reading (dot segments kept, `%2F` inside its segment) comes first: it is the
    /// path the application's router sees. The other readings are tried only when it is not
    /// governed, so they can add governance but never replace the literal reading's.
    fn resolve_spelling(&self, method: &Method, path: &str) -> Option<RouteIndex> {
        normalize::find_map_readings(path, !self.case_sensitive, |text| self.lookup(method, text))
    }

    /// Matches a normalised path.
    fn lookup(&self, method: &Method, path: &str) -> Option<RouteIndex> {
        self.lookup_probed(method, path, false)
    }

    /// Like [`lookup`](Self::lookup), when `probed` tells whether the exact paths were already
    /// looked up for `method` and `path` (and did not have it).
    fn lookup_probed(&self, method: &Method, path: &str, probed: bool) -> Option<RouteIndex> {
        if *method == Method::HEAD {
            return self
                .lookup_exact(&Method::HEAD, path, probed)
                .or_else(|| self.lookup_exact(&Method::GET, path, false));
        }
        self.lookup_exact(method, path, probed)
    }

    /// The route of `method` for `path`: from the exact paths (unless `probed`), then from the
    /// item parents, then from the method's router.
    fn lookup_exact(&self, method: &Method, path: &str, probed: bool) -> Option<RouteIndex> {
        if !probed {
            if let Some(index) = method_slot(method).and_then(|slot| self.exact_index(path, slot)) {
                return Some(index);
            }
        }
        if let Some(index) = method_slot(method).and_then(|slot| self.parent_index(path, slot)) {
            return Some(index);
        }
        let (_, router) = self.routers.iter().find(|(m, _)| m == method)?;
        let index = *router.at(path).ok()?.value;
        // The routers hold positions in `entries`; checked once more all the same.
        (index < self.entries.len()).then_some(RouteIndex(index))
    }

    /// The route of the method `slot` whose path is exactly `path`.
    #[inline]
    fn exact_index(&self, path: &str, slot: usize) -> Option<RouteIndex> {
        let index = self.exact.get(path, slot)?;
        // The map holds positions in `entries`; checked once more all the same.
        (index < self.entries.len()).then_some(RouteIndex(index))
    }

    /// The route of the method `slot` whose only parameter, its last segment, takes the last
    /// segment of `path` (a clean or normalised path that no route without parameters has).
    fn parent_index(&self, path: &str, slot: usize) -> Option<RouteIndex> {
        let last = path.bytes().rposition(|byte| byte == b'/')?;
        if last + 1 == path.len() {
            return None;
        }
        let index = self.parents.get(&path[..=last], slot)?;
        (index < self.entries.len()).then_some(RouteIndex(index))
    }
}

impl fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteTable")
            .field("routes", &self.routes().collect::<Vec<_>>())
            .field("case_sensitive", &self.case_sensitive)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl RouteTable {
        /// [`resolve_index`](Self::resolve_index) with the routers alone, without the exact
        /// paths and the item parents.
        fn resolve_by_routers(&self, method: &Method, path: &str) -> Option<RouteIndex> {
            let routed = |method: &Method, path: &str| {
                let (_, router) = self.routers.iter().find(|(m, _)| m == method)?;
                Some(RouteIndex(*router.at(path).ok()?.value))
            };
            let lookup = |path: &str| {
                if *method == Method::HEAD {
                    routed(&Method::HEAD, path).or_else(|| routed(&Method::GET, path))
                } else {
                    routed(method, path)
                }
            };
            if normalize::is_clean(path, self.case_sensitive) {
                return lookup(path);
            }
            let stripped = normalize::strip_query(path);
            if normalize::is_clean(stripped, self.case_sensitive) {
                return lookup(stripped);
            }
            normalize::find_map_readings(stripped, !self.case_sensitive, lookup)
        }
    }

    /// Routes that meet in every way the fast paths must get right; with `percent`, a path
    /// without parameters that is not clean, so that the item parents of `GET` and `POST`
    /// cannot be used.
    fn config(case_sensitive: bool, percent: bool) -> RouteConfig {
        RouteConfig::new()
            .base("/api")
            .path("notes", if percent { "/api/100%25" } else { "/api/100" })
            .path("groups", "Groups")
            .path("users", "/{org}/users")
            .path("items", "/")
            .route(
                Method::GET,
                "clients/export",
                "clients",
                Action::Custom("export".into()),
            )
            .route(Method::POST, "/x/{a}/5", "clients", Action::Create)
            .route(Method::HEAD, "/api/Groups/{id}", "groups", Action::Show)
            .route(Method::GET, "/{a}/{b}", "tasks", Action::Index)
            .route(Method::GET, "/api/{id}", "tasks", Action::Show)
            .route(Method::POST, "/api/{id}", "tasks", Action::Create)
            .route(
                Method::DELETE,
                "/api/clients/{id}/x",
                "tasks",
                Action::Delete,
            )
            .route(
                Method::from_bytes(b"PURGE").unwrap(),
                "/api/clients/{id}",
                "clients",
                Action::Delete,
            )
            .case_sensitive(case_sensitive)
    }

    #[test]
    fn resolves_as_the_routers_do() {
        let resources: Vec<Arc<str>> = ["clients", "groups", "notes", "users", "items", "tasks"]
            .into_iter()
            .map(Arc::from)
            .collect();
        let pieces = [
            "api", "clients", "Groups", "groups", "export", "5", "x", "100%", "100%25", ".", "..",
            "%2F", "a%2Fb", "Clients", "", "users", "%41pi", "?q=1",
        ];
        let methods = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
            Method::from_bytes(b"PURGE").unwrap(),
        ];
        let mut paths = vec![String::new()];
        let mut all = vec!["/".to_owned(), String::new()];
        for _ in 0..3 {
            let mut longer = Vec::new();
            for path in &paths {
                for piece in pieces {
                    longer.push(format!("{path}/{piece}"));
                }
            }
            all.extend(longer.iter().cloned());
            paths = longer;
        }
        for (case_sensitive, percent) in [(false, false), (true, false), (false, true)] {
            let table = RouteTable::new(&config(case_sensitive, percent), &resources).unwrap();
            assert_eq!(table.parents.get("/api/clients/", 0).is_some(), !percent);
            assert!(table.parents.get("/api/clients/", 3).is_some());
            assert!(table.exact.get("/api/clients", 2).is_some());
            let mut governed = 0;
            for path in &all {
                for method in &methods {
                    let found = table.resolve_index(method, path);
                    assert_eq!(
                        found,
                        table.resolve_by_routers(method, path),
                        "{method} {path}, case-sensitive: {case_sensitive}"
                    );
                    governed += usize::from(found.is_some());
                }
            }
            assert!(governed > 1_000, "{governed}");
        }
    }
}

//! The compiled table and its matching.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use http::{Method, Uri};

use super::normalize::{self, Reading, Seen};
use super::template::{self, Segment};
use super::RouteConfig;
use crate::catalog::Action;
use crate::error::ConfigError;

/// A compiled route table for one set of governed resources.
///
/// Built by [`RouteTable::new`]; see the [module docs](super) for how paths and methods map to
/// resources and actions.
#[derive(Clone)]
pub struct RouteTable {
    /// The governed routes, in listing order; routers store indices into it.
    entries: Vec<Entry>,
    /// One router per method that has routes.
    routers: Vec<(Method, matchit::Router<usize>)>,
    case_sensitive: bool,
}

/// The resource and action a request touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
                let configured = format!("{}/{resource}", template::display(&self.base));
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

    Ok(RouteTable {
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

/// Listing order of methods: the REST ones first, then the others by name.
fn method_rank(method: &Method) -> u8 {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        _ => 6,
    }
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
    /// [module docs](super#matching-cannot-be-bypassed) describe. A clean path is matched
    /// without allocating.
    pub fn resolve(&self, method: &Method, path: &str) -> Option<RouteMatch<'_>> {
        let path = normalize::strip_query(path);
        if normalize::is_clean(path, self.case_sensitive) {
            return self.lookup(method, path);
        }
        self.resolve_spelling(method, path)
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
    fn resolve_spelling(&self, method: &Method, path: &str) -> Option<RouteMatch<'_>> {
        let mut buffer = Vec::with_capacity(path.len() + 1);
        let (found, seen) = self.read(method, path, Reading::KEEP_RESOLVE, &mut buffer);
        if found.is_some() {
            return found;
        }
        if seen.dots {
            let (found, _) = self.read(method, path, Reading::KEEP_LITERAL, &mut buffer);
            if found.is_some() {
                return found;
            }
        }
        if seen.encoded_slash {
            let (found, split) = self.read(method, path, Reading::SPLIT_RESOLVE, &mut buffer);
            if found.is_some() {
                return found;
            }
            if split.dots {
                let (found, _) = self.read(method, path, Reading::SPLIT_LITERAL, &mut buffer);
                return found;
            }
        }
        None
    }

    fn read(
        &self,
        method: &Method,
        path: &str,
        reading: Reading,
        buffer: &mut Vec<u8>,
    ) -> (Option<RouteMatch<'_>>, Seen) {
        let fold = !self.case_sensitive;
        let seen = normalize::normalize_into(path, reading, fold, buffer);
        let text = normalize::into_text(std::mem::take(buffer), fold);
        let found = self.lookup(method, &text);
        *buffer = text.into_bytes();
        (found, seen)
    }

    /// Matches a normalised path.
    fn lookup(&self, method: &Method, path: &str) -> Option<RouteMatch<'_>> {
        if *method == Method::HEAD {
            return self
                .lookup_exact(&Method::HEAD, path)
                .or_else(|| self.lookup_exact(&Method::GET, path));
        }
        self.lookup_exact(method, path)
    }

    fn lookup_exact(&self, method: &Method, path: &str) -> Option<RouteMatch<'_>> {
        let (_, router) = self.routers.iter().find(|(m, _)| m == method)?;
        let matched = router.at(path).ok()?;
        let entry = self.entries.get(*matched.value)?;
        Some(RouteMatch {
            resource: &entry.resource,
            action: &entry.action,
        })
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

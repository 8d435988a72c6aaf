//! The plan catalog: plans, their limits and the trial policy.
//!
//! See the [crate docs](crate) for the JSON forms a [`PlanStore`](crate::PlanStore) may return.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What a request does to a resource.
///
/// The six REST actions come from the method and the path (see [`RouteTable`](crate::RouteTable));
/// [`Action::Custom`] names an action of a custom route, whose limits the catalog lists under that
/// name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `GET`/`HEAD` on a collection.
    Index,
    /// `GET`/`HEAD` on an item.
    Show,
    /// `POST` on a collection.
    Create,
    /// `PUT` on an item.
    Update,
    /// `PATCH` on an item; limited by `update` when a plan sets no `patch` limit.
    Patch,
    /// `DELETE` on an item.
    Delete,
    /// A named action of a custom route.
    Custom(Arc<str>),
}

/// A limit on one action of one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// No limit (`null` or absent in JSON).
    Unlimited,
    /// At most this many; `Limited(0)` blocks the action.
    Limited(u64),
}

/// The limits of one plan on one resource, per action.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceLimits {
    /// Index by `Action` discriminant for the six REST actions; `None` = not set.
    standard: [Option<Limit>; 6],
    /// Custom actions, by name.
    custom: Vec<(Arc<str>, Limit)>,
}

/// One plan: a name and its limits per resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    name: Arc<str>,
    limits: HashMap<Arc<str>, ResourceLimits>,
}

/// The free-trial policy of a catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trial {
    duration: Duration,
    fallback: Option<Arc<str>>,
}

/// All plans plus the trial policy: what a [`PlanStore`](crate::PlanStore)'s `plans()` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    plans: HashMap<Arc<str>, Plan>,
    trial: Option<Trial>,
    /// Every resource some plan names, sorted and deduplicated.
    resources: Vec<Arc<str>>,
}

/// A malformed catalog: where the bad value is and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogError {
    path: String,
    message: String,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for CatalogError {}

impl CatalogError {
    /// Creates an error for the value at `path` (`plans[2].limits.clients.create`).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The path to the bad value, such as `plans[2].limits.clients.create`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What was wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Action {
    /// The REST actions, in the order of their slots.
    pub const REST: [Action; 6] = [
        Action::Index,
        Action::Show,
        Action::Create,
        Action::Update,
        Action::Patch,
        Action::Delete,
    ];

    /// The action's name as the catalog spells it (`"index"`, `"create"`, or the custom name).
    pub fn as_str(&self) -> &str {
        match self {
            Action::Index => "index",
            Action::Show => "show",
            Action::Create => "create",
            Action::Update => "update",
            Action::Patch => "patch",
            Action::Delete => "delete",
            Action::Custom(name) => name,
        }
    }

    /// The REST action with this catalog name (`destroy` is an alias of `delete`), or `None`.
    pub fn rest(name: &str) -> Option<Action> {
        Some(match name {
            "index" => Action::Index,
            "show" => Action::Show,
            "create" => Action::Create,
            "update" => Action::Update,
            "patch" => Action::Patch,
            "delete" | "destroy" => Action::Delete,
            _ => return None,
        })
    }

    /// A custom action with this name. A REST name gives the REST action instead.
    pub fn custom(name: impl AsRef<str>) -> Action {
        let name = name.as_ref();
        Action::rest(name).unwrap_or_else(|| Action::Custom(Arc::from(name)))
    }

    /// The slot of a REST action, `None` for a custom one.
    pub(crate) fn slot(&self) -> Option<usize> {
        match self {
            Action::Index => Some(0),
            Action::Show => Some(1),
            Action::Create => Some(2),
            Action::Update => Some(3),
            Action::Patch => Some(4),
            Action::Delete => Some(5),
            Action::Custom(_) => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Catalog {
    /// Parses a catalog from subscriber-format JSON text.
    ///
    /// # Errors
    /// A [`CatalogError`] naming the path to the first bad value.
    pub fn from_json(json: &str) -> Result<Catalog, CatalogError> {
        let _ = json;
        todo!("catalog parsing")
    }

    /// Builds a catalog from an already parsed JSON value.
    ///
    /// # Errors
    /// A [`CatalogError`] naming the path to the first bad value.
    pub fn from_value(value: &serde_json::Value) -> Result<Catalog, CatalogError> {
        let _ = value;
        todo!("catalog parsing")
    }

    /// The plan with this name.
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.get(name)
    }

    /// The trial policy, if the catalog offers trials.
    pub fn trial(&self) -> Option<&Trial> {
        self.trial.as_ref()
    }

    /// Every resource that some plan names (the governed resources), sorted.
    pub fn resources(&self) -> &[Arc<str>] {
        &self.resources
    }
}

impl Plan {
    /// The plan's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plan's name, shared.
    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The limit this plan sets on `action` of `resource` (`PATCH` falls back to `update`).
    pub fn limit(&self, resource: &str, action: &Action) -> Limit {
        let _ = (resource, action);
        todo!("limit lookup")
    }
}

impl Trial {
    /// How long a trial lasts.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The plan a user falls back to when the trial ends.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }
}

//! [`MemoryStore`]: the embedded, in-memory [`PlanStore`].

use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use serde_json::Value;

use super::{BoxError, PlanStore};
use crate::catalog::{Action, Catalog};
use crate::format::FormatError;
use crate::hash::Map;
use crate::subscriber::{Assignment, Subscriber};

/// An in-memory [`PlanStore`]: a catalog and a map of subscriber records that the application can
/// change while serving.
///
/// Clones share their state: keep one clone in the layer and another wherever plans and usage
/// change (a handler that creates an item, a webhook). Every read and write takes a short,
/// synchronous lock that is never held across an `.await`; a lock poisoned by a panic elsewhere is
/// recovered rather than propagated, so the store never panics. Users are spread over 16 locks by
/// the hash of their id, so that requests for different users on different threads seldom meet
/// on one lock; each change to one user is atomic, and [`len`](Self::len) adds up the parts.
///
/// Records are shared: [`subscriber`](Self::subscriber) and [`PlanStore::user`] hand out an
/// [`Arc`] clone, and a mutation copies a record only while such a clone is still alive.
///
/// A change is visible to the next call of [`PlanStore::user`]. A layer with a user cache keeps
/// serving its cached copy until the entry expires or is invalidated.
///
/// # Example
///
/// ```
/// use tower_plans::{Assignment, MemoryStore};
///
/// let store = MemoryStore::from_json(
///     r#"{"plans": [{"name": "free", "clients": 3}, {"name": "pro", "clients": 30}]}"#,
///     r#"{"john": {"name": "john", "plan": "free", "usage": {"clients": 2}}}"#,
/// )?;
/// assert_eq!(store.len(), 1);
///
/// // John creates a client: his usage goes up.
/// assert_eq!(store.add_usage("john", "clients", 1), 3);
///
/// // John upgrades.
/// store.set_plan("john", Some(Assignment::new("pro")));
/// assert_eq!(store.subscriber("john").unwrap().plan_name(), Some("pro"));
/// # Ok::<(), tower_plans::LoadError>(())
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStore {
    state: Arc<State>,
}

/// How many locks the users are spread over (a power of two).
const SHARDS: usize = 16;

#[derive(Debug)]
struct State {
    catalog: RwLock<Arc<Catalog>>,
    shards: [Shard; SHARDS],
    /// Picks a user's shard (the maps inside hash with seeds of their own).
    hasher: foldhash::fast::RandomState,
}

/// Some of the users, behind a lock of their own, on cache lines of their own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(RwLock<Users>);

/// Subscriber records by user id.
type Users = Map<Arc<str>, Arc<Subscriber>>;

impl State {
    fn new(catalog: Catalog) -> Self {
        Self {
            catalog: RwLock::new(Arc::new(catalog)),
            shards: Default::default(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, id: &str) -> &Shard {
        // Always in bounds: the index is taken modulo the number of shards.
        &self.shards[self.hasher.hash_one(id) as usize % SHARDS]
    }
}

impl MemoryStore {
    /// A store with this catalog and no users.
    pub fn new(catalog: Catalog) -> Self {
        Self {
            state: Arc::new(State::new(catalog)),
        }
    }

    /// Loads a store from subscriber-format JSON text: the catalog, and a JSON object that maps
    /// each user id to its subscriber record (`{"john": {"plan": "free", "usage": {...}}}`).
    ///
    /// A `null` record is skipped, as for an unknown user.
    ///
    /// # Errors
    /// A [`LoadError`] when either text is not JSON, the catalog is malformed, the users are not a
    /// JSON object, or a user's record is malformed (the error names the user and the path).
    pub fn from_json(plans_json: &str, users_json: &str) -> Result<Self, LoadError> {
        let plans: Value = serde_json::from_str(plans_json)
            .map_err(|error| LoadError::CatalogJson(Arc::new(error)))?;
        let users: Value = serde_json::from_str(users_json)
            .map_err(|error| LoadError::UsersJson(Arc::new(error)))?;
        Self::from_values(&plans, &users)
    }

    /// Loads a store from already parsed JSON values; see [`from_json`](Self::from_json).
    ///
    /// # Errors
    /// A [`LoadError`] when the catalog is malformed, the users are not a JSON object, or a
    /// user's record is malformed.
    pub fn from_values(plans: &Value, users: &Value) -> Result<Self, LoadError> {
        let catalog = Catalog::from_value(plans).map_err(LoadError::Catalog)?;
        let records = match users {
            Value::Object(records) => records,
            Value::Null => return Ok(Self::new(catalog)),
            other => {
                return Err(LoadError::UsersNotObject {
                    found: json_kind(other),
                })
            }
        };
        let state = State::new(catalog);
        for (id, record) in records {
            if record.is_null() {
                continue;
            }
            let subscriber = Subscriber::from_value(record).map_err(|error| LoadError::User {
                id: Arc::from(id.as_str()),
                error,
            })?;
            let mut users = write(state.shard(id));
            users.insert(Arc::from(id.as_str()), Arc::new(subscriber));
        }
        Ok(Self {
            state: Arc::new(state),
        })
    }

    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(
            &self
                .state
                .catalog
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Replaces the catalog. A layer sees it when its cached catalog expires or is invalidated.
    pub fn set_catalog(&self, catalog: Catalog) {
        *self
            .state
            .catalog
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(catalog);
    }

    /// The record of this user, or `None` for an unknown user.
    pub fn subscriber(&self, id: &str) -> Option<Arc<Subscriber>> {
        read(self.state.shard(id)).get(id).cloned()
    }

    /// Adds or replaces a user's record, returning the previous one.
    pub fn insert_user(
        &self,
        id: impl Into<Arc<str>>,
        subscriber: Subscriber,
    ) -> Option<Arc<Subscriber>> {
        let id = id.into();
        write(self.state.shard(&id)).insert(id, Arc::new(subscriber))
    }

    /// Removes a user's record, returning it.
    pub fn remove_user(&self, id: &str) -> Option<Arc<Subscriber>> {
        write(self.state.shard(id)).remove(id)
    }

    /// Sets (`Some`) or removes (`None`) a user's plan.
    ///
    /// Setting a plan of an unknown user creates the user, named by `id`, without usage; removing
    /// the plan of an unknown user does nothing.
    pub fn set_plan(&self, id: impl AsRef<str>, assignment: Option<Assignment>) {
        let id = id.as_ref();
        match assignment {
            Some(assignment) => self.update_user(id, |subscriber| {
                subscriber.assignment = Some(assignment);
            }),
            None => {
                let mut users = write(self.state.shard(id));
                if let Some(subscriber) = users.get_mut(id) {
                    Arc::make_mut(subscriber).assignment = None;
                }
            }
        }
    }

    /// Sets the count of `resource` for a user (replacing per-action counts, if any), creating the
    /// user when unknown.
    pub fn set_usage(&self, id: impl AsRef<str>, resource: impl Into<Arc<str>>, count: u64) {
        let resource = resource.into();
        self.update_user(id, |subscriber| subscriber.usage.set(resource, count));
    }

    /// Adds `delta` (negative to subtract) to the count of `resource` for a user and returns the
    /// new count, saturating at 0. Creates the user when unknown; an unrecorded resource starts
    /// at 0 (see [`Usage::add`](crate::Usage::add)).
    pub fn add_usage(&self, id: impl AsRef<str>, resource: &str, delta: i64) -> u64 {
        self.update_user(id, |subscriber| subscriber.usage.add(resource, delta))
    }

    /// Adds `delta` to the count of `action` on `resource` for a user and returns the new count,
    /// saturating at 0. Creates the user when unknown (see
    /// [`Usage::add_action`](crate::Usage::add_action)).
    pub fn add_action_usage(
        &self,
        id: impl AsRef<str>,
        resource: &str,
        action: &Action,
        delta: i64,
    ) -> u64 {
        self.update_user(id, |subscriber| {
            subscriber.usage.add_action(resource, action, delta)
        })
    }

    /// Changes a user's record in place and returns what `f` returns.
    ///
    /// An unknown user is created first, named by `id`, with no plan and no usage. A lock of the
    /// store is held while `f` runs, so `f` should be short and must not call back into the
    /// store.
    pub fn update_user<R>(&self, id: impl AsRef<str>, f: impl FnOnce(&mut Subscriber) -> R) -> R {
        let id = id.as_ref();
        let mut users = write(self.state.shard(id));
        if let Some(subscriber) = users.get_mut(id) {
            return f(Arc::make_mut(subscriber));
        }
        let id: Arc<str> = Arc::from(id);
        let mut subscriber = Subscriber::new().with_name(Arc::clone(&id));
        let result = f(&mut subscriber);
        users.insert(id, Arc::new(subscriber));
        result
    }

    /// Removes a known user's plan when `matches` accepts it; returns whether it was removed.
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    pub(crate) fn remove_plan_if(
        &self,
        id: &str,
        matches: impl FnOnce(&Assignment) -> bool,
    ) -> bool {
        let mut users = write(self.state.shard(id));
        let Some(subscriber) = users.get_mut(id) else {
            return false;
        };
        match &subscriber.assignment {
            Some(assignment) if matches(assignment) => {
                Arc::make_mut(subscriber).assignment = None;
                true
            }
            _ => false,
        }
    }

    /// The number of users (while other threads change the store, a count of its parts taken
    /// one after the other).
    pub fn len(&self) -> usize {
        self.state
            .shards
            .iter()
            .map(|shard| read(shard).len())
            .sum()
    }

    /// Whether the store has no users.
    pub fn is_empty(&self) -> bool {
        self.state.shards.iter().all(|shard| read(shard).is_empty())
    }
}

fn read(shard: &Shard) -> RwLockReadGuard<'_, Users> {
    shard.0.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(shard: &Shard) -> RwLockWriteGuard<'_, Users> {
    shard.0.write().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl PlanStore for MemoryStore {
    async fn plans(&self) -> Result<Arc<Catalog>, BoxError> {
        Ok(self.catalog())
    }

    async fn user(&self, id: &str) -> Result<Option<Arc<Subscriber>>, BoxError> {
        Ok(self.subscriber(id))
    }
}

/// Why a [`MemoryStore`] could not be loaded: which document, which user, and where in it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// The catalog text is not valid JSON.
    CatalogJson(Arc<serde_json::Error>),
    /// The users text is not valid JSON.
    UsersJson(Arc<serde_json::Error>),
    /// The catalog is malformed.
    Catalog(FormatError),
    /// The users document is not a JSON object of id to record.
    UsersNotObject {
        /// The kind of JSON value found instead (`"array"`, `"string"`, ...).
        found: &'static str,
    },
    /// One user's record is malformed.
    User {
        /// The user's id, as the key of the users object.
        id: Arc<str>,
        /// What is wrong with the record, and where.
        error: FormatError,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::CatalogJson(error) => write!(f, "catalog: invalid JSON: {error}"),
            LoadError::UsersJson(error) => write!(f, "users: invalid JSON: {error}"),
            LoadError::Catalog(error) => write!(f, "catalog: {error}"),
            LoadError::UsersNotObject { found } => {
                write!(
                    f,
                    "users: expected an object of user id to record, found {found}"
                )
            }
            LoadError::User { id, error } => {
                write!(f, "users[{:?}]", &**id)?;
                let path = error.path();
                if !path.is_empty() && !path.starts_with('[') {
                    f.write_str(".")?;
                }
                write!(f, "{path}: {}", error.message())
            }
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::CatalogJson(error) | LoadError::UsersJson(error) => Some(&**error),
            LoadError::Catalog(error) => Some(error),
            LoadError::UsersNotObject { .. } => None,
            LoadError::User { error, .. } => Some(error),
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_error_names_the_user_and_the_path() {
        let error = LoadError::User {
            id: Arc::from("john"),
            error: FormatError::new("plan.expire", "expected milliseconds since the epoch"),
        };
        assert_eq!(
            error.to_string(),
            r#"users["john"].plan.expire: expected milliseconds since the epoch"#
        );
        let root = LoadError::User {
            id: Arc::from("a\"b"),
            error: FormatError::new("", "expected an object"),
        };
        assert_eq!(root.to_string(), r#"users["a\"b"]: expected an object"#);
        let index = LoadError::User {
            id: Arc::from("x"),
            error: FormatError::new("[0]", "bad"),
        };
        assert_eq!(index.to_string(), r#"users["x"][0]: bad"#);
    }

    #[test]
    fn catalog_error_is_wrapped() {
        let error = LoadError::Catalog(FormatError::new("plans[2].limits.clients", "negative"));
        assert_eq!(
            error.to_string(),
            "catalog: plans[2].limits.clients: negative"
        );
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn invalid_json_names_the_document() {
        let error = MemoryStore::from_json("{", "{}").unwrap_err();
        assert!(matches!(error, LoadError::CatalogJson(_)));
        assert!(error.to_string().starts_with("catalog: invalid JSON: "));

        let error = MemoryStore::from_json("[]", "[").unwrap_err();
        assert!(matches!(error, LoadError::UsersJson(_)));
        assert!(error.to_string().starts_with("users: invalid JSON: "));
    }

    #[test]
    fn users_not_object_message() {
        let error = LoadError::UsersNotObject { found: "an array" };
        assert_eq!(
            error.to_string(),
            "users: expected an object of user id to record, found an array"
        );
        assert_eq!(json_kind(&serde_json::json!([])), "an array");
        assert_eq!(json_kind(&serde_json::json!("x")), "a string");
    }

    #[test]
    fn memory_store_is_send_sync_and_a_plan_store() {
        fn assert_store<T: PlanStore + Clone + Send + Sync>() {}
        assert_store::<MemoryStore>();
    }
}

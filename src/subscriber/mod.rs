//! Subscriber records: a user's plan assignment and usage, as a store returns them.
//!
//! [`Subscriber`]'s docs describe the JSON form; [`Usage`] holds the counts a decision compares
//! with a plan's limits.

mod grants;
mod json;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::catalog::{Action, Catalog};
use crate::format::{self, FormatError};
use crate::names::NameMap;

pub use grants::{AddonGrant, CreditGrant};

/// What a [`PlanStore`](crate::PlanStore)'s `user(id)` returns for a known user: the plan
/// assignment and the usage.
///
/// # The JSON form
///
/// A record is an object in the format of the Node.js `subscriber` package, read by
/// [`Subscriber::from_json`], [`Subscriber::from_value`] or serde's `Deserialize`:
///
/// * `name` (or, failing that, `id`): the user's name, a string or a number. Optional.
/// * `plan`: a bare plan name (`"free"`), or `{"name": "pro", "trial": true, "join": ms,
///   "expire": ms}` where `trial` defaults to `false` and `join`/`expire` are milliseconds since
///   the Unix epoch (non-negative integers, or `null`). A trial needs `join` or `expire`. Any other
///   property of the plan object is an error, so a misspelt `expires` cannot silently make a plan
///   last forever. A record without `plan`, or with `"plan": null`, has no plan.
/// * `usage`: an object mapping each resource to a count (`{"clients": 3}`) or to counts per
///   action (`{"tasks": {"create": 2, "show": 40}}`; `destroy` is read as `delete`). Counts are
///   non-negative integers; `null` is the same as leaving the resource out.
/// * `addons`: the [add-ons](crate::catalog::Addon) granted to the user, an array of
///   `{"name": "more-clients", "starts": ms, "expires": ms, "quantity": 2}` (see
///   [`AddonGrant`]). Only `name` is required: without `starts` the grant has always been
///   active, without `expires` it never ends, and `quantity` defaults to 1. `quantity` is a
///   non-negative integer (0 grants nothing); `expires` may not be before `starts`; any other
///   property is an error. `null` is the same as no add-ons. A grant may name its `source`, a
///   non-empty string saying who granted it (the Stripe receiver marks its grants `"stripe"`,
///   so that it replaces only those); without one the grant has no source.
/// * `cycle_anchor`: when the user's billing cycle started, in milliseconds since the Unix epoch
///   (a non-negative integer, or `null`), as a billing provider reports it. Optional; the record
///   keeps it for quotas that follow the billing cycle.
/// * `grants`: one-off grants of credits (top-ups), an array of `{"id": "g1", "credits": "ai",
///   "amount": 500, "starts": ms, "expires": ms}` (see [`CreditGrant`]). `id` (unique among the
///   record's grants), `credits` (the pool) and `amount` (a non-negative integer) are required;
///   without `starts` the grant has always counted, without `expires` it never ends, and
///   `expires` may not be before `starts`; any other property is an error. `null` is the same
///   as no grants.
/// * Without a `usage` property, every property other than `name`, `id`, `plan`, `addons`,
///   `cycle_anchor` and `grants` is usage, and must be a count, an object of counts or `null`.
///   With a `usage` property, the other properties are ignored.
///
/// Errors are [`FormatError`]s naming the path to the bad value (`plan.expire`,
/// `usage.clients`, `tasks.show`, `addons[0].quantity`, `cycle_anchor`, `grants[1].id`).
///
/// A record is read without the catalog, so an add-on name that the catalog does not know is
/// not an error here: [`Subscriber::check_addons`] checks the names against a catalog (the
/// [`MemoryStore`](crate::MemoryStore) loaders and [`grant_addon`](crate::MemoryStore::grant_addon)
/// do), and the decision ignores an unknown add-on with a warning.
///
/// ```
/// use tower_plans::{Action, Subscriber};
///
/// let john = Subscriber::from_json(
///     r#"{"name": "john", "plan": {"name": "pro", "trial": true, "join": 1700000000000},
///         "usage": {"clients": 3, "tasks": {"create": 2, "show": 40}}}"#,
/// )?;
/// let plan = john.assignment.as_ref().expect("john has a plan");
/// assert_eq!(&*plan.plan, "pro");
/// assert!(plan.trial);
/// assert_eq!(plan.joined, Some(1_700_000_000_000));
/// assert_eq!(plan.expires, None);
/// assert_eq!(john.usage.get("clients", &Action::Create), 3);
/// assert_eq!(john.usage.get("tasks", &Action::Show), 40);
/// assert_eq!(john.usage.get("tasks", &Action::Delete), 0);
///
/// // The shorthand: every other property is usage.
/// let jane = Subscriber::from_json(r#"{"name": "jane", "plan": "free", "clients": 2}"#)?;
/// assert_eq!(jane.plan_name(), Some("free"));
/// assert_eq!(jane.usage.count("clients"), Some(2));
///
/// let err = Subscriber::from_json(r#"{"plan": {"name": "pro", "trial": true}}"#).unwrap_err();
/// assert_eq!(err.path(), "plan");
/// # Ok::<(), tower_plans::format::FormatError>(())
/// ```
///
/// Or from Rust:
///
/// ```
/// use tower_plans::{Action, Subscriber, subscriber::{AddonGrant, Assignment}};
///
/// let john = Subscriber::new()
///     .with_name("john")
///     .with_plan(Assignment::new("pro").as_trial().joined_at(1_700_000_000_000))
///     .with_addon(AddonGrant::new("more-clients").quantity(2).expires_at(1_702_000_000_000))
///     .with_usage("clients", 3)
///     .with_action_usage("tasks", &Action::Show, 40);
/// assert_eq!(john.usage.get("tasks", &Action::Show), 40);
/// assert_eq!(john.addons[0].quantity, 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscriber {
    /// The user's name or id as the record gives it.
    pub name: Option<Arc<str>>,
    /// The user's plan, if any.
    pub assignment: Option<Assignment>,
    /// What the user already has or did, per resource.
    pub usage: Usage,
    /// The add-ons granted to the user, in the record's order (active or not).
    pub addons: Vec<AddonGrant>,
    /// When the user's billing cycle started, in milliseconds since the Unix epoch (JSON
    /// `cycle_anchor`), as a billing provider reports it; `None` when unknown.
    pub cycle_anchor: Option<u64>,
    /// The one-off grants of credits the user holds (JSON `grants`), in the record's order
    /// (active or not).
    pub grants: Vec<CreditGrant>,
}

/// A user's plan assignment.
///
/// When it ends: `expires` if set (this is also how a trial is extended); otherwise, for a trial,
/// `joined` plus the catalog's trial duration; a regular plan without `expires` does not end. See
/// [`decide`](crate::decision::decide).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The plan's name.
    pub plan: Arc<str>,
    /// Whether this is a free trial of the plan.
    pub trial: bool,
    /// When the user joined the plan, in milliseconds since the Unix epoch.
    pub joined: Option<u64>,
    /// When the plan expires, in milliseconds since the Unix epoch.
    pub expires: Option<u64>,
}

/// A user's usage per resource.
///
/// A resource has a plain count (`"clients": 3`, the items the user has), counts per action
/// (`{"create": 2, "show": 40}`), or both (see [`ResourceUsage`]). Per-action counts are keyed by
/// the catalog's action names: an [`Action::Custom`] carrying a REST name (`"destroy"`) reads and
/// writes that REST action's count (`delete`).
///
/// What counts against a limit is [`Usage::get`]: the action's own count, else the plain count,
/// else 0. One exception: a `PATCH` that the plan limits through its `update` limit (it sets no
/// `patch` limit) counts the `patch` count if there is one, else the `update` count, else the
/// plain count, else 0: a store that counts only updates limits PATCH as it limits PUT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    resources: NameMap<ResourceUsage>,
}

/// The usage of one resource: a plain count, counts per action, or both.
///
/// The plain count (`"clients": 3`) is the items the user has, and the usage of every action
/// that has no count of its own; counts per action (`"tasks": {"create": 2, "show": 40}`) are
/// the usage of their action, and an action they do not list reads 0. A record's JSON gives one
/// form or the other. Counted usage mixes them: an action of a plainly counted resource gains a
/// count of its own, and the plain count stays the usage of the others.
///
/// ```
/// use tower_plans::{Action, Subscriber};
///
/// let mut john = Subscriber::from_json(r#"{"plan": "free", "usage": {"projects": 5}}"#)?;
/// john.usage.set_action("projects", &Action::Show, 6);
/// let projects = john.usage.resource("projects").expect("recorded");
/// assert_eq!(projects.count(), Some(5));
/// assert_eq!(projects.get(&Action::Show), 6);
/// assert_eq!(projects.get(&Action::Update), 5);
/// # Ok::<(), tower_plans::format::FormatError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceUsage {
    /// The plain count.
    count: Option<u64>,
    /// Counts per action, keyed by the action's catalog name ([`Action::as_str`]).
    actions: HashMap<Arc<str>, u64>,
}

impl ResourceUsage {
    /// A plain count: the items the user has, and the usage of every action.
    pub fn plain(count: u64) -> Self {
        Self {
            count: Some(count),
            actions: HashMap::new(),
        }
    }

    /// The plain count, `None` when the resource has none (it is counted per action only).
    pub fn count(&self) -> Option<u64> {
        self.count
    }

    /// The count of `action` itself, `None` when it has none. An [`Action::Custom`] carrying a
    /// REST name reads that action's count.
    pub fn action_count(&self, action: &Action) -> Option<u64> {
        count_of(&self.actions, action)
    }

    /// The usage of `action`: its own count, else the plain count, else 0.
    pub fn get(&self, action: &Action) -> u64 {
        self.action_count(action).or(self.count).unwrap_or(0)
    }

    /// The counts per action, by catalog name, in no particular order.
    pub fn actions(&self) -> impl Iterator<Item = (&Arc<str>, u64)> + '_ {
        self.actions.iter().map(|(action, count)| (action, *count))
    }

    /// Whether the resource is counted per action only: it has no plain count, and an action
    /// without a count of its own reads 0.
    pub fn is_per_action(&self) -> bool {
        self.count.is_none()
    }

    /// The count of `action` itself, to change in place.
    pub(crate) fn action_count_mut(&mut self, action: &Action) -> Option<&mut u64> {
        self.actions.get_mut(action.normalised().as_str())
    }

    /// The item count, to change in place: the `create` count when there is one, else the plain
    /// count; `None` when there is neither.
    pub(crate) fn items_mut(&mut self) -> Option<&mut u64> {
        match self.actions.get_mut(Action::Create.as_str()) {
            Some(create) => Some(create),
            None => self.count.as_mut(),
        }
    }

    /// Sets the item count: the `create` count when there is one or the resource is counted per
    /// action only, else the plain count, which the actions without a count of their own read.
    pub(crate) fn set_items(&mut self, items: u64) {
        match self.items_mut() {
            Some(current) => *current = items,
            None => {
                self.actions
                    .insert(Arc::from(Action::Create.as_str()), items);
            }
        }
    }
}

impl Usage {
    /// No usage recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// The usage that counts against a limit on `action` of `resource`: the action's own count
    /// if there is one, else the resource's plain count, else 0. Does not allocate.
    ///
    /// A resource counted per action only has no plain count, so an action it does not list
    /// counts 0. An [`Action::Custom`] carrying a REST name reads that action's count
    /// (`Custom("destroy")` reads the `delete` count).
    ///
    /// [`decide`](crate::decision::decide) uses this for every action but one case: a `PATCH` limited by
    /// the `update` limit, because the plan sets no `patch` limit, counts the `patch` count if
    /// there is one, else the `update` count, else the plain count, else 0 (see
    /// [`Usage::action_count`]).
    pub fn get(&self, resource: &str, action: &Action) -> u64 {
        self.resources
            .get(resource)
            .map_or(0, |usage| usage.get(action))
    }

    /// The count of `action` itself on `resource`: `None` when the resource is not recorded or
    /// has no count of its own for the action. An [`Action::Custom`] carrying a REST name reads
    /// that action's count. Does not allocate.
    ///
    /// ```
    /// use tower_plans::{Action, Subscriber};
    ///
    /// let john = Subscriber::from_json(
    ///     r#"{"plan": "free", "usage": {"clients": 3, "tasks": {"update": 2, "destroy": 1}}}"#,
    /// )?;
    /// assert_eq!(john.usage.action_count("tasks", &Action::Update), Some(2));
    /// assert_eq!(john.usage.action_count("tasks", &Action::Custom("destroy".into())), Some(1));
    /// assert_eq!(john.usage.action_count("tasks", &Action::Patch), None);
    /// assert_eq!(john.usage.action_count("clients", &Action::Create), None);
    /// # Ok::<(), tower_plans::format::FormatError>(())
    /// ```
    pub fn action_count(&self, resource: &str, action: &Action) -> Option<u64> {
        self.resources.get(resource)?.action_count(action)
    }

    /// The plain count of `resource`, `None` when it is not recorded or has no plain count.
    pub fn count(&self, resource: &str) -> Option<u64> {
        self.resources.get(resource)?.count
    }

    /// The usage recorded for `resource`.
    pub fn resource(&self, resource: &str) -> Option<&ResourceUsage> {
        self.resources.get(resource)
    }

    /// The usage recorded for `resource`, to change in place.
    pub(crate) fn resource_mut(&mut self, resource: &str) -> Option<&mut ResourceUsage> {
        self.resources.get_mut(resource)
    }

    /// Sets the plain count of `resource`, replacing its per-action counts, if any: the user
    /// has `count` items, and that is the usage of every action.
    pub fn set(&mut self, resource: impl Into<Arc<str>>, count: u64) {
        self.resources
            .insert(resource.into(), ResourceUsage::plain(count));
    }

    /// Sets the count of `action` on `resource`. A plain count stays: it is still the usage of
    /// every other action without a count of its own.
    pub fn set_action(&mut self, resource: impl Into<Arc<str>>, action: &Action, count: u64) {
        let key = action_key(action);
        self.resources
            .get_or_insert_with(resource.into(), ResourceUsage::default)
            .actions
            .insert(key, count);
    }

    /// Names `resource` as counted per action, with no count yet when it is not recorded: every
    /// action of it reads 0 (`"tasks": {}` in a record).
    #[cfg(feature = "postgres")]
    pub(crate) fn count_per_action(&mut self, resource: impl Into<Arc<str>>) {
        self.resources
            .get_or_insert_with(resource.into(), ResourceUsage::default);
    }

    /// Adds `delta` (which may be negative) to the plain count of `resource` and returns the new
    /// count, saturating at 0 and at `u64::MAX`. A resource without a plain count (unrecorded,
    /// or counted per action only) starts at 0; the counts that actions have of their own stay.
    pub fn add(&mut self, resource: &str, delta: i64) -> u64 {
        let current = self.count(resource).unwrap_or(0);
        let next = apply_delta(current, delta);
        match self.resources.get_mut(resource) {
            Some(entry) => entry.count = Some(next),
            None => {
                self.resources
                    .insert(Arc::from(resource), ResourceUsage::plain(next));
            }
        }
        next
    }

    /// Adds `delta` to the usage of `action` on `resource` ([`get`](Self::get)) and returns the
    /// new count, the action's own from then on, saturating at 0 and at `u64::MAX` (see
    /// [`Usage::set_action`]).
    pub fn add_action(&mut self, resource: &str, action: &Action, delta: i64) -> u64 {
        let next = apply_delta(self.get(resource, action), delta);
        self.set_action(resource, action, next);
        next
    }

    /// Forgets the usage of `resource`.
    pub fn remove(&mut self, resource: &str) -> Option<ResourceUsage> {
        self.resources.remove(resource)
    }

    /// The recorded resources and their usage, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &ResourceUsage)> + '_ {
        self.resources.iter()
    }

    /// How many resources have usage recorded.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether no usage is recorded.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

/// The count of `action` in a per-action map, under its normalised name.
fn count_of(map: &HashMap<Arc<str>, u64>, action: &Action) -> Option<u64> {
    map.get(action.normalised().as_str()).copied()
}

/// The per-action usage key of `action`: its catalog name (`destroy` is `delete`).
fn action_key(action: &Action) -> Arc<str> {
    match action {
        Action::Custom(name) => match Action::rest(name) {
            Some(rest) => Arc::from(rest.as_str()),
            None => Arc::clone(name),
        },
        rest => Arc::from(rest.as_str()),
    }
}

/// `current + delta`, clamped to `0..=u64::MAX`.
fn apply_delta(current: u64, delta: i64) -> u64 {
    if delta >= 0 {
        current.saturating_add(delta.unsigned_abs())
    } else {
        current.saturating_sub(delta.unsigned_abs())
    }
}

impl Subscriber {
    /// A record with no name, no plan and no usage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the user's name, builder style.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the plan assignment, builder style.
    #[must_use]
    pub fn with_plan(mut self, assignment: Assignment) -> Self {
        self.assignment = Some(assignment);
        self
    }

    /// Sets the count of `resource`, builder style (see [`Usage::set`]).
    #[must_use]
    pub fn with_usage(mut self, resource: impl Into<Arc<str>>, count: u64) -> Self {
        self.usage.set(resource, count);
        self
    }

    /// Sets the count of `action` on `resource`, builder style (see [`Usage::set_action`]).
    #[must_use]
    pub fn with_action_usage(
        mut self,
        resource: impl Into<Arc<str>>,
        action: &Action,
        count: u64,
    ) -> Self {
        self.usage.set_action(resource, action, count);
        self
    }

    /// Adds an add-on grant, builder style (see [`AddonGrant`]).
    #[must_use]
    pub fn with_addon(mut self, grant: AddonGrant) -> Self {
        self.addons.push(grant);
        self
    }

    /// Adds a one-off grant of credits, builder style.
    #[must_use]
    pub fn with_grant(mut self, grant: CreditGrant) -> Self {
        self.grants.push(grant);
        self
    }

    /// Sets when the user's billing cycle started (ms since the Unix epoch), builder style.
    #[must_use]
    pub fn with_cycle_anchor(mut self, ms: u64) -> Self {
        self.cycle_anchor = Some(ms);
        self
    }

    /// The name of the assigned plan, if any.
    pub fn plan_name(&self) -> Option<&str> {
        self.assignment.as_ref().map(|a| &*a.plan)
    }

    /// Checks that `catalog` knows every add-on this record grants.
    ///
    /// A record is read without its catalog, so [`Subscriber::from_json`] cannot tell; stores
    /// that hold both call this when they load or change a record (the
    /// [`MemoryStore`](crate::MemoryStore) loaders and
    /// [`grant_addon`](crate::MemoryStore::grant_addon) do). The decision itself ignores an
    /// unknown add-on, with a warning.
    ///
    /// # Errors
    /// A [`FormatError`] at `addons[i].name` for the first grant of an add-on that the catalog
    /// does not know.
    ///
    /// ```
    /// use tower_plans::{Catalog, Subscriber};
    ///
    /// let catalog = Catalog::from_json(
    ///     r#"{"plans": [{"name": "free", "clients": 3}],
    ///         "addons": [{"name": "more-clients", "limits": {"clients": 10}}]}"#,
    /// )?;
    /// let john = Subscriber::from_json(
    ///     r#"{"plan": "free", "addons": [{"name": "more-clients"}, {"name": "more-client"}]}"#,
    /// )?;
    /// let err = john.check_addons(&catalog).unwrap_err();
    /// assert_eq!(err.path(), "addons[1].name");
    /// # Ok::<(), tower_plans::format::FormatError>(())
    /// ```
    pub fn check_addons(&self, catalog: &Catalog) -> Result<(), FormatError> {
        let path = format::JsonPath::root();
        let addons = path.key("addons");
        for (i, grant) in self.addons.iter().enumerate() {
            if catalog.addon(&grant.name).is_none() {
                return Err(addons
                    .index(i)
                    .key("name")
                    .error(format!("the catalog has no add-on `{}`", grant.name)));
            }
        }
        Ok(())
    }

    /// Parses a subscriber record from subscriber-format JSON text (see [`Subscriber`]).
    ///
    /// # Errors
    /// A [`FormatError`] naming the path to the first bad value; invalid JSON gives an error
    /// with an empty path.
    pub fn from_json(json: &str) -> Result<Subscriber, FormatError> {
        Subscriber::from_value(&format::parse(json)?)
    }

    /// Builds a subscriber record from an already parsed JSON value (see [`Subscriber`]).
    ///
    /// # Errors
    /// A [`FormatError`] naming the path to the first bad value.
    pub fn from_value(value: &Value) -> Result<Subscriber, FormatError> {
        json::subscriber(value)
    }
}

impl<'de> serde::Deserialize<'de> for Subscriber {
    /// Reads the subscriber JSON form through the same checks as [`Subscriber::from_value`].
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Subscriber::from_value(&value).map_err(serde::de::Error::custom)
    }
}

impl Assignment {
    /// A regular plan that does not expire: not a trial, no `joined`, no `expires`.
    pub fn new(plan: impl Into<Arc<str>>) -> Self {
        Self {
            plan: plan.into(),
            trial: false,
            joined: None,
            expires: None,
        }
    }

    /// Marks the assignment as a free trial, builder style. A trial needs [`joined_at`] or
    /// [`expires_at`].
    ///
    /// [`joined_at`]: Assignment::joined_at
    /// [`expires_at`]: Assignment::expires_at
    #[must_use]
    pub fn as_trial(mut self) -> Self {
        self.trial = true;
        self
    }

    /// Sets when the user joined the plan (ms since the Unix epoch), builder style.
    #[must_use]
    pub fn joined_at(mut self, ms: u64) -> Self {
        self.joined = Some(ms);
        self
    }

    /// Sets when the plan expires (ms since the Unix epoch), builder style. On a trial this
    /// overrides the catalog's trial duration, which is how a trial is extended.
    #[must_use]
    pub fn expires_at(mut self, ms: u64) -> Self {
        self.expires = Some(ms);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_saturates_at_zero_and_at_the_top() {
        let mut usage = Usage::new();
        assert_eq!(usage.add("clients", 2), 2);
        assert_eq!(usage.add("clients", -5), 0);
        assert_eq!(usage.count("clients"), Some(0));
        assert_eq!(usage.add("groups", -1), 0);
        assert_eq!(usage.count("groups"), Some(0));
        usage.set("clients", u64::MAX - 1);
        assert_eq!(usage.add("clients", i64::MAX), u64::MAX);
        assert_eq!(
            usage.add("clients", i64::MIN),
            u64::MAX - i64::MIN.unsigned_abs()
        );
    }

    #[test]
    fn a_plain_count_stays_the_usage_of_actions_without_a_count_of_their_own() {
        let mut usage = Usage::new();
        usage.set("tasks", 5);
        usage.set_action("tasks", &Action::Show, 40);
        // The plain count stays: every other action still reads it.
        assert_eq!(usage.get("tasks", &Action::Show), 40);
        assert_eq!(usage.get("tasks", &Action::Create), 5);
        assert_eq!(usage.get("tasks", &Action::Update), 5);
        assert_eq!(usage.count("tasks"), Some(5));
        assert_eq!(usage.action_count("tasks", &Action::Update), None);

        // An action's own count starts from its usage.
        assert_eq!(usage.add_action("tasks", &Action::Show, 2), 42);
        assert_eq!(usage.add_action("tasks", &Action::Create, -1), 4);
        assert_eq!(usage.get("tasks", &Action::Create), 4);
        assert_eq!(usage.get("tasks", &Action::Delete), 5);

        // `add` changes the plain count; the actions' own counts stay.
        assert_eq!(usage.add("tasks", 3), 8);
        assert_eq!(usage.get("tasks", &Action::Show), 42);
        assert_eq!(usage.get("tasks", &Action::Update), 8);
        // `set` replaces it all with a plain count.
        usage.set("tasks", 1);
        assert_eq!(usage.resource("tasks"), Some(&ResourceUsage::plain(1)));

        // A resource counted per action only: unlisted actions read 0, until it gains a plain
        // count.
        usage.remove("tasks");
        usage.set_action("tasks", &Action::Show, 1);
        assert_eq!(usage.get("tasks", &Action::Update), 0);
        assert_eq!(usage.count("tasks"), None);
        assert_eq!(usage.add("tasks", 2), 2);
        assert_eq!(usage.get("tasks", &Action::Show), 1);
        assert_eq!(usage.get("tasks", &Action::Update), 2);
    }

    #[test]
    fn action_keys_use_catalog_names() {
        let mut usage = Usage::new();
        usage.set_action("tasks", &Action::Custom(Arc::from("destroy")), 4);
        usage.set_action("tasks", &Action::custom("archive"), 1);
        assert_eq!(usage.get("tasks", &Action::Delete), 4);
        assert_eq!(usage.get("tasks", &Action::custom("archive")), 1);
        let tasks = usage.resource("tasks").expect("recorded");
        let mut keys: Vec<&str> = tasks.actions().map(|(k, _)| &**k).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["archive", "delete"]);
    }

    #[test]
    fn iter_len_and_remove() {
        let mut usage = Usage::new();
        assert!(usage.is_empty());
        usage.set("clients", 1);
        usage.set(String::from("groups"), 2);
        assert_eq!(usage.len(), 2);
        let mut seen: Vec<(&str, u64)> = usage
            .iter()
            .filter_map(|(r, u)| Some((&**r, u.count()?)))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, [("clients", 1), ("groups", 2)]);
        assert_eq!(usage.remove("clients"), Some(ResourceUsage::plain(1)));
        assert_eq!(usage.get("clients", &Action::Create), 0);
    }

    #[test]
    fn addon_grants_are_active_within_their_bounds() {
        let open = AddonGrant::new("x");
        assert_eq!(open.quantity, 1);
        assert!(!open.is_timed());
        assert!(open.is_active_at(0, 0) && open.is_active_at(u64::MAX, 0));

        let grant = AddonGrant::new("x").starts_at(10).expires_at(20);
        assert!(grant.is_timed());
        assert!(!grant.is_active_at(9, 0));
        assert!(grant.is_active_at(10, 0));
        assert!(grant.is_active_at(19, 0));
        assert!(!grant.is_active_at(20, 0));
        assert!(grant.is_active_at(24, 5));
        assert!(!grant.is_active_at(25, 5));
        // Grace does not move the start.
        assert!(!grant.is_active_at(9, 5));
        // Saturating.
        let late = AddonGrant::new("x").expires_at(u64::MAX - 1);
        assert!(late.is_active_at(u64::MAX - 1, u64::MAX));
        // Ends before it starts: never active.
        let inverted = AddonGrant::new("x").starts_at(20).expires_at(10);
        assert!((0..30).all(|t| !inverted.is_active_at(t, 0)));
    }

    #[test]
    fn builders_fill_the_record() {
        let record = Subscriber::new()
            .with_name("john")
            .with_plan(Assignment::new("pro").as_trial().joined_at(1).expires_at(2))
            .with_usage("clients", 3);
        assert_eq!(record.name.as_deref(), Some("john"));
        assert_eq!(
            record.assignment,
            Some(Assignment {
                plan: Arc::from("pro"),
                trial: true,
                joined: Some(1),
                expires: Some(2),
            })
        );
        assert_eq!(record.plan_name(), Some("pro"));
        assert_eq!(record.usage.count("clients"), Some(3));
        assert!(record.addons.is_empty());
        let record = record.with_addon(AddonGrant::new("a").quantity(3).starts_at(1));
        assert_eq!(
            record.addons,
            [AddonGrant {
                name: Arc::from("a"),
                starts: Some(1),
                expires: None,
                quantity: 3,
                source: None,
            }]
        );
        assert_eq!(record.cycle_anchor, None);
        let record = record
            .with_cycle_anchor(1_700_000_000_000)
            .with_addon(AddonGrant::new("b").source("stripe"));
        assert_eq!(record.cycle_anchor, Some(1_700_000_000_000));
        assert_eq!(record.addons[1].source.as_deref(), Some("stripe"));
    }
}

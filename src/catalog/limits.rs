//! What a request does ([`Action`]) and how much of it a plan allows ([`Limit`], per resource
//! [`ResourceLimits`]).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use super::{Period, Rule};

/// What a request does to a resource.
///
/// The six REST actions come from the method and the path (see [`RouteTable`](crate::routes::RouteTable));
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
///
/// Serialises as the JSON the catalog uses: a number, `{"max": 20, "per": "day"}` for
/// [`Limit::Periodic`], or `null` for [`Limit::Unlimited`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// No limit (`null` or absent in JSON).
    Unlimited,
    /// At most this many, ever; `Limited(0)` blocks the action.
    Limited(u64),
    /// At most `max` in each `per` period: a quota that starts again from zero at the start of
    /// every UTC day, ISO week, month or year. `max: 0` blocks the action.
    Periodic {
        /// How many each period allows.
        max: u64,
        /// When the count starts again.
        per: Period,
    },
}

/// The limits of one plan on one resource, per action.
///
/// An action that is not set is unlimited, except [`Action::Patch`], which falls back to the
/// [`Action::Update`] limit (see [`ResourceLimits::limit`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceLimits {
    /// Index by `Action` discriminant for the six REST actions; `None` = not set.
    standard: [Option<Rule>; 6],
    /// Custom actions, by name.
    custom: Vec<(Arc<str>, Rule)>,
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

impl Action {
    /// The slot of a REST action, also for a [`Action::Custom`] that carries a REST name.
    fn normalised_slot(&self) -> Option<usize> {
        match self {
            Action::Custom(name) => Action::rest(name).and_then(|a| a.slot()),
            other => other.slot(),
        }
    }

    /// The action itself, except that an [`Action::Custom`] carrying a REST name (`"create"`,
    /// `"destroy"`) is that REST action. Does not allocate.
    pub(crate) fn normalised(&self) -> Cow<'_, Action> {
        match self {
            Action::Custom(name) => match Action::rest(name) {
                Some(rest) => Cow::Owned(rest),
                None => Cow::Borrowed(self),
            },
            other => Cow::Borrowed(other),
        }
    }
}

impl Limit {
    /// At most `max` in each `per` period.
    pub const fn per(max: u64, per: Period) -> Limit {
        Limit::Periodic { max, per }
    }

    /// Whether `usage` is still below this limit, so one more is allowed. For a
    /// [`Limit::Periodic`] limit, `usage` is the current period's.
    pub fn allows(&self, usage: u64) -> bool {
        match self.maximum() {
            None => true,
            Some(max) => usage < max,
        }
    }

    /// The maximum (per period for a [`Limit::Periodic`] limit), `None` when unlimited.
    pub fn maximum(&self) -> Option<u64> {
        match self {
            Limit::Unlimited => None,
            Limit::Limited(max) | Limit::Periodic { max, .. } => Some(*max),
        }
    }

    /// The reset period, `None` unless the limit is [`Limit::Periodic`].
    pub fn period(&self) -> Option<Period> {
        match self {
            Limit::Periodic { per, .. } => Some(*per),
            Limit::Unlimited | Limit::Limited(_) => None,
        }
    }

    /// This limit raised by `quantity` units of an add-on's limit `addon`: the one place where
    /// limits combine, so that a new kind of limit extends only this function.
    ///
    /// Unlimited on either side is unlimited; otherwise the maxima add up, `addon` counted
    /// `quantity` times (saturating, so no quantity overflows). A quantity of 0 adds nothing,
    /// not even an unlimited add-on's "unlimited". The sum is a quota when either side is one:
    /// with this limit's period if it has one, else the add-on's (so "20 exports a day" raises a
    /// blocked `0` to a daily quota, and "10 more" raises "20 a day" to 30 a day).
    pub(crate) fn plus(self, addon: Limit, quantity: u64) -> Limit {
        if quantity == 0 {
            return self;
        }
        let (Some(base), Some(extra)) = (self.maximum(), addon.maximum()) else {
            return Limit::Unlimited;
        };
        let max = base.saturating_add(extra.saturating_mul(quantity));
        match self.period().or(addon.period()) {
            Some(per) => Limit::Periodic { max, per },
            None => Limit::Limited(max),
        }
    }
}

impl serde::Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Limit::Unlimited => serializer.serialize_none(),
            Limit::Limited(max) => serializer.serialize_u64(*max),
            Limit::Periodic { max, per } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("max", max)?;
                map.serialize_entry("per", per)?;
                map.end()
            }
        }
    }
}

impl ResourceLimits {
    /// No limit set on any action.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the limit on `action` (a hard limit, without a rate). A [`Action::Custom`] carrying
    /// a REST name (`"create"`, `"destroy"`) sets that REST action.
    pub fn set(&mut self, action: Action, limit: Limit) {
        self.set_rule(action, Rule::new(limit));
    }

    /// Sets the limit on `action` with the terms around it (see [`Rule`]).
    pub fn set_rule(&mut self, action: Action, rule: Rule) {
        if let Some(slot) = action.normalised_slot() {
            self.standard[slot] = Some(rule);
            return;
        }
        if let Action::Custom(name) = action {
            match self.custom.iter_mut().find(|(n, _)| *n == name) {
                Some(entry) => entry.1 = rule,
                None => self.custom.push((name, rule)),
            }
        }
    }

    /// Sets the limit on `action`, builder style.
    #[must_use]
    pub fn with(mut self, action: Action, limit: Limit) -> Self {
        self.set(action, limit);
        self
    }

    /// Sets the limit on `action` with the terms around it, builder style.
    #[must_use]
    pub fn with_rule(mut self, action: Action, rule: Rule) -> Self {
        self.set_rule(action, rule);
        self
    }

    /// The limit set on exactly this action, `None` when it is not set (no `patch` fallback).
    pub fn get(&self, action: &Action) -> Option<Limit> {
        self.get_rule(action).map(|rule| rule.limit)
    }

    /// The rule set on exactly this action, `None` when it is not set (no `patch` fallback).
    pub fn get_rule(&self, action: &Action) -> Option<Rule> {
        match (action.normalised_slot(), action) {
            (Some(slot), _) => self.standard[slot],
            (None, Action::Custom(name)) => self
                .custom
                .iter()
                .find(|(n, _)| **n == **name)
                .map(|(_, rule)| *rule),
            (None, _) => None,
        }
    }

    /// The limit that applies to `action`: the one set, else for [`Action::Patch`] (also when
    /// spelled `Action::Custom("patch")`) the [`Action::Update`] limit, else
    /// [`Limit::Unlimited`].
    pub fn limit(&self, action: &Action) -> Limit {
        self.declared(action).unwrap_or(Limit::Unlimited)
    }

    /// The rule that applies to `action`, as [`limit`](Self::limit) finds the limit: `None`
    /// when neither the action nor (for `patch`) `update` is set.
    pub fn rule(&self, action: &Action) -> Option<Rule> {
        if let Some(rule) = self.get_rule(action) {
            return Some(rule);
        }
        if *action.normalised() == Action::Patch {
            return self.get_rule(&Action::Update);
        }
        None
    }

    /// The limit set on `action`, else for [`Action::Patch`] the [`Action::Update`] limit;
    /// `None` when neither is set. What an add-on adds to `action` (see [`Addon::limit`]).
    pub(crate) fn declared(&self, action: &Action) -> Option<Limit> {
        self.rule(action).map(|rule| rule.limit)
    }

    /// Whether no action has a limit set (the resource is named but unlimited).
    pub fn is_empty(&self) -> bool {
        self.standard.iter().all(Option::is_none) && self.custom.is_empty()
    }

    /// The limits set, REST actions first (in [`Action::REST`] order), then custom actions in
    /// the order they were set.
    pub fn iter(&self) -> impl Iterator<Item = (Action, Limit)> + '_ {
        self.rules().map(|(action, rule)| (action, rule.limit))
    }

    /// The rules set, in the order of [`iter`](Self::iter).
    pub fn rules(&self) -> impl Iterator<Item = (Action, Rule)> + '_ {
        let standard = Action::REST
            .iter()
            .zip(self.standard.iter())
            .filter_map(|(action, rule)| rule.map(|rule| (action.clone(), rule)));
        let custom = self
            .custom
            .iter()
            .map(|(name, rule)| (Action::Custom(Arc::clone(name)), *rule));
        standard.chain(custom)
    }

    /// The custom action names set here.
    pub(crate) fn custom_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.custom.iter().map(|(name, _)| name)
    }
}

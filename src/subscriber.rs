//! Subscriber records: a user's plan assignment and usage, as a store returns them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::catalog::Action;

/// What a [`PlanStore`](crate::PlanStore)'s `user(id)` returns for a known user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscriber {
    /// The user's name or id as the record gives it.
    pub name: Option<Arc<str>>,
    /// The user's plan, if any.
    pub assignment: Option<Assignment>,
    /// What the user already has or did, per resource.
    pub usage: Usage,
}

/// A user's plan assignment.
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    resources: HashMap<Arc<str>, ResourceUsage>,
}

/// The usage of one resource: a count of items, or counts per action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceUsage {
    /// How many items the user has.
    Count(u64),
    /// Counts per action.
    PerAction(HashMap<Arc<str>, u64>),
}

impl Usage {
    /// The usage that counts against a limit on `action` of `resource`: the per-action count if
    /// there is one, else the resource count, else 0.
    pub fn get(&self, resource: &str, action: &Action) -> u64 {
        match self.resources.get(resource) {
            Some(ResourceUsage::Count(n)) => *n,
            Some(ResourceUsage::PerAction(map)) => map.get(action.as_str()).copied().unwrap_or(0),
            None => 0,
        }
    }
}

/// A malformed subscriber record: where the bad value is and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriberError {
    path: String,
    message: String,
}

impl SubscriberError {
    /// Creates an error for the value at `path` (`plan.expire`).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The path to the bad value.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What was wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SubscriberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for SubscriberError {}

impl Subscriber {
    /// Parses a subscriber record from subscriber-format JSON text.
    ///
    /// # Errors
    /// A [`SubscriberError`] naming the path to the first bad value.
    pub fn from_json(json: &str) -> Result<Subscriber, SubscriberError> {
        let _ = json;
        todo!("subscriber parsing")
    }

    /// Builds a subscriber record from an already parsed JSON value.
    ///
    /// # Errors
    /// A [`SubscriberError`] naming the path to the first bad value.
    pub fn from_value(value: &serde_json::Value) -> Result<Subscriber, SubscriberError> {
        let _ = value;
        todo!("subscriber parsing")
    }
}

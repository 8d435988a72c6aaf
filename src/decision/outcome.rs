//! What a decision says: [`Allowed`], [`Denial`] and the [`PlanState`] of the plan that applied,
//! with their JSON forms.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::catalog::{Action, Limit, Window};

/// How the user came to be on the effective plan.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanState {
    /// A regular plan that has not expired.
    Active,
    /// A free trial that has not expired (possibly extended).
    Trial,
    /// A trial of `trial` that expired; the catalog's fallback plan applies.
    Fallback {
        /// The plan that was on trial.
        trial: Arc<str>,
    },
    /// The user had no active plan; the policy's default plan applies.
    Default,
    /// The user has no active plan (and no default plan applies), but active add-ons name the
    /// resource: their limits alone apply, and the decision names the first of them (in the
    /// record's order) as its plan.
    Addons,
}

/// An allowed request: what a handler can read from the request extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Allowed {
    /// The plan that applied; in the [`PlanState::Addons`] state, the name of the first active
    /// add-on that names the resource.
    pub plan: Arc<str>,
    /// How the user came to be on it.
    pub state: PlanState,
    /// The resource the request touches.
    pub resource: Arc<str>,
    /// The action the request performs.
    pub action: Action,
    /// The limit on that action: the plan's, raised by the user's active add-ons.
    pub limit: Limit,
    /// The user's usage counted against the limit (in the current period, for a
    /// [`Limit::Periodic`] quota), before this request.
    pub usage: u64,
    /// The current period of a [`Limit::Periodic`] quota: its `end` is when the count resets.
    pub window: Option<Window>,
}

impl Allowed {
    /// How many more the limit allows after this usage (`None` when unlimited).
    pub fn remaining(&self) -> Option<u64> {
        self.limit
            .maximum()
            .map(|max| max.saturating_sub(self.usage))
    }

    /// When the count of a [`Limit::Periodic`] quota resets, in milliseconds since the Unix
    /// epoch.
    pub fn resets(&self) -> Option<u64> {
        self.window.map(|window| window.end())
    }
}

/// A denied request, rendered by default as a 403 with a JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// The user's plan expired (and no fallback applies).
    Expired {
        /// The expired plan.
        plan: Arc<str>,
        /// When it expired (grace included), in milliseconds since the Unix epoch.
        date: u64,
    },
    /// The user has no plan.
    NoPlan {
        /// The resource the request touches.
        resource: Arc<str>,
        /// The action the request performs.
        action: Action,
    },
    /// The limit is reached.
    LimitReached {
        /// The plan that applied (in the [`PlanState::Addons`] state, the first active add-on
        /// that names the resource).
        plan: Arc<str>,
        /// The resource the request touches.
        resource: Arc<str>,
        /// The action the request performs.
        action: Action,
        /// The limit: the plan's, raised by the user's active add-ons (per period, for a
        /// quota).
        maximum: u64,
        /// The user's usage (in the current period, for a quota).
        usage: u64,
        /// The current period of a [`Limit::Periodic`] quota; its `end` is when the count
        /// resets, which the JSON body gives as `resets`.
        window: Option<Window>,
    },
}

impl PlanState {
    /// The state's name: `"active"`, `"trial"`, `"fallback"`, `"default"` or `"addons"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PlanState::Active => "active",
            PlanState::Trial => "trial",
            PlanState::Fallback { .. } => "fallback",
            PlanState::Default => "default",
            PlanState::Addons => "addons",
        }
    }
}

impl Serialize for PlanState {
    /// The state's name, as [`PlanState::as_str`] gives it.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Serialize for Allowed {
    /// `{"plan":"pro","state":"fallback","trial":"gold","item":"clients","action":"create",
    /// "limit":3,"usage":1,"remaining":2}`; `trial` only in the fallback state, `limit` and
    /// `remaining` `null` when unlimited. A quota's `limit` is `{"max":20,"per":"day"}`, and
    /// `resets` follows `remaining`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("plan", &*self.plan)?;
        map.serialize_entry("state", &self.state)?;
        if let PlanState::Fallback { trial } = &self.state {
            map.serialize_entry("trial", &**trial)?;
        }
        map.serialize_entry("item", &*self.resource)?;
        map.serialize_entry("action", &self.action)?;
        map.serialize_entry("limit", &self.limit)?;
        map.serialize_entry("usage", &self.usage)?;
        map.serialize_entry("remaining", &self.remaining())?;
        if let Some(resets) = self.resets() {
            map.serialize_entry("resets", &resets)?;
        }
        map.end()
    }
}

impl Denial {
    /// The `reason` of every denial's JSON body: `"subscription"`.
    pub const REASON: &'static str = "subscription";

    /// When the count of the quota that was reached resets, in milliseconds since the Unix
    /// epoch; `None` unless the limit is a [`Limit::Periodic`] quota.
    pub fn resets(&self) -> Option<u64> {
        match self {
            Denial::LimitReached {
                window: Some(window),
                ..
            } => Some(window.end()),
            _ => None,
        }
    }

    /// The plan the denial names: the expired plan or the plan whose limit was reached; `None`
    /// for [`Denial::NoPlan`].
    pub fn plan(&self) -> Option<&str> {
        match self {
            Denial::Expired { plan, .. } | Denial::LimitReached { plan, .. } => Some(plan),
            Denial::NoPlan { .. } => None,
        }
    }

    /// The JSON body of the denial, as its [`Serialize`] implementation writes it.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        match serde_json::to_vec(self) {
            Ok(json) => json,
            // Serialising a map of strings and numbers into memory does not fail; should it
            // ever, the client still gets the reason.
            Err(error) => {
                tracing::error!(%error, "could not serialize a denial");
                br#"{"reason":"subscription"}"#.to_vec()
            }
        }
    }
}

impl Serialize for Denial {
    /// The JSON body, keys in this order:
    ///
    /// * expired: `{"reason":"subscription","plan":"basic","expired":true,"date":1700000000000}`
    /// * no plan: `{"reason":"subscription","plan":null,"item":"clients","action":"create"}`
    /// * limit reached: `{"reason":"subscription","plan":"free","item":"clients",
    ///   "action":"create","maximum":3,"usage":3}`, and for a quota `"resets"` last, when its
    ///   count starts again (milliseconds since the Unix epoch)
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("reason", Denial::REASON)?;
        match self {
            Denial::Expired { plan, date } => {
                map.serialize_entry("plan", &**plan)?;
                map.serialize_entry("expired", &true)?;
                map.serialize_entry("date", date)?;
            }
            Denial::NoPlan { resource, action } => {
                map.serialize_entry("plan", &None::<&str>)?;
                map.serialize_entry("item", &**resource)?;
                map.serialize_entry("action", action)?;
            }
            Denial::LimitReached {
                plan,
                resource,
                action,
                maximum,
                usage,
                window,
            } => {
                map.serialize_entry("plan", &**plan)?;
                map.serialize_entry("item", &**resource)?;
                map.serialize_entry("action", action)?;
                map.serialize_entry("maximum", maximum)?;
                map.serialize_entry("usage", usage)?;
                if let Some(window) = window {
                    map.serialize_entry("resets", &window.end())?;
                }
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_states_and_allowed_serialise() {
        let allowed = Allowed {
            plan: Arc::from("free"),
            state: PlanState::Fallback {
                trial: Arc::from("pro"),
            },
            resource: Arc::from("clients"),
            action: Action::Create,
            limit: Limit::Limited(3),
            usage: 1,
            window: None,
        };
        assert_eq!(
            serde_json::to_string(&allowed).unwrap(),
            r#"{"plan":"free","state":"fallback","trial":"pro","item":"clients","action":"create","limit":3,"usage":1,"remaining":2}"#
        );
        let unlimited = Allowed {
            state: PlanState::Active,
            limit: Limit::Unlimited,
            ..allowed
        };
        assert_eq!(
            serde_json::to_string(&unlimited).unwrap(),
            r#"{"plan":"free","state":"active","item":"clients","action":"create","limit":null,"usage":1,"remaining":null}"#
        );
        assert_eq!(PlanState::Trial.as_str(), "trial");
        assert_eq!(PlanState::Default.as_str(), "default");
    }

    #[test]
    fn denial_bytes_and_plan() {
        let denial = Denial::NoPlan {
            resource: Arc::from("clients"),
            action: Action::custom("archive"),
        };
        assert_eq!(
            denial.to_json_bytes(),
            br#"{"reason":"subscription","plan":null,"item":"clients","action":"archive"}"#
        );
        assert_eq!(denial.plan(), None);
        let expired = Denial::Expired {
            plan: Arc::from("basic"),
            date: 1,
        };
        assert_eq!(expired.plan(), Some("basic"));
    }
}

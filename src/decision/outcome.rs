//! What a decision says: [`Allowed`], [`Denial`] and the [`PlanState`] of the plan that applied,
//! with their JSON forms.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::Name;
use crate::catalog::{Action, Limit, RatePer, Window};

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
    pub plan: Name,
    /// How the user came to be on it.
    pub state: PlanState,
    /// The resource the request touches.
    pub resource: Name,
    /// The action the request performs.
    pub action: Action,
    /// The limit on that action: the plan's, raised by the user's active add-ons.
    pub limit: Limit,
    /// The user's usage counted against the limit (in the current period, for a
    /// [`Limit::Periodic`] quota), before this request.
    pub usage: u64,
    /// The current period of a [`Limit::Periodic`] quota: its `end` is when the count resets.
    pub window: Option<Window>,
    /// The units the request takes ([`Cost`](crate::catalog::Cost)): 1 unless the catalog
    /// meters it; the estimate of a reported meter.
    pub cost: u64,
    /// How far past a soft limit ([`Overage`](crate::catalog::Overage)) the count is with this
    /// request: 0 within the limit. The response carries `Plan-Overage` when it is not 0.
    pub overage: u64,
    /// The credit pool the request draws from, if its meter names one.
    pub credits: Option<Credits>,
}

/// The credit pool an allowed request draws from: its allowance and what was used of it before
/// the request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credits {
    /// The pool's name.
    pub pool: Name,
    /// The pool's allowance: the plan's, raised by the user's active add-ons.
    pub limit: Limit,
    /// What was used of the allowance (in the current period, for a quota), before this
    /// request.
    pub usage: u64,
    /// How far past the allowance and the user's grants the pool is with this request, drawing
    /// on its [`Overage`](crate::catalog::Overage) (in the current period): 0 within them.
    pub overage: u64,
    /// The current period of a renewing pool.
    pub window: Option<Window>,
}

impl Credits {
    /// How much of the allowance is left after this usage (`None` when unlimited).
    pub fn remaining(&self) -> Option<u64> {
        self.limit
            .maximum()
            .map(|max| max.saturating_sub(self.usage))
    }
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

/// A denied request, rendered by default as a 403 (a 429 for [`Denial::RateLimited`]) with a
/// JSON body.
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
        /// The units the request takes: 1 unless the catalog meters the action.
        cost: u64,
    },
    /// The credit pool the request draws from cannot cover its cost: its allowance (and the
    /// user's grants) is used up, or the plan has no such pool.
    Credits {
        /// The plan that applied.
        plan: Arc<str>,
        /// The pool.
        pool: Arc<str>,
        /// The pool's allowance: the plan's, raised by the active add-ons (0 when the plan has
        /// no such pool).
        maximum: u64,
        /// What was used of the allowance (in the current period, for a renewing pool).
        usage: u64,
        /// The units the request would take.
        cost: u64,
        /// The current period of a renewing pool; its `end` is `resets`.
        window: Option<Window>,
    },
    /// A rate of the plan lets no more requests through for now (`429`): the action's own
    /// rate, or the plan-wide one.
    RateLimited {
        /// The plan that applied.
        plan: Arc<str>,
        /// The resource of the request.
        resource: Arc<str>,
        /// The action of the request.
        action: Action,
        /// Whether the plan-wide rate refused it (else the action's rate).
        plan_wide: bool,
        /// How many requests the rate allows per `per`.
        maximum: u64,
        /// The rate's period.
        per: RatePer,
        /// When the next request fits, in milliseconds from now.
        retry_after_ms: u64,
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
    /// `resets` follows `remaining`. A metered request adds its `cost` when it is more than 1,
    /// a request past a soft limit its `overage`, and a request that draws credits the pool:
    /// `"credits":{"pool":"ai","limit":1000,"usage":35,"remaining":965}` (with `resets` for a
    /// renewing pool, `overage` past the allowance and the grants).
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
        if self.cost > 1 {
            map.serialize_entry("cost", &self.cost)?;
        }
        if self.overage > 0 {
            map.serialize_entry("overage", &self.overage)?;
        }
        if let Some(credits) = &self.credits {
            map.serialize_entry("credits", credits)?;
        }
        map.end()
    }
}

impl Serialize for Credits {
    /// `{"pool":"ai","limit":1000,"usage":35,"remaining":965}`, and `resets` for a renewing
    /// pool.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("pool", &*self.pool)?;
        map.serialize_entry("limit", &self.limit)?;
        map.serialize_entry("usage", &self.usage)?;
        map.serialize_entry("remaining", &self.remaining())?;
        if let Some(window) = self.window {
            map.serialize_entry("resets", &window.end())?;
        }
        if self.overage > 0 {
            map.serialize_entry("overage", &self.overage)?;
        }
        map.end()
    }
}

impl Denial {
    /// The `reason` of the JSON body of every denial but [`Denial::Credits`]: `"subscription"`.
    pub const REASON: &'static str = "subscription";

    /// The `reason` of the JSON body of [`Denial::Credits`]: `"credits"`.
    pub const CREDITS_REASON: &'static str = "credits";

    /// The `reason` of the JSON body of [`Denial::RateLimited`]: `"rate_limited"`.
    pub const RATE_LIMITED_REASON: &'static str = "rate_limited";

    /// The `reason` of the denial's JSON body.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::Credits { .. } => Denial::CREDITS_REASON,
            Denial::RateLimited { .. } => Denial::RATE_LIMITED_REASON,
            _ => Denial::REASON,
        }
    }

    /// The status code of the default rendering: `429` for [`Denial::RateLimited`], `403`
    /// otherwise.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Denial::RateLimited { .. } => http::StatusCode::TOO_MANY_REQUESTS,
            _ => http::StatusCode::FORBIDDEN,
        }
    }

    /// When the count of the quota (or renewing pool) that was reached resets, in
    /// milliseconds since the Unix epoch; `None` for a lifetime limit.
    pub fn resets(&self) -> Option<u64> {
        match self {
            Denial::LimitReached {
                window: Some(window),
                ..
            }
            | Denial::Credits {
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
            Denial::Expired { plan, .. }
            | Denial::LimitReached { plan, .. }
            | Denial::Credits { plan, .. }
            | Denial::RateLimited { plan, .. } => Some(plan),
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
    ///   "action":"create","maximum":3,"usage":3}`, then `"cost"` for a request that takes more
    ///   than one unit, and for a quota `"resets"` last, when its count starts again
    ///   (milliseconds since the Unix epoch)
    /// * rate limited: `{"reason":"rate_limited","plan":"free","item":"api","action":"index",
    ///   "maximum":60,"per":"minute","retry_after_ms":1000}`
    /// * credits: `{"reason":"credits","plan":"pro","credits":"ai","maximum":1000,
    ///   "usage":998,"cost":5}`, `"cost"` when more than one unit, and `"resets"` last for a
    ///   renewing pool
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("reason", self.reason())?;
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
                cost,
            } => {
                map.serialize_entry("plan", &**plan)?;
                map.serialize_entry("item", &**resource)?;
                map.serialize_entry("action", action)?;
                map.serialize_entry("maximum", maximum)?;
                map.serialize_entry("usage", usage)?;
                if *cost > 1 {
                    map.serialize_entry("cost", cost)?;
                }
                if let Some(window) = window {
                    map.serialize_entry("resets", &window.end())?;
                }
            }
            Denial::RateLimited {
                plan,
                resource,
                action,
                maximum,
                per,
                retry_after_ms,
                ..
            } => {
                map.serialize_entry("plan", &**plan)?;
                map.serialize_entry("item", &**resource)?;
                map.serialize_entry("action", action)?;
                map.serialize_entry("maximum", maximum)?;
                map.serialize_entry("per", per)?;
                map.serialize_entry("retry_after_ms", retry_after_ms)?;
            }
            Denial::Credits {
                plan,
                pool,
                maximum,
                usage,
                cost,
                window,
            } => {
                map.serialize_entry("plan", &**plan)?;
                map.serialize_entry("credits", &**pool)?;
                map.serialize_entry("maximum", maximum)?;
                map.serialize_entry("usage", usage)?;
                if *cost > 1 {
                    map.serialize_entry("cost", cost)?;
                }
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
            plan: Name::from("free"),
            state: PlanState::Fallback {
                trial: Arc::from("pro"),
            },
            resource: Name::from("clients"),
            action: Action::Create,
            limit: Limit::Limited(3),
            usage: 1,
            window: None,
            cost: 1,
            overage: 0,
            credits: None,
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
        let metered = Allowed {
            cost: 5,
            credits: Some(Credits {
                pool: Name::from("ai"),
                limit: Limit::Limited(1000),
                usage: 35,
                overage: 0,
                window: None,
            }),
            ..unlimited.clone()
        };
        assert_eq!(
            serde_json::to_string(&metered).unwrap(),
            concat!(
                r#"{"plan":"free","state":"active","item":"clients","action":"create","limit":null,"usage":1,"remaining":null,"#,
                r#""cost":5,"credits":{"pool":"ai","limit":1000,"usage":35,"remaining":965}}"#
            )
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
        assert_eq!(expired.reason(), "subscription");
    }

    #[test]
    fn a_credits_denial_names_its_pool_cost_and_reset() {
        let window = crate::catalog::Period::Month.window(1_795_953_600_000);
        let denial = Denial::Credits {
            plan: Arc::from("pro"),
            pool: Arc::from("ai"),
            maximum: 1000,
            usage: 998,
            cost: 5,
            window: Some(window),
        };
        assert_eq!(denial.reason(), "credits");
        assert_eq!(denial.plan(), Some("pro"));
        assert_eq!(denial.resets(), Some(window.end()));
        assert_eq!(
            String::from_utf8(denial.to_json_bytes()).unwrap(),
            format!(
                r#"{{"reason":"credits","plan":"pro","credits":"ai","maximum":1000,"usage":998,"cost":5,"resets":{}}}"#,
                window.end()
            )
        );
        let one = Denial::Credits {
            plan: Arc::from("pro"),
            pool: Arc::from("ai"),
            maximum: 1000,
            usage: 998,
            cost: 1,
            window: None,
        };
        assert_eq!(
            one.to_json_bytes(),
            br#"{"reason":"credits","plan":"pro","credits":"ai","maximum":1000,"usage":998}"#
        );
    }
}

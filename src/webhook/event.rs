//! Entitlement events as the sender posts them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::DEFAULT_ACTIVE_STATUSES;

/// One entitlement event: the fields the receiver and the hooks read, and every other field of
/// the payload, kept as raw JSON in [`extra`](Self::extra).
///
/// Only `event_name` is required. Every listed field, when present and not `null`, must have the
/// listed type; otherwise the body is malformed and answered `400`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EntitlementEvent {
    /// The event's unique id; a redelivery carries the same id.
    #[serde(default)]
    pub event_id: Option<String>,
    /// `ACTIVATE`, `DEACTIVATE`, `ADDON_ACTIVATE`, `ADDON_DEACTIVATE`, or another event name.
    pub event_name: String,
    /// The logged-in user the event is about; `None` (or empty) for an anonymous user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The id of the anonymous user the event is about, when nobody is logged in.
    #[serde(default)]
    pub anonymous_user_id: Option<String>,
    /// The plan's id at the billing platform.
    #[serde(default)]
    pub plan: Option<String>,
    /// The add-on's id at the billing platform, in `ADDON_ACTIVATE` and `ADDON_DEACTIVATE`.
    #[serde(default)]
    pub addon: Option<String>,
    /// How many units of the add-on were bought (an `ADDON_ACTIVATE`; 1 when absent).
    #[serde(default)]
    pub quantity: Option<u64>,
    /// The store the purchase was made in (`APPLE_APP_STORE`, `STRIPE`, ...).
    #[serde(default)]
    pub store: Option<String>,
    /// The subscription's status (`AUTO_RENEWING`, `UNPAID`, ...).
    #[serde(default)]
    pub subscription_status: Option<String>,
    /// When the purchase was made, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub purchased_at_ms: Option<u64>,
    /// When the entitlement ends unless renewed, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub effective_next_renewal_at_ms: Option<u64>,
    /// Every other field of the payload.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// What the event does to the user's rights, as the receiver classified it.
    #[serde(skip, default = "Effect::none")]
    effect: Effect,
}

/// The kind of an event, from its `event_name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// `ACTIVATE`: the user is entitled to the plan.
    Activate,
    /// `DEACTIVATE`: the user is no longer entitled to the plan.
    Deactivate,
    /// `ADDON_ACTIVATE`: the user is entitled to the add-on (until the event's
    /// `effective_next_renewal_at_ms`, if it has one).
    AddonActivate,
    /// `ADDON_DEACTIVATE`: the user is no longer entitled to the add-on.
    AddonDeactivate,
    /// Any other event name: acknowledged, never applied.
    Other,
}

/// What an event does to the user's rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Effect {
    /// Grant the event's plan: an `ACTIVATE` whose `subscription_status` is active or absent.
    Grant,
    /// Take the event's plan away: a `DEACTIVATE`, or an `ACTIVATE` whose `subscription_status`
    /// is present and not an active status.
    Revoke,
    /// Grant the event's add-on: an `ADDON_ACTIVATE` whose `subscription_status` is active or
    /// absent.
    GrantAddon,
    /// Take the event's add-on away: an `ADDON_DEACTIVATE`, or an `ADDON_ACTIVATE` whose
    /// `subscription_status` is present and not an active status.
    RevokeAddon,
    /// Nothing: another event name.
    None,
}

impl Effect {
    fn none() -> Self {
        Effect::None
    }
}

impl EntitlementEvent {
    /// Parses an event from a raw JSON body, classifying it with the default active statuses
    /// (the receiver classifies with its configured ones).
    ///
    /// # Errors
    /// When the body is not a JSON object, has no string `event_name`, or a listed field has
    /// another type.
    pub fn from_slice(json: &[u8]) -> Result<Self, serde_json::Error> {
        let mut event: EntitlementEvent = serde_json::from_slice(json)?;
        event.classify(|status| DEFAULT_ACTIVE_STATUSES.contains(&status));
        Ok(event)
    }

    /// The event's kind: `ACTIVATE`, `DEACTIVATE`, `ADDON_ACTIVATE` and `ADDON_DEACTIVATE`
    /// match exactly (upper case).
    pub fn kind(&self) -> EventKind {
        match self.event_name.as_str() {
            "ACTIVATE" => EventKind::Activate,
            "DEACTIVATE" => EventKind::Deactivate,
            "ADDON_ACTIVATE" => EventKind::AddonActivate,
            "ADDON_DEACTIVATE" => EventKind::AddonDeactivate,
            _ => EventKind::Other,
        }
    }

    /// What the event does to the user's rights.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The logged-in user's id, or `None` for an event about an anonymous user (no `user_id`, or
    /// an empty one).
    pub fn user(&self) -> Option<&str> {
        self.user_id.as_deref().filter(|id| !id.is_empty())
    }

    pub(crate) fn classify(&mut self, is_active: impl Fn(&str) -> bool) {
        let inactive = self
            .subscription_status
            .as_deref()
            .is_some_and(|status| !is_active(status));
        self.effect = match self.kind() {
            EventKind::Activate if inactive => Effect::Revoke,
            EventKind::Activate => Effect::Grant,
            EventKind::Deactivate => Effect::Revoke,
            EventKind::AddonActivate if inactive => Effect::RevokeAddon,
            EventKind::AddonActivate => Effect::GrantAddon,
            EventKind::AddonDeactivate => Effect::RevokeAddon,
            EventKind::Other => Effect::None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_event() {
        let event = EntitlementEvent::from_slice(
            br#"{"event_name":"ACTIVATE","user_id":"u","plan":"pro"}"#,
        )
        .unwrap();
        assert_eq!(event.kind(), EventKind::Activate);
        assert_eq!(event.effect(), Effect::Grant);
        assert_eq!(event.user(), Some("u"));
        assert_eq!(event.plan.as_deref(), Some("pro"));
        assert!(event.extra.is_empty());
    }

    #[test]
    fn classification() {
        let parse = |json: &str| EntitlementEvent::from_slice(json.as_bytes()).unwrap();
        assert_eq!(
            parse(r#"{"event_name":"ACTIVATE","subscription_status":"IN_GRACE_PERIOD"}"#).effect(),
            Effect::Grant
        );
        assert_eq!(
            parse(r#"{"event_name":"ACTIVATE","subscription_status":"ON_HOLD"}"#).effect(),
            Effect::Revoke
        );
        assert_eq!(
            parse(r#"{"event_name":"DEACTIVATE","subscription_status":"AUTO_RENEWING"}"#).effect(),
            Effect::Revoke
        );
        assert_eq!(parse(r#"{"event_name":"activate"}"#).effect(), Effect::None);
        assert_eq!(
            parse(r#"{"event_name":"ADDON_ACTIVATE","addon":"more-clients"}"#).effect(),
            Effect::GrantAddon
        );
        assert_eq!(
            parse(r#"{"event_name":"ADDON_ACTIVATE","subscription_status":"AUTO_RENEWING"}"#)
                .effect(),
            Effect::GrantAddon
        );
        assert_eq!(
            parse(r#"{"event_name":"ADDON_ACTIVATE","subscription_status":"EXPIRED"}"#).effect(),
            Effect::RevokeAddon
        );
        assert_eq!(
            parse(r#"{"event_name":"ADDON_DEACTIVATE","subscription_status":"AUTO_RENEWING"}"#)
                .effect(),
            Effect::RevokeAddon
        );
        assert_eq!(
            parse(r#"{"event_name":"addon_activate"}"#).kind(),
            EventKind::Other
        );
        assert_eq!(
            parse(r#"{"event_name":"TRIAL_STARTED"}"#).kind(),
            EventKind::Other
        );
    }

    #[test]
    fn anonymous_and_empty_user() {
        let parse = |json: &str| EntitlementEvent::from_slice(json.as_bytes()).unwrap();
        assert_eq!(
            parse(r#"{"event_name":"ACTIVATE","anonymous_user_id":"a"}"#).user(),
            None
        );
        assert_eq!(
            parse(r#"{"event_name":"ACTIVATE","user_id":""}"#).user(),
            None
        );
        assert_eq!(
            parse(r#"{"event_name":"ACTIVATE","user_id":null}"#).user(),
            None
        );
    }

    #[test]
    fn malformed() {
        for json in [
            "",
            "[]",
            "{}",
            r#"{"event_name":1}"#,
            r#"{"event_name":"ACTIVATE","purchased_at_ms":"yesterday"}"#,
            r#"{"event_name":"ACTIVATE","purchased_at_ms":-1}"#,
            r#"{"event_name":"ACTIVATE","user_id":7}"#,
            r#"{"event_name":"ADDON_ACTIVATE","addon":3}"#,
            r#"{"event_name":"ADDON_ACTIVATE","quantity":-1}"#,
            r#"{"event_name":"ADDON_ACTIVATE","quantity":"2"}"#,
        ] {
            assert!(
                EntitlementEvent::from_slice(json.as_bytes()).is_err(),
                "{json}"
            );
        }
    }
}

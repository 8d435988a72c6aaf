//! [`WebhookOutcome`]: what a receiver did with a request, and the response that says it.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::VerifyError;

/// What the receiver did with a request, put in the response extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookOutcome {
    /// `200`: the hook applied the event and the user was invalidated.
    Applied,
    /// `200`: an event with this id was applied already (or concurrently); not applied again.
    Duplicate,
    /// `200`: an event about an anonymous user; acknowledged, not applied.
    Anonymous,
    /// `200`: an event other than `ACTIVATE`, `DEACTIVATE`, `ADDON_ACTIVATE` and
    /// `ADDON_DEACTIVATE` (for the Stripe receiver, other than a subscription's `created`,
    /// `updated`, `deleted`, `paused` and `resumed`); acknowledged, not applied.
    Unhandled,
    /// `200`: an event older than the last one applied for its subscription (the Stripe
    /// receiver); acknowledged, not applied.
    Outdated,
    /// `200`: an event whose user is not known: no `metadata.user_id`, and the customer lookup
    /// knows no user (the Stripe receiver); acknowledged, not applied.
    UnknownUser,
    /// `200`: an event about a subscription none of whose items the mapping names (the Stripe
    /// receiver); acknowledged, not applied.
    Unmapped,
    /// `401`: the request failed authentication.
    Unauthorized(VerifyError),
    /// `400`: the body could not be read or is not an event.
    Malformed,
    /// `413`: the body is larger than the configured limit.
    TooLarge,
    /// `405`: not a `POST`.
    MethodNotAllowed,
    /// `500`: the hook, or the invalidation after it, failed; the sender retries.
    HookFailed,
}

impl WebhookOutcome {
    /// Every `outcome` label of `tower_plans_webhook_events_total` (and of the Stripe
    /// receiver's `tower_plans_stripe_events_total`), in the order of [`slot`](Self::slot).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const LABELS: [&'static str; 12] = [
        "applied",
        "duplicate",
        "anonymous",
        "unhandled",
        "outdated",
        "unknown_user",
        "unmapped",
        "unauthorized",
        "malformed",
        "too_large",
        "method_not_allowed",
        "hook_failed",
    ];

    /// The place of this outcome's label in [`LABELS`](Self::LABELS).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn slot(&self) -> usize {
        match self {
            WebhookOutcome::Applied => 0,
            WebhookOutcome::Duplicate => 1,
            WebhookOutcome::Anonymous => 2,
            WebhookOutcome::Unhandled => 3,
            WebhookOutcome::Outdated => 4,
            WebhookOutcome::UnknownUser => 5,
            WebhookOutcome::Unmapped => 6,
            WebhookOutcome::Unauthorized(_) => 7,
            WebhookOutcome::Malformed => 8,
            WebhookOutcome::TooLarge => 9,
            WebhookOutcome::MethodNotAllowed => 10,
            WebhookOutcome::HookFailed => 11,
        }
    }

    /// The status code the outcome is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            WebhookOutcome::Applied
            | WebhookOutcome::Duplicate
            | WebhookOutcome::Anonymous
            | WebhookOutcome::Unhandled
            | WebhookOutcome::Outdated
            | WebhookOutcome::UnknownUser
            | WebhookOutcome::Unmapped => StatusCode::OK,
            WebhookOutcome::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebhookOutcome::Malformed => StatusCode::BAD_REQUEST,
            WebhookOutcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookOutcome::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            WebhookOutcome::HookFailed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body the outcome is answered with; a `401` names the [`VerifyError::code`], as
    /// in `{"error":"bad_signature"}`.
    pub fn body(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            WebhookOutcome::Applied => r#"{"status":"applied"}"#,
            WebhookOutcome::Duplicate => r#"{"status":"duplicate"}"#,
            WebhookOutcome::Anonymous => r#"{"status":"ignored","reason":"anonymous_user"}"#,
            WebhookOutcome::Unhandled => r#"{"status":"ignored","reason":"unhandled_event"}"#,
            WebhookOutcome::Outdated => r#"{"status":"ignored","reason":"outdated_event"}"#,
            WebhookOutcome::UnknownUser => r#"{"status":"ignored","reason":"unknown_user"}"#,
            WebhookOutcome::Unmapped => r#"{"status":"ignored","reason":"unmapped_subscription"}"#,
            WebhookOutcome::Unauthorized(error) => {
                return Cow::Owned(format!(r#"{{"error":"{}"}}"#, error.code()))
            }
            WebhookOutcome::Malformed => r#"{"error":"malformed_event"}"#,
            WebhookOutcome::TooLarge => r#"{"error":"body_too_large"}"#,
            WebhookOutcome::MethodNotAllowed => r#"{"error":"method_not_allowed"}"#,
            WebhookOutcome::HookFailed => r#"{"error":"hook_failed"}"#,
        })
    }

    /// The response: the status, the JSON body, and the outcome in the extensions.
    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let body = match self.body() {
            Cow::Borrowed(body) => Bytes::from_static(body.as_bytes()),
            Cow::Owned(body) => Bytes::from(body),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = self.status();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self == WebhookOutcome::MethodNotAllowed {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
        }
        response.extensions_mut().insert(self);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_bodies_carry_the_error_code() {
        assert_eq!(
            WebhookOutcome::Unauthorized(VerifyError::InvalidTimestamp).body(),
            r#"{"error":"invalid_timestamp"}"#
        );
        assert_eq!(
            WebhookOutcome::Unauthorized(VerifyError::BadSignature).body(),
            r#"{"error":"bad_signature"}"#
        );
        assert_eq!(WebhookOutcome::Applied.body(), r#"{"status":"applied"}"#);
        assert_eq!(
            WebhookOutcome::Unauthorized(VerifyError::MalformedHeader).body(),
            r#"{"error":"malformed_signature_header"}"#
        );
    }

    #[test]
    fn each_outcome_has_its_own_label() {
        let labelled = [
            (WebhookOutcome::Applied, "applied"),
            (WebhookOutcome::Duplicate, "duplicate"),
            (WebhookOutcome::Anonymous, "anonymous"),
            (WebhookOutcome::Unhandled, "unhandled"),
            (WebhookOutcome::Outdated, "outdated"),
            (WebhookOutcome::UnknownUser, "unknown_user"),
            (WebhookOutcome::Unmapped, "unmapped"),
            (
                WebhookOutcome::Unauthorized(VerifyError::BadSignature),
                "unauthorized",
            ),
            (WebhookOutcome::Malformed, "malformed"),
            (WebhookOutcome::TooLarge, "too_large"),
            (WebhookOutcome::MethodNotAllowed, "method_not_allowed"),
            (WebhookOutcome::HookFailed, "hook_failed"),
        ];
        assert_eq!(labelled.len(), WebhookOutcome::LABELS.len());
        for (outcome, label) in labelled {
            assert_eq!(
                WebhookOutcome::LABELS.get(outcome.slot()),
                Some(&label),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn every_ignored_outcome_is_a_200_with_a_reason() {
        for outcome in [
            WebhookOutcome::Anonymous,
            WebhookOutcome::Unhandled,
            WebhookOutcome::Outdated,
            WebhookOutcome::UnknownUser,
            WebhookOutcome::Unmapped,
        ] {
            assert_eq!(outcome.status(), StatusCode::OK);
            let body: serde_json::Value = serde_json::from_str(&outcome.body()).unwrap();
            assert_eq!(body["status"], "ignored", "{outcome:?}");
            assert!(body["reason"].is_string(), "{outcome:?}");
        }
    }
}

//! What a request becomes: the sample events parse, which events are applied and with what
//! effect, and the requests refused before any hook runs (malformed, too large, not a POST).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::ServiceExt;
use tower_plans::webhook::{
    Effect, EntitlementEvent, EventKind, WebhookConfig, WebhookOutcome, WebhookReceiver,
};

use crate::support::*;

#[test]
fn sample_activate_parses() {
    let event = EntitlementEvent::from_slice(SAMPLE_ACTIVATE.as_bytes()).unwrap();
    assert_eq!(event.kind(), EventKind::Activate);
    assert_eq!(event.effect(), Effect::Grant);
    assert_eq!(
        event.event_id.as_deref(),
        Some("5e45109f-7fac-45f8-a7e4-464892d5d35d")
    );
    assert_eq!(event.user(), Some("toto"));
    assert_eq!(event.anonymous_user_id, None);
    assert_eq!(event.plan.as_deref(), Some("monthly"));
    assert_eq!(event.store.as_deref(), Some("GOOGLE_PLAY_STORE"));
    assert_eq!(event.subscription_status.as_deref(), Some("AUTO_RENEWING"));
    assert_eq!(event.purchased_at_ms, Some(1_702_390_391_777));
    assert_eq!(event.effective_next_renewal_at_ms, Some(1_702_390_991_777));
    // The rest is kept as raw JSON.
    // 34 fields, 8 of them named (no `anonymous_user_id`).
    assert_eq!(event.extra.len(), 34 - 8);
    assert_eq!(event.extra["product"], "PURCHASELY_PLUS");
    assert_eq!(event.extra["api_version"], 3);
    assert_eq!(event.extra["plan_price_in_eur"], 9.99);
    assert_eq!(event.extra["is_family_shared"], false);
}

#[test]
fn sample_deactivate_parses() {
    let event = EntitlementEvent::from_slice(SAMPLE_DEACTIVATE.as_bytes()).unwrap();
    assert_eq!(event.kind(), EventKind::Deactivate);
    assert_eq!(event.effect(), Effect::Revoke);
    assert_eq!(
        event.event_id.as_deref(),
        Some("3ab7e67a-6c88-44fe-8804-39897d601136")
    );
    assert_eq!(event.user(), Some("toto"));
    assert_eq!(event.subscription_status.as_deref(), Some("UNPAID"));
    assert_eq!(event.purchased_at_ms, Some(1_702_390_691_777));
    assert_eq!(event.extra["event_created_at_ms"], 1_702_391_049_412_u64);
}

// --- which events are applied ------------------------------------------------------------

#[tokio::test]
async fn anonymous_user_is_acknowledged_not_applied() {
    let hook = Arc::new(RecordingHook::default());
    let receiver = receiver(Arc::clone(&hook));
    let body = r#"{"event_id":"e1","event_name":"ACTIVATE","anonymous_user_id":"anon-1","plan":"monthly"}"#;
    let (status, body, outcome) = send(&receiver, signed(body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"status":"ignored","reason":"anonymous_user"}"#);
    assert_eq!(outcome, WebhookOutcome::Anonymous);
    assert_eq!(hook.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn other_events_are_acknowledged_not_applied() {
    let hook = Arc::new(RecordingHook::default());
    let receiver = receiver(Arc::clone(&hook));
    let body = r#"{"event_id":"e2","event_name":"RENEWAL_DISABLED","user_id":"toto"}"#;
    let (status, body, outcome) = send(&receiver, signed(body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"status":"ignored","reason":"unhandled_event"}"#);
    assert_eq!(outcome, WebhookOutcome::Unhandled);
    assert_eq!(hook.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn activate_with_an_inactive_status_revokes() {
    let hook = Arc::new(RecordingHook::default());
    let receiver = receiver(Arc::clone(&hook));
    let body = r#"{"event_id":"e3","event_name":"ACTIVATE","user_id":"toto","plan":"monthly","subscription_status":"ON_HOLD"}"#;
    let (status, _, _) = send(&receiver, signed(body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hook.applied(), vec![("e3".to_owned(), Effect::Revoke)]);

    // With ON_HOLD configured as active, the same event grants.
    let hook = Arc::new(RecordingHook::default());
    let config = WebhookConfig::builder()
        .secret(SEED_SECRET)
        .active_statuses(["AUTO_RENEWING", "ON_HOLD"])
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
        .build()
        .unwrap();
    let receiver = WebhookReceiver::new(config, Arc::clone(&hook));
    send(&receiver, signed(body)).await;
    assert_eq!(hook.applied(), vec![("e3".to_owned(), Effect::Grant)]);
}

#[tokio::test]
async fn malformed_body_is_400() {
    let hook = Arc::new(RecordingHook::default());
    let receiver = receiver(Arc::clone(&hook));
    for body in [
        "",
        "not json",
        "[1,2]",
        r#"{"user_id":"toto"}"#,
        r#"{"event_name":"ACTIVATE","user_id":"toto","purchased_at_ms":"soon"}"#,
    ] {
        let (status, response, outcome) = send(&receiver, signed(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(response, r#"{"error":"malformed_event"}"#);
        assert_eq!(outcome, WebhookOutcome::Malformed);
    }
    assert_eq!(hook.calls.load(Ordering::SeqCst), 0);
}

// --- refused requests --------------------------------------------------------------------

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let hook = Arc::new(RecordingHook::default());
    let config = WebhookConfig::builder()
        .secret(SEED_SECRET)
        .body_limit(64)
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
        .build()
        .unwrap();
    let receiver = WebhookReceiver::new(config, Arc::clone(&hook));
    let (status, body, _) = send(&receiver, signed(SAMPLE_ACTIVATE)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body, r#"{"error":"body_too_large"}"#);
    assert_eq!(hook.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn only_post_is_accepted() {
    let receiver = receiver(Arc::new(RecordingHook::default()));
    let request = Request::get("/webhook")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = receiver.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
}

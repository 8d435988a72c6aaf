//! The webhook receiver: signatures, parsing, acknowledgement, redelivery and retries.
#![cfg(feature = "webhook")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_plans::webhook::{
    Effect, EntitlementEvent, EntitlementHook, EventKind, Invalidate, VerifyError, WebhookConfig,
    WebhookOutcome, WebhookReceiver,
};
use tower_plans::BoxError;

const SEED_SECRET: &str = "foobar";
const SEED_TIMESTAMP: &str = "1698322022";
const SEED_BODY: &str = r#"{"a_random_key":"a_random_value_ad"}"#;
const SEED_SIGNATURE: &str = "f3c2a452e9ea72f41107321aeaf7999f1054148866a710c9b23f9f501785e2a4";
const NOW: u64 = 1_698_322_022;

const SAMPLE_ACTIVATE: &str = r#"{
  "plan": "monthly",
  "store": "GOOGLE_PLAY_STORE",
  "product": "PURCHASELY_PLUS",
  "user_id": "toto",
  "event_id": "5e45109f-7fac-45f8-a7e4-464892d5d35d",
  "event_name": "ACTIVATE",
  "offer_type": "NONE",
  "api_version": 3,
  "device_type": "PHONE",
  "environment": "SANDBOX",
  "purchased_at": "2023-12-12T14:13:11.777Z",
  "purchase_type": "RENEWING_SUBSCRIPTION",
  "store_country": "FR",
  "next_renewal_at": "2023-12-12T14:23:11.777Z",
  "purchased_at_ms": 1702390391777,
  "event_created_at": "2023-12-12T14:19:26.120Z",
  "is_family_shared": false,
  "store_product_id": "com.purchasely.plus.monthly",
  "customer_currency": "EUR",
  "plan_price_in_eur": 9.99,
  "next_renewal_at_ms": 1702390991777,
  "event_created_at_ms": 1702390766120,
  "previous_offer_type": "NONE",
  "store_app_bundle_id": "com.purchasely.demo",
  "subscription_status": "AUTO_RENEWING",
  "store_transaction_id": "GPA.3355-5688-7970-28037..5",
  "original_purchased_at": "2023-12-12T13:48:16.233Z",
  "original_purchased_at_ms": 1702388896233,
  "cumulated_revenues_in_eur": 69.9,
  "effective_next_renewal_at": "2023-12-12T14:23:11.777Z",
  "purchasely_subscription_id": "subs_D7GnVQbUxvY6YxoeK6nhyPDkmyCVcfe",
  "effective_next_renewal_at_ms": 1702390991777,
  "store_original_transaction_id": "GPA.3355-5688-7970-28037",
  "plan_price_in_customer_currency": 9.99
}"#;

const SAMPLE_DEACTIVATE: &str = r#"{
  "plan": "monthly",
  "store": "GOOGLE_PLAY_STORE",
  "product": "PURCHASELY_PLUS",
  "user_id": "toto",
  "event_id": "3ab7e67a-6c88-44fe-8804-39897d601136",
  "event_name": "DEACTIVATE",
  "offer_type": "NONE",
  "api_version": 3,
  "device_type": "PHONE",
  "environment": "SANDBOX",
  "purchased_at": "2023-12-12T14:18:11.777Z",
  "purchase_type": "RENEWING_SUBSCRIPTION",
  "store_country": "FR",
  "next_renewal_at": "2023-12-12T14:23:11.777Z",
  "purchased_at_ms": 1702390691777,
  "event_created_at": "2023-12-12T14:24:09.412Z",
  "is_family_shared": false,
  "store_product_id": "com.purchasely.plus.monthly",
  "customer_currency": "EUR",
  "plan_price_in_eur": 9.99,
  "next_renewal_at_ms": 1702390991777,
  "event_created_at_ms": 1702391049412,
  "previous_offer_type": "NONE",
  "store_app_bundle_id": "com.purchasely.demo",
  "subscription_status": "UNPAID",
  "store_transaction_id": "GPA.3355-5688-7970-28037..5",
  "original_purchased_at": "2023-12-12T13:48:16.233Z",
  "original_purchased_at_ms": 1702388896233,
  "cumulated_revenues_in_eur": 69.9,
  "effective_next_renewal_at": "2023-12-12T14:23:11.777Z",
  "purchasely_subscription_id": "subs_D7GnVQbUxvY6YxoeK6nhyPDkmyCVcfe",
  "effective_next_renewal_at_ms": 1702390991777,
  "store_original_transaction_id": "GPA.3355-5688-7970-28037",
  "plan_price_in_customer_currency": 9.99
}"#;

fn config_at(now: u64) -> WebhookConfig {
    WebhookConfig::builder()
        .secret(SEED_SECRET)
        .clock(move || UNIX_EPOCH + Duration::from_secs(now))
        .build()
        .unwrap()
}

/// Records applied events; fails the first `failures` calls.
#[derive(Default)]
struct RecordingHook {
    applied: Mutex<Vec<(String, Effect)>>,
    calls: AtomicUsize,
    failures: usize,
}

impl RecordingHook {
    fn failing(failures: usize) -> Self {
        Self {
            failures,
            ..Self::default()
        }
    }

    fn applied(&self) -> Vec<(String, Effect)> {
        self.applied.lock().unwrap().clone()
    }
}

#[async_trait]
impl EntitlementHook for RecordingHook {
    async fn apply(&self, event: &EntitlementEvent) -> Result<(), BoxError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        // Let concurrent deliveries of the same event run into this one.
        tokio::task::yield_now().await;
        if call < self.failures {
            return Err("database unavailable".into());
        }
        let id = event.event_id.clone().unwrap_or_default();
        self.applied.lock().unwrap().push((id, event.effect()));
        Ok(())
    }
}

fn receiver(hook: Arc<RecordingHook>) -> WebhookReceiver<Arc<RecordingHook>> {
    WebhookReceiver::new(config_at(NOW), hook)
}

fn signed(body: &str) -> Request<Full<Bytes>> {
    let signature = config_at(NOW).sign(SEED_TIMESTAMP, body.as_bytes());
    request(body, Some(SEED_TIMESTAMP), Some(&signature))
}

fn request(body: &str, timestamp: Option<&str>, signature: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::post("/webhook").header("content-type", "application/json");
    if let Some(timestamp) = timestamp {
        builder = builder.header("x-purchasely-timestamp", timestamp);
    }
    if let Some(signature) = signature {
        builder = builder.header("x-purchasely-request-signature", signature);
    }
    builder
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap()
}

async fn send<H: EntitlementHook>(
    receiver: &WebhookReceiver<H>,
    request: Request<Full<Bytes>>,
) -> (StatusCode, String, WebhookOutcome) {
    let response: Response<Full<Bytes>> = receiver.clone().oneshot(request).await.unwrap();
    let status = response.status();
    assert_eq!(response.headers()["content-type"], "application/json");
    let outcome = *response.extensions().get::<WebhookOutcome>().unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), outcome)
}

// --- signatures ---------------------------------------------------------------------------

#[test]
fn seed_signature_example_verifies() {
    let config = config_at(NOW);
    assert_eq!(
        config.sign(SEED_TIMESTAMP, SEED_BODY.as_bytes()),
        SEED_SIGNATURE
    );
    assert_eq!(
        config.verify(SEED_TIMESTAMP, SEED_BODY.as_bytes(), SEED_SIGNATURE),
        Ok(())
    );
}

#[test]
fn one_changed_byte_fails() {
    let config = config_at(NOW);
    let mut body = SEED_BODY.as_bytes().to_vec();
    body[20] ^= 1;
    assert_eq!(
        config.verify(SEED_TIMESTAMP, &body, SEED_SIGNATURE),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        config.verify("1698322023", SEED_BODY.as_bytes(), SEED_SIGNATURE),
        Err(VerifyError::BadSignature)
    );
    let mut signature = SEED_SIGNATURE.to_owned();
    signature.replace_range(63..64, "5");
    assert_eq!(
        config.verify(SEED_TIMESTAMP, SEED_BODY.as_bytes(), &signature),
        Err(VerifyError::BadSignature)
    );
    // A different secret does not verify either.
    let other = WebhookConfig::builder().secret("foobaz").build().unwrap();
    assert_eq!(
        other.verify(SEED_TIMESTAMP, SEED_BODY.as_bytes(), SEED_SIGNATURE),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn timestamp_outside_the_tolerance_fails() {
    let verify =
        |now: u64| config_at(now).verify(SEED_TIMESTAMP, SEED_BODY.as_bytes(), SEED_SIGNATURE);
    assert_eq!(verify(NOW + 300), Ok(()));
    assert_eq!(verify(NOW - 300), Ok(()));
    assert_eq!(verify(NOW + 301), Err(VerifyError::StaleTimestamp));
    assert_eq!(verify(NOW - 301), Err(VerifyError::StaleTimestamp));

    let strict = WebhookConfig::builder()
        .secret(SEED_SECRET)
        .tolerance(Duration::from_secs(10))
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW + 11))
        .build()
        .unwrap();
    assert_eq!(
        strict.verify(SEED_TIMESTAMP, SEED_BODY.as_bytes(), SEED_SIGNATURE),
        Err(VerifyError::StaleTimestamp)
    );
}

#[test]
fn rotation_accepts_every_active_secret() {
    let config = WebhookConfig::builder()
        .secret("new-secret")
        .secret(SEED_SECRET)
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
        .build()
        .unwrap();
    // Signed with the old secret, still accepted.
    assert_eq!(
        config.verify(SEED_TIMESTAMP, SEED_BODY.as_bytes(), SEED_SIGNATURE),
        Ok(())
    );
    // The first secret signs, and verifies too.
    let signature = config.sign(SEED_TIMESTAMP, SEED_BODY.as_bytes());
    assert_ne!(signature, SEED_SIGNATURE);
    assert_eq!(
        config.verify(SEED_TIMESTAMP, SEED_BODY.as_bytes(), &signature),
        Ok(())
    );
}

#[test]
fn configuration_errors() {
    let error = WebhookConfig::builder().build().unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid `secret`: at least one secret is required"
    );
    let error = WebhookConfig::builder().secret("").build().unwrap_err();
    assert_eq!(error.to_string(), "invalid `secret`: a secret is empty");
    let error = WebhookConfig::builder()
        .secret("s")
        .signature_header("bad header")
        .build()
        .unwrap_err();
    assert!(error
        .to_string()
        .starts_with("invalid `signature_header`: `bad header`"));
    let config = WebhookConfig::builder()
        .secret("s")
        .signature_header("X-Signature")
        .build()
        .unwrap();
    assert_eq!(config.signature_header().as_str(), "x-signature");
}

#[test]
fn debug_never_shows_secrets() {
    let config = WebhookConfig::builder()
        .secret("super-secret-value")
        .build()
        .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("super-secret-value"), "{debug}");
    assert!(debug.contains("[1 redacted]"), "{debug}");
}

// --- parsing --------------------------------------------------------------------------------

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

// --- the receiver ---------------------------------------------------------------------------

#[tokio::test]
async fn signed_activate_is_applied() {
    let hook = Arc::new(RecordingHook::default());
    let receiver = receiver(Arc::clone(&hook));
    let (status, body, outcome) = send(&receiver, signed(SAMPLE_ACTIVATE)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"status":"applied"}"#);
    assert_eq!(outcome, WebhookOutcome::Applied);
    assert_eq!(
        hook.applied(),
        vec![(
            "5e45109f-7fac-45f8-a7e4-464892d5d35d".to_owned(),
            Effect::Grant
        )]
    );
}

#[tokio::test]
async fn redelivery_is_acknowledged_and_applied_once() {
    let hook = Arc::new(RecordingHook::default());
    let receiver = receiver(Arc::clone(&hook));
    let (status, body, _) = send(&receiver, signed(SAMPLE_DEACTIVATE)).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"status":"applied"}"#)
    );
    for _ in 0..3 {
        let (status, body, outcome) = send(&receiver, signed(SAMPLE_DEACTIVATE)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, r#"{"status":"duplicate"}"#);
        assert_eq!(outcome, WebhookOutcome::Duplicate);
    }
    assert_eq!(hook.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        hook.applied(),
        vec![(
            "3ab7e67a-6c88-44fe-8804-39897d601136".to_owned(),
            Effect::Revoke
        )]
    );
}

#[tokio::test]
async fn concurrent_deliveries_of_one_event_apply_once() {
    let hook = Arc::new(RecordingHook::default());
    let receiver = receiver(Arc::clone(&hook));
    let results =
        futures::future::join_all((0..20).map(|_| send(&receiver, signed(SAMPLE_ACTIVATE)))).await;
    let applied = results
        .iter()
        .filter(|(_, _, outcome)| *outcome == WebhookOutcome::Applied)
        .count();
    assert_eq!(applied, 1);
    assert!(results
        .iter()
        .all(|(status, _, _)| *status == StatusCode::OK));
    assert_eq!(hook.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn failing_hook_answers_500_and_the_retry_applies() {
    let hook = Arc::new(RecordingHook::failing(2));
    let receiver = receiver(Arc::clone(&hook));
    for _ in 0..2 {
        let (status, body, outcome) = send(&receiver, signed(SAMPLE_ACTIVATE)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, r#"{"error":"hook_failed"}"#);
        assert_eq!(outcome, WebhookOutcome::HookFailed);
    }
    assert!(hook.applied().is_empty());
    let (status, body, _) = send(&receiver, signed(SAMPLE_ACTIVATE)).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"status":"applied"}"#)
    );
    let (_, body, _) = send(&receiver, signed(SAMPLE_ACTIVATE)).await;
    assert_eq!(body, r#"{"status":"duplicate"}"#);
    assert_eq!(hook.calls.load(Ordering::SeqCst), 3);
    assert_eq!(hook.applied().len(), 1);
}

/// An invalidation that fails its first `failures` calls and records the users it reached.
struct FlakyInvalidation {
    failures: usize,
    calls: AtomicUsize,
    users: Mutex<Vec<String>>,
}

#[async_trait]
impl Invalidate for FlakyInvalidation {
    async fn invalidate_user(&self, id: &str) -> Result<(), BoxError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err("the bus is down".into());
        }
        self.users.lock().unwrap().push(id.to_owned());
        Ok(())
    }
}

#[tokio::test]
async fn a_failed_invalidation_answers_500_and_the_retry_applies_and_invalidates() {
    let hook = Arc::new(RecordingHook::default());
    let invalidation = Arc::new(FlakyInvalidation {
        failures: 1,
        calls: AtomicUsize::new(0),
        users: Mutex::new(Vec::new()),
    });
    let config = WebhookConfig::builder()
        .secret(SEED_SECRET)
        .clock(move || UNIX_EPOCH + Duration::from_secs(NOW))
        .invalidator(Arc::clone(&invalidation))
        .build()
        .unwrap();
    assert!(config.invalidator().is_some());
    let receiver = WebhookReceiver::new(config, Arc::clone(&hook));
    let (status, body, outcome) = send(&receiver, signed(SAMPLE_ACTIVATE)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, r#"{"error":"hook_failed"}"#);
    assert_eq!(outcome, WebhookOutcome::HookFailed);
    assert!(invalidation.users.lock().unwrap().is_empty());

    // The retry is not taken for a duplicate: it applies again, then invalidates.
    let (status, _, outcome) = send(&receiver, signed(SAMPLE_ACTIVATE)).await;
    assert_eq!((status, outcome), (StatusCode::OK, WebhookOutcome::Applied));
    assert_eq!(hook.applied().len(), 2);
    assert_eq!(*invalidation.users.lock().unwrap(), ["toto"]);
}

#[tokio::test]
async fn panicking_hook_answers_500() {
    struct Panics;
    #[async_trait]
    impl EntitlementHook for Panics {
        async fn apply(&self, _: &EntitlementEvent) -> Result<(), BoxError> {
            panic!("bug in the hook");
        }
    }
    let receiver = WebhookReceiver::new(config_at(NOW), Panics);
    let (status, body, _) = send(&receiver, signed(SAMPLE_ACTIVATE)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, r#"{"error":"hook_failed"}"#);
}

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

#[tokio::test]
async fn unauthenticated_requests_are_401() {
    let hook = Arc::new(RecordingHook::default());
    let receiver = receiver(Arc::clone(&hook));
    let signature = config_at(NOW).sign(SEED_TIMESTAMP, SAMPLE_ACTIVATE.as_bytes());

    let cases = [
        (
            request(SAMPLE_ACTIVATE, Some(SEED_TIMESTAMP), None),
            r#"{"error":"missing_signature"}"#,
        ),
        (
            request(SAMPLE_ACTIVATE, None, Some(&signature)),
            r#"{"error":"missing_timestamp"}"#,
        ),
        (
            request(SAMPLE_ACTIVATE, Some(SEED_TIMESTAMP), Some("deadbeef")),
            r#"{"error":"bad_signature"}"#,
        ),
        (
            request(SAMPLE_ACTIVATE, Some("1698322023"), Some(&signature)),
            r#"{"error":"bad_signature"}"#,
        ),
        (
            request(
                &SAMPLE_ACTIVATE.replace("monthly", "yearly"),
                Some(SEED_TIMESTAMP),
                Some(&signature),
            ),
            r#"{"error":"bad_signature"}"#,
        ),
    ];
    for (request, expected) in cases {
        let (status, body, _) = send(&receiver, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, expected);
    }

    // Correctly signed, but replayed long after.
    let late = WebhookReceiver::new(config_at(NOW + 3600), Arc::clone(&hook));
    let (status, body, outcome) = send(&late, signed(SAMPLE_ACTIVATE)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, r#"{"error":"stale_timestamp"}"#);
    assert_eq!(
        outcome,
        WebhookOutcome::Unauthorized(VerifyError::StaleTimestamp)
    );
    assert_eq!(hook.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn rotated_secret_is_accepted_by_the_receiver() {
    let hook = Arc::new(RecordingHook::default());
    let config = WebhookConfig::builder()
        .secret("the-new-secret")
        .secret(SEED_SECRET)
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
        .build()
        .unwrap();
    let receiver = WebhookReceiver::new(config, Arc::clone(&hook));
    // `signed` signs with SEED_SECRET, now the second secret.
    let (status, _, _) = send(&receiver, signed(SAMPLE_ACTIVATE)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hook.applied().len(), 1);
}

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

#[tokio::test]
async fn custom_header_names() {
    let hook = Arc::new(RecordingHook::default());
    let config = WebhookConfig::builder()
        .secret(SEED_SECRET)
        .signature_header("X-Signature")
        .timestamp_header("X-Signature-Timestamp")
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
        .build()
        .unwrap();
    let receiver = WebhookReceiver::new(config, Arc::clone(&hook));
    let request = Request::post("/webhook")
        .header("x-signature-timestamp", SEED_TIMESTAMP)
        .header(
            "x-signature",
            config_at(NOW).sign(SEED_TIMESTAMP, SAMPLE_ACTIVATE.as_bytes()),
        )
        .body(Full::new(Bytes::from_static(SAMPLE_ACTIVATE.as_bytes())))
        .unwrap();
    let (status, _, _) = send(&receiver, request).await;
    assert_eq!(status, StatusCode::OK);
    // The default headers are not read any more.
    let (status, body, _) = send(&receiver, signed(SAMPLE_ACTIVATE)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, r#"{"error":"missing_signature"}"#);
}

// --- the MemoryStore hook -------------------------------------------------------------------

mod memory_store_hook {
    use super::*;
    use tower_plans::webhook::MemoryStoreHook;
    use tower_plans::{subscriber::Assignment, MemoryStore};

    fn store() -> MemoryStore {
        MemoryStore::from_json(
            r#"[{"name": "free", "clients": 3}, {"name": "plus", "clients": 30}, {"name": "yearly", "clients": 300}]"#,
            r#"{"toto": {"plan": "free", "usage": {"clients": 3}}}"#,
        )
        .unwrap()
    }

    fn event(name: &str, id: &str, plan: &str) -> EntitlementEvent {
        EntitlementEvent::from_slice(
            format!(
                r#"{{"event_id":"{id}","event_name":"{name}","user_id":"toto","plan":"{plan}","purchased_at_ms":1702390391777,"effective_next_renewal_at_ms":1702390991777}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn activate_assigns_the_mapped_plan_and_keeps_usage() {
        let store = store();
        let hook = MemoryStoreHook::new(store.clone()).map_plan("monthly", "plus");
        hook.apply(&EntitlementEvent::from_slice(SAMPLE_ACTIVATE.as_bytes()).unwrap())
            .await
            .unwrap();
        let toto = store.subscriber("toto").unwrap();
        assert_eq!(
            toto.assignment,
            Some(Assignment::new("plus").joined_at(1_702_390_391_777))
        );
        assert_eq!(toto.usage.count("clients"), Some(3));

        // The sample DEACTIVATE (same billing plan) removes it.
        hook.apply(&EntitlementEvent::from_slice(SAMPLE_DEACTIVATE.as_bytes()).unwrap())
            .await
            .unwrap();
        assert_eq!(store.subscriber("toto").unwrap().assignment, None);
    }

    #[tokio::test]
    async fn a_late_deactivate_of_another_plan_keeps_the_current_one() {
        let store = store();
        let hook = MemoryStoreHook::new(store.clone());
        hook.apply(&event("ACTIVATE", "a", "yearly")).await.unwrap();
        hook.apply(&event("DEACTIVATE", "b", "plus")).await.unwrap();
        assert_eq!(
            store.subscriber("toto").unwrap().plan_name(),
            Some("yearly")
        );
        hook.apply(&event("DEACTIVATE", "c", "yearly"))
            .await
            .unwrap();
        assert_eq!(store.subscriber("toto").unwrap().plan_name(), None);
    }

    #[tokio::test]
    async fn expiry_margin_sets_expires() {
        let store = store();
        let hook = MemoryStoreHook::new(store.clone()).expiry_margin(Duration::from_secs(86_400));
        hook.apply(&event("ACTIVATE", "a", "plus")).await.unwrap();
        assert_eq!(
            store.subscriber("toto").unwrap().assignment,
            Some(
                Assignment::new("plus")
                    .joined_at(1_702_390_391_777)
                    .expires_at(1_702_390_991_777 + 86_400_000)
            )
        );
    }

    #[tokio::test]
    async fn an_unknown_plan_is_an_error_and_changes_nothing() {
        let store = store();
        let hook = MemoryStoreHook::new(store.clone());
        let error = hook
            .apply(&event("ACTIVATE", "a", "monthly"))
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the catalog has no plan `monthly` (billing plan `monthly`)"
        );
        assert_eq!(store.subscriber("toto").unwrap().plan_name(), Some("free"));
    }

    #[tokio::test]
    async fn unknown_users_are_created_by_activate_only() {
        let store = store();
        let hook = MemoryStoreHook::new(store.clone());
        let deactivate = EntitlementEvent::from_slice(
            br#"{"event_name":"DEACTIVATE","user_id":"new","plan":"plus"}"#,
        )
        .unwrap();
        hook.apply(&deactivate).await.unwrap();
        assert!(store.subscriber("new").is_none());
        let activate = EntitlementEvent::from_slice(
            br#"{"event_name":"ACTIVATE","user_id":"new","plan":"plus"}"#,
        )
        .unwrap();
        hook.apply(&activate).await.unwrap();
        assert_eq!(store.subscriber("new").unwrap().plan_name(), Some("plus"));
    }

    #[tokio::test]
    async fn receiver_with_the_store_hook_answers_500_for_an_unknown_plan_then_applies() {
        let store = store();
        let receiver = WebhookReceiver::new(config_at(NOW), MemoryStoreHook::new(store.clone()));
        // The billing plan `monthly` is not in the catalog: 500, and the sender retries.
        let (status, _, _) = send(&receiver, signed(SAMPLE_ACTIVATE)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        // Once the catalog knows the plan, the retry applies it.
        store.set_catalog(
            tower_plans::Catalog::from_json(r#"[{"name": "monthly", "clients": 10}]"#).unwrap(),
        );
        let (status, body, _) = send(&receiver, signed(SAMPLE_ACTIVATE)).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, r#"{"status":"applied"}"#)
        );
        assert_eq!(
            store.subscriber("toto").unwrap().plan_name(),
            Some("monthly")
        );
    }
}

// --- add-on events --------------------------------------------------------------------------

mod addon_events {
    use super::*;
    use tower_plans::subscriber::AddonGrant;
    use tower_plans::webhook::MemoryStoreHook;
    use tower_plans::MemoryStore;

    const PLANS: &str = r#"{"plans": [{"name": "free", "clients": 3}],
        "addons": [{"name": "more-clients", "limits": {"clients": 10}}]}"#;

    fn store() -> MemoryStore {
        MemoryStore::from_json(
            PLANS,
            r#"{"toto": {"plan": "free", "usage": {"clients": 3}}}"#,
        )
        .unwrap()
    }

    fn addon_event(name: &str, id: &str, addon: &str, extra: &str) -> String {
        format!(
            r#"{{"event_id":"{id}","event_name":"{name}","user_id":"toto","addon":"{addon}"{extra}}}"#
        )
    }

    #[tokio::test]
    async fn a_signed_addon_activate_grants_and_a_deactivate_revokes() {
        let store = store();
        let receiver = WebhookReceiver::new(config_at(NOW), MemoryStoreHook::new(store.clone()));
        let activate = addon_event(
            "ADDON_ACTIVATE",
            "a1",
            "more-clients",
            r#","quantity":2,"subscription_status":"AUTO_RENEWING","purchased_at_ms":1702390391777,"effective_next_renewal_at_ms":1704982391777"#,
        );
        let (status, body, outcome) = send(&receiver, signed(&activate)).await;
        assert_eq!(
            (status, body.as_str(), outcome),
            (
                StatusCode::OK,
                r#"{"status":"applied"}"#,
                WebhookOutcome::Applied
            )
        );
        let toto = store.subscriber("toto").unwrap();
        assert_eq!(
            toto.addons,
            [AddonGrant::new("more-clients")
                .starts_at(1_702_390_391_777)
                .expires_at(1_704_982_391_777)
                .quantity(2)]
        );
        assert_eq!(toto.plan_name(), Some("free"), "the plan is untouched");
        assert_eq!(toto.usage.count("clients"), Some(3));

        // Redelivered: acknowledged once, not granted twice.
        let (_, body, _) = send(&receiver, signed(&activate)).await;
        assert_eq!(body, r#"{"status":"duplicate"}"#);
        assert_eq!(store.subscriber("toto").unwrap().addons.len(), 1);

        // A renewal (a new event id) replaces the grant.
        let renewal = addon_event(
            "ADDON_ACTIVATE",
            "a2",
            "more-clients",
            r#","purchased_at_ms":1704982391777,"effective_next_renewal_at_ms":1707660791777"#,
        );
        assert_eq!(send(&receiver, signed(&renewal)).await.0, StatusCode::OK);
        assert_eq!(
            store.subscriber("toto").unwrap().addons,
            [AddonGrant::new("more-clients")
                .starts_at(1_704_982_391_777)
                .expires_at(1_707_660_791_777)]
        );

        let deactivate = addon_event("ADDON_DEACTIVATE", "a3", "more-clients", "");
        let (status, _, outcome) = send(&receiver, signed(&deactivate)).await;
        assert_eq!((status, outcome), (StatusCode::OK, WebhookOutcome::Applied));
        assert!(store.subscriber("toto").unwrap().addons.is_empty());
        assert_eq!(store.subscriber("toto").unwrap().plan_name(), Some("free"));
    }

    #[tokio::test]
    async fn an_addon_activate_with_an_inactive_status_revokes() {
        let store = store();
        store
            .grant_addon("toto", AddonGrant::new("more-clients"))
            .unwrap();
        let receiver = WebhookReceiver::new(config_at(NOW), MemoryStoreHook::new(store.clone()));
        let lapsed = addon_event(
            "ADDON_ACTIVATE",
            "b1",
            "more-clients",
            r#","subscription_status":"EXPIRED""#,
        );
        let (status, _, _) = send(&receiver, signed(&lapsed)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(store.subscriber("toto").unwrap().addons.is_empty());
    }

    #[tokio::test]
    async fn an_unknown_addon_answers_500_until_it_is_mapped() {
        let store = store();
        let event = addon_event("ADDON_ACTIVATE", "c1", "pack_10", "");
        let receiver = WebhookReceiver::new(config_at(NOW), MemoryStoreHook::new(store.clone()));
        let (status, body, outcome) = send(&receiver, signed(&event)).await;
        assert_eq!(
            (status, body.as_str(), outcome),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"hook_failed"}"#,
                WebhookOutcome::HookFailed
            )
        );
        assert!(store.subscriber("toto").unwrap().addons.is_empty());
        let error = MemoryStoreHook::new(store.clone())
            .apply(&EntitlementEvent::from_slice(event.as_bytes()).unwrap())
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the catalog has no add-on `pack_10` (billing add-on `pack_10`)"
        );

        // The retry, once the billing id is mapped, applies it.
        let mapped = WebhookReceiver::new(
            config_at(NOW),
            MemoryStoreHook::new(store.clone()).map_addon("pack_10", "more-clients"),
        );
        assert_eq!(send(&mapped, signed(&event)).await.0, StatusCode::OK);
        assert_eq!(
            store.subscriber("toto").unwrap().addons,
            [AddonGrant::new("more-clients")]
        );
    }

    #[tokio::test]
    async fn an_addon_event_without_an_addon_is_an_error() {
        let store = store();
        let hook = MemoryStoreHook::new(store.clone());
        for name in ["ADDON_ACTIVATE", "ADDON_DEACTIVATE"] {
            let event = EntitlementEvent::from_slice(
                format!(r#"{{"event_name":"{name}","user_id":"toto","plan":"more-clients"}}"#)
                    .as_bytes(),
            )
            .unwrap();
            let error = hook.apply(&event).await.unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("{name} for user `toto` names no add-on")
            );
        }
        assert_eq!(store.subscriber("toto").unwrap().plan_name(), Some("free"));
    }

    #[tokio::test]
    async fn addon_events_reach_a_custom_hook_with_their_effect() {
        let hook = Arc::new(RecordingHook::default());
        let receiver = receiver(Arc::clone(&hook));
        for (id, name) in [("d1", "ADDON_ACTIVATE"), ("d2", "ADDON_DEACTIVATE")] {
            let (status, _, _) = send(
                &receiver,
                signed(&addon_event(name, id, "more-clients", "")),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
        }
        assert_eq!(
            hook.applied(),
            [
                ("d1".to_owned(), Effect::GrantAddon),
                ("d2".to_owned(), Effect::RevokeAddon)
            ]
        );
        let event = EntitlementEvent::from_slice(
            addon_event("ADDON_ACTIVATE", "d3", "x", r#","quantity":3"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(event.kind(), EventKind::AddonActivate);
        assert_eq!(
            (event.addon.as_deref(), event.quantity),
            (Some("x"), Some(3))
        );
        assert!(event.extra.is_empty());
    }
}

// --- end to end over loopback ---------------------------------------------------------------

mod end_to_end {
    use super::*;
    use axum::routing::{get, post_service};
    use axum::Router;
    use http::Method;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use tower_plans::webhook::MemoryStoreHook;
    use tower_plans::{MemoryStore, PlanLimitLayer, RequestHead, UserCache, UserId};

    const SECRET: &str = "e2e-secret";

    struct App {
        base: String,
        client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
        config: WebhookConfig,
    }

    impl App {
        async fn start(store: MemoryStore) -> App {
            let layer = PlanLimitLayer::builder(store.clone())
                .base("/api")
                // A long-lived user cache: only invalidation can make a change visible.
                .user_cache(UserCache::time_to_live(Duration::from_secs(3600), 1_000))
                .extract_user(|head: &RequestHead<'_>| {
                    let user = head.headers().get("x-user")?.to_str().ok()?;
                    Some(UserId::from(user))
                })
                .build()
                .unwrap();
            let config = WebhookConfig::builder()
                .secret(SECRET)
                .invalidator(layer.invalidator())
                .build()
                .unwrap();
            let receiver = WebhookReceiver::new(config.clone(), MemoryStoreHook::new(store));
            let app = Router::new()
                .route(
                    "/api/clients",
                    get(|| async { "list" }).post(|| async { "created" }),
                )
                .layer(layer)
                .route("/webhooks/billing", post_service(receiver));

            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            App {
                base: format!("http://{address}"),
                client: Client::builder(TokioExecutor::new()).build_http(),
                config,
            }
        }

        async fn call(&self, request: Request<Full<Bytes>>) -> (StatusCode, String) {
            let response = self.client.request(request).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }

        async fn create_client(&self, user: &str) -> (StatusCode, String) {
            let request = Request::builder()
                .method(Method::POST)
                .uri(format!("{}/api/clients", self.base))
                .header("x-user", user)
                .body(Full::new(Bytes::new()))
                .unwrap();
            self.call(request).await
        }

        async fn event(&self, body: &str) -> (StatusCode, String) {
            let timestamp = std::time::SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
                .to_string();
            let request = Request::post(format!("{}/webhooks/billing", self.base))
                .header("content-type", "application/json")
                .header("x-purchasely-timestamp", &timestamp)
                .header(
                    "x-purchasely-request-signature",
                    self.config.sign(&timestamp, body.as_bytes()),
                )
                .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
                .unwrap();
            self.call(request).await
        }
    }

    #[tokio::test]
    async fn activate_then_deactivate_changes_what_the_next_request_may_do() {
        let store = MemoryStore::from_json(
            r#"[{"name": "free", "clients": 1}, {"name": "plus", "clients": 10}]"#,
            r#"{"toto": {"plan": "free", "usage": {"clients": 1}}}"#,
        )
        .unwrap();
        let app = App::start(store.clone()).await;

        let denied_on_free = r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":1,"usage":1}"#;
        assert_eq!(
            app.create_client("toto").await,
            (StatusCode::FORBIDDEN, denied_on_free.to_owned())
        );

        // The user cache is on: a change in the store alone is not seen.
        store.set_usage("toto", "clients", 0);
        assert_eq!(app.create_client("toto").await.0, StatusCode::FORBIDDEN);
        store.set_usage("toto", "clients", 1);

        // A signed ACTIVATE for a bigger plan: applied, the user invalidated, the next request
        // allowed.
        let activate = r#"{"event_id":"evt-1","event_name":"ACTIVATE","user_id":"toto","plan":"plus","store":"STRIPE","subscription_status":"AUTO_RENEWING","purchased_at_ms":1702390391777}"#;
        assert_eq!(
            app.event(activate).await,
            (StatusCode::OK, r#"{"status":"applied"}"#.to_owned())
        );
        assert_eq!(
            app.create_client("toto").await,
            (StatusCode::OK, "created".to_owned())
        );
        // Redelivered: acknowledged, not applied again.
        assert_eq!(
            app.event(activate).await,
            (StatusCode::OK, r#"{"status":"duplicate"}"#.to_owned())
        );

        // A DEACTIVATE: the next governed request is denied, now without a plan.
        let deactivate = r#"{"event_id":"evt-2","event_name":"DEACTIVATE","user_id":"toto","plan":"plus","subscription_status":"UNPAID"}"#;
        assert_eq!(
            app.event(deactivate).await,
            (StatusCode::OK, r#"{"status":"applied"}"#.to_owned())
        );
        assert_eq!(
            app.create_client("toto").await,
            (
                StatusCode::FORBIDDEN,
                r#"{"reason":"subscription","plan":null,"item":"clients","action":"create"}"#
                    .to_owned()
            )
        );

        // An unsigned event is refused and changes nothing.
        let request = Request::post(format!("{}/webhooks/billing", app.base))
            .body(Full::new(Bytes::from_static(activate.as_bytes())))
            .unwrap();
        assert_eq!(
            app.call(request).await,
            (
                StatusCode::UNAUTHORIZED,
                r#"{"error":"missing_signature"}"#.to_owned()
            )
        );
        assert_eq!(store.subscriber("toto").unwrap().plan_name(), None);
    }

    #[tokio::test]
    async fn an_addon_event_raises_the_limit_of_the_next_request() {
        let store = MemoryStore::from_json(
            r#"{"plans": [{"name": "free", "clients": 1}],
                "addons": [{"name": "more-clients", "limits": {"clients": 10}}]}"#,
            r#"{"toto": {"plan": "free", "usage": {"clients": 1}}}"#,
        )
        .unwrap();
        let app = App::start(store.clone()).await;
        let denied = |maximum: u64| {
            format!(
                r#"{{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":{maximum},"usage":1}}"#
            )
        };
        assert_eq!(
            app.create_client("toto").await,
            (StatusCode::FORBIDDEN, denied(1))
        );

        let activate = r#"{"event_id":"evt-a1","event_name":"ADDON_ACTIVATE","user_id":"toto","addon":"more-clients","quantity":1}"#;
        assert_eq!(
            app.event(activate).await,
            (StatusCode::OK, r#"{"status":"applied"}"#.to_owned())
        );
        assert_eq!(
            app.create_client("toto").await,
            (StatusCode::OK, "created".to_owned())
        );

        let deactivate = r#"{"event_id":"evt-a2","event_name":"ADDON_DEACTIVATE","user_id":"toto","addon":"more-clients"}"#;
        assert_eq!(
            app.event(deactivate).await,
            (StatusCode::OK, r#"{"status":"applied"}"#.to_owned())
        );
        assert_eq!(
            app.create_client("toto").await,
            (StatusCode::FORBIDDEN, denied(1))
        );
    }
}

//! Signatures: signing and verifying with the seed example, the tolerance on the timestamp,
//! rotated secrets, the configuration's errors, and the receiver's 401 answers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower_plans::webhook::{VerifyError, WebhookConfig, WebhookOutcome, WebhookReceiver};

use crate::support::*;

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

// --- at the receiver ---------------------------------------------------------------------

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

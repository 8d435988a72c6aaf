//! `Stripe-Signature`: each case answered as the scheme says, and nothing applied unless it is
//! valid.

use std::time::Duration;

use tower_plans::webhook::{VerifyError, WebhookOutcome};

use crate::*;

fn body() -> String {
    fixture(UPDATED).to_string()
}

/// Sends `body` with `header`; checks a refusal changed nothing.
async fn refused_with(harness: &Harness, header: Option<&str>, body: String, error: VerifyError) {
    let answer = harness.post(header, body).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{header:?}");
    assert_eq!(
        answer.outcome,
        WebhookOutcome::Unauthorized(error),
        "{header:?}"
    );
    assert_eq!(answer.body, refused(error.code()), "{header:?}");
    assert_eq!(harness.calls(), 0, "{header:?}: the hook was called");
    assert_eq!(harness.record("dana").unwrap().assignment, None);
}

#[tokio::test]
async fn a_valid_signature_applies_the_event() {
    let harness = Harness::new(|b| b);
    let body = body();
    let answer = harness.post(Some(&signed(SECRET, NOW, &body)), body).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, applied());
    assert_eq!(answer.outcome, WebhookOutcome::Applied);
    assert_eq!(harness.record("dana").unwrap().plan_name(), Some("pro"));
    // The crate's own signer agrees with the hmac crate.
    let text = fixture(UPDATED).to_string();
    assert_eq!(
        harness.config.sign(NOW, text.as_bytes()),
        signed(SECRET, NOW, &text)
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused() {
    let harness = Harness::new(|b| b);
    let header = signed("whsec_someone_else", NOW, &body());
    refused_with(&harness, Some(&header), body(), VerifyError::BadSignature).await;
}

#[tokio::test]
async fn a_tampered_body_is_refused() {
    let harness = Harness::new(|b| b);
    let header = signed(SECRET, NOW, &body());
    // The same event, with 50 seats instead of 5.
    let tampered = set(
        fixture(UPDATED),
        "/data/object/items/data/1/quantity",
        json!(50),
    );
    refused_with(
        &harness,
        Some(&header),
        tampered.to_string(),
        VerifyError::BadSignature,
    )
    .await;
    // One byte more (a trailing blank) is another body too.
    refused_with(
        &harness,
        Some(&header),
        format!("{} ", body()),
        VerifyError::BadSignature,
    )
    .await;
}

#[tokio::test]
async fn a_second_v1_that_matches_is_enough() {
    let harness = Harness::new(|b| b);
    let body = body();
    // While Stripe rolls the endpoint's secret it signs with the old one and the new one.
    let header = format!(
        "t={NOW},v1={},v1={}",
        v1("whsec_expired_one", NOW, &body),
        v1(SECRET, NOW, &body)
    );
    let answer = harness.post(Some(&header), body.clone()).await;
    assert_eq!(answer.outcome, WebhookOutcome::Applied);
    // In the other order, and beside a v0 and an unknown scheme.
    let harness = Harness::new(|b| b);
    let header = format!(
        "t={NOW},v1={},v0={},v2=abc,v1={}",
        v1(SECRET, NOW, &body),
        v1("whsec_test_mode", NOW, &body),
        v1("whsec_expired_one", NOW, &body)
    );
    let answer = harness.post(Some(&header), body).await;
    assert_eq!(answer.outcome, WebhookOutcome::Applied);
}

#[tokio::test]
async fn several_configured_secrets_each_verify() {
    let harness = Harness::new(|b| b.secret("whsec_previous"));
    let body = body();
    let answer = harness
        .post(Some(&signed("whsec_previous", NOW, &body)), body.clone())
        .await;
    assert_eq!(answer.outcome, WebhookOutcome::Applied);
    // The first secret signs.
    assert_eq!(
        harness.config.sign(NOW, body.as_bytes()),
        signed(SECRET, NOW, &body)
    );
}

#[tokio::test]
async fn a_stale_timestamp_is_refused_and_the_tolerance_is_inclusive() {
    let harness = Harness::new(|b| b);
    let body = body();
    let t = NOW - 301;
    refused_with(
        &harness,
        Some(&signed(SECRET, t, &body)),
        body.clone(),
        VerifyError::StaleTimestamp,
    )
    .await;
    let t = NOW - 300;
    let answer = harness.post(Some(&signed(SECRET, t, &body)), body).await;
    assert_eq!(answer.outcome, WebhookOutcome::Applied);
}

#[tokio::test]
async fn a_future_timestamp_within_the_tolerance_is_accepted() {
    let harness = Harness::new(|b| b);
    let body = body();
    let answer = harness
        .post(Some(&signed(SECRET, NOW + 299, &body)), body)
        .await;
    assert_eq!(answer.outcome, WebhookOutcome::Applied);
}

#[tokio::test]
async fn a_future_timestamp_beyond_the_tolerance_is_refused() {
    let harness = Harness::new(|b| b);
    let body = body();
    refused_with(
        &harness,
        Some(&signed(SECRET, NOW + 301, &body)),
        body,
        VerifyError::StaleTimestamp,
    )
    .await;
}

#[tokio::test]
async fn the_tolerance_is_configurable() {
    let harness = Harness::new(|b| b.tolerance(Duration::from_secs(10)));
    let body = body();
    refused_with(
        &harness,
        Some(&signed(SECRET, NOW - 11, &body)),
        body.clone(),
        VerifyError::StaleTimestamp,
    )
    .await;
    refused_with(
        &harness,
        Some(&signed(SECRET, NOW + 11, &body)),
        body.clone(),
        VerifyError::StaleTimestamp,
    )
    .await;
    let answer = harness
        .post(Some(&signed(SECRET, NOW - 10, &body)), body)
        .await;
    assert_eq!(answer.outcome, WebhookOutcome::Applied);
}

#[tokio::test]
async fn a_missing_header_is_refused() {
    let harness = Harness::new(|b| b);
    refused_with(&harness, None, body(), VerifyError::MissingSignature).await;
}

#[tokio::test]
async fn malformed_headers_are_refused() {
    let harness = Harness::new(|b| b);
    let body = body();
    let tag = v1(SECRET, NOW, &body);
    for header in [
        String::new(),
        "garbage".to_owned(),
        format!("v1={tag}"),
        format!("t={NOW}"),
        format!("t=soon,v1={tag}"),
        format!("t=-{NOW},v1={tag}"),
        format!("t={NOW},t={NOW},v1={tag}"),
        format!("t={NOW};v1={tag}"),
    ] {
        refused_with(
            &harness,
            Some(&header),
            body.clone(),
            VerifyError::MalformedHeader,
        )
        .await;
    }
    // A header that is not text.
    let request = http::Request::post("/webhooks/stripe")
        .header(
            "stripe-signature",
            http::HeaderValue::from_bytes(b"t=1,v1=\xff").unwrap(),
        )
        .body(Full::<Bytes>::from(body))
        .unwrap();
    let answer = answer(harness.receiver.clone().oneshot(request).await.unwrap()).await;
    assert_eq!(
        answer.outcome,
        WebhookOutcome::Unauthorized(VerifyError::MalformedHeader)
    );
}

#[tokio::test]
async fn a_v1_that_is_not_hex_is_a_bad_signature() {
    let harness = Harness::new(|b| b);
    let header = format!("t={NOW},v1=not-hex-at-all");
    refused_with(&harness, Some(&header), body(), VerifyError::BadSignature).await;
}

#[tokio::test]
async fn a_v0_alone_is_refused() {
    let harness = Harness::new(|b| b);
    let body = body();
    // A correct HMAC, but under the v0 scheme: not accepted.
    let header = format!("t={NOW},v0={}", v1(SECRET, NOW, &body));
    refused_with(&harness, Some(&header), body, VerifyError::MalformedHeader).await;
}

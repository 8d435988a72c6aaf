//! Delivery: an event is applied once, whether redelivered or delivered concurrently, and a
//! failing hook or invalidation answers 500 so that the sender's retry applies it; with the
//! `metrics` feature, each delivery counts once by its outcome.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use http::StatusCode;
use tower_plans::webhook::{
    Effect, EntitlementEvent, EntitlementHook, Invalidate, WebhookConfig, WebhookOutcome,
    WebhookReceiver,
};
use tower_plans::BoxError;

use crate::support::*;

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

/// With the `metrics` feature, each delivery counts once by its outcome.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn deliveries_count_by_outcome() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let receiver = receiver(Arc::new(RecordingHook::default()));
    send(&receiver, signed(SAMPLE_ACTIVATE)).await;
    send(&receiver, signed(SAMPLE_ACTIVATE)).await;
    send(&receiver, signed("not json")).await;
    send(
        &receiver,
        request(SAMPLE_ACTIVATE, Some(SEED_TIMESTAMP), None),
    )
    .await;
    let mut counted: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "tower_plans_webhook_events_total")
        .map(|(key, _, _, value)| {
            let labels: Vec<String> = key
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let DebugValue::Counter(n) = value else {
                panic!("a counter")
            };
            (labels.join(","), n)
        })
        .collect();
    counted.sort();
    assert_eq!(
        counted,
        [
            ("outcome=applied".to_owned(), 1),
            ("outcome=duplicate".to_owned(), 1),
            ("outcome=malformed".to_owned(), 1),
            ("outcome=unauthorized".to_owned(), 1),
        ]
    );
}

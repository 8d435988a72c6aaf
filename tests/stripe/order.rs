//! Deliveries out of order and more than once: older events ignored per subscription, each
//! event id applied once.

use tower_plans::webhook::WebhookOutcome;

use crate::*;

#[tokio::test]
async fn an_update_delivered_after_a_newer_one_is_ignored() {
    let harness = Harness::new(|b| b);
    let newer = variant(
        &fixture(UPDATED),
        "evt_newer",
        "updated",
        NOW - 10,
        "canceled",
    );
    let older = variant(
        &fixture(UPDATED),
        "evt_older",
        "updated",
        NOW - 20,
        "active",
    );
    assert_eq!(
        harness.deliver(&newer).await.outcome,
        WebhookOutcome::Applied
    );
    let answer = harness.deliver(&older).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.outcome, WebhookOutcome::Outdated);
    assert_eq!(answer.body, ignored("outdated_event"));
    // The older `active` did not bring the plan back.
    assert_eq!(harness.record("dana").unwrap().assignment, None);
    assert_eq!(harness.calls(), 1);
    // A newer one still applies.
    let newest = variant(
        &fixture(UPDATED),
        "evt_newest",
        "updated",
        NOW - 5,
        "active",
    );
    assert_eq!(
        harness.deliver(&newest).await.outcome,
        WebhookOutcome::Applied
    );
    assert_eq!(harness.record("dana").unwrap().plan_name(), Some("pro"));
}

#[tokio::test]
async fn within_one_second_created_comes_first_and_deleted_last() {
    let harness = Harness::new(|b| b);
    let t = NOW - 30;
    let updated = variant(&fixture(UPDATED), "evt_updated", "updated", t, "active");
    let created = variant(&fixture(UPDATED), "evt_created", "created", t, "incomplete");
    let deleted = variant(&fixture(UPDATED), "evt_deleted", "deleted", t, "canceled");
    assert_eq!(
        harness.deliver(&updated).await.outcome,
        WebhookOutcome::Applied
    );
    // The subscription's creation, `incomplete`, arrives after its activation of the same second.
    assert_eq!(
        harness.deliver(&created).await.outcome,
        WebhookOutcome::Outdated
    );
    assert_eq!(harness.record("dana").unwrap().plan_name(), Some("pro"));
    // Its deletion in that second does apply; then an update of that second is older.
    assert_eq!(
        harness.deliver(&deleted).await.outcome,
        WebhookOutcome::Applied
    );
    let again = variant(&fixture(UPDATED), "evt_updated_2", "updated", t, "active");
    assert_eq!(
        harness.deliver(&again).await.outcome,
        WebhookOutcome::Outdated
    );
    assert_eq!(harness.record("dana").unwrap().assignment, None);
}

#[tokio::test]
async fn subscriptions_are_ordered_apart() {
    let harness = Harness::new(|b| b);
    let first = variant(&fixture(UPDATED), "evt_a", "updated", NOW - 10, "active");
    assert_eq!(
        harness.deliver(&first).await.outcome,
        WebhookOutcome::Applied
    );
    // Another subscription's older event is not compared with the first's.
    let other = set(
        variant(
            &fixture(CREATED_TRIAL),
            "evt_b",
            "updated",
            NOW - 100,
            "active",
        ),
        "/data/object/metadata/user_id",
        json!("tess"),
    );
    assert_eq!(
        harness.deliver(&other).await.outcome,
        WebhookOutcome::Applied
    );
    assert_eq!(harness.record("tess").unwrap().plan_name(), Some("regular"));
}

#[tokio::test]
async fn the_same_event_id_twice_is_applied_once() {
    let harness = Harness::new(|b| b);
    let event = fixture(UPDATED);
    assert_eq!(
        harness.deliver(&event).await.outcome,
        WebhookOutcome::Applied
    );
    // Between the deliveries the record changes by other means; the redelivery must not undo it.
    harness.store.set_plan("dana", None);
    let answer = harness.deliver(&event).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.outcome, WebhookOutcome::Duplicate);
    assert_eq!(answer.body, json!({"status": "duplicate"}));
    assert_eq!(harness.calls(), 1);
    assert_eq!(harness.record("dana").unwrap().assignment, None);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_event_apply_it_once() {
    let harness = Harness::new(|b| b);
    let event = fixture(UPDATED);
    let answers = futures::future::join_all((0..8).map(|_| harness.deliver(&event))).await;
    let applied = answers
        .iter()
        .filter(|a| a.outcome == WebhookOutcome::Applied)
        .count();
    let duplicates = answers
        .iter()
        .filter(|a| a.outcome == WebhookOutcome::Duplicate)
        .count();
    assert_eq!((applied, duplicates), (1, 7));
    assert_eq!(harness.calls(), 1);
}

#[tokio::test]
async fn concurrent_events_of_one_subscription_end_with_the_newest() {
    // Ten events of one subscription delivered at once, newest first: whatever the
    // interleaving, the newest (canceled) applies and stays, and every other one either
    // applied before it or was ignored as older.
    let harness = Harness::new(|b| b);
    let events: Vec<Value> = (0..10)
        .map(|i| {
            let status = if i == 9 { "canceled" } else { "active" };
            variant(
                &fixture(UPDATED),
                &format!("evt_{i}"),
                "updated",
                NOW - 100 + i,
                status,
            )
        })
        .collect();
    let answers = futures::future::join_all(events.iter().rev().map(|e| harness.deliver(e))).await;
    assert_eq!(answers[0].outcome, WebhookOutcome::Applied, "the newest");
    let applied = answers
        .iter()
        .filter(|a| a.outcome == WebhookOutcome::Applied)
        .count();
    assert!(answers.iter().all(|a| matches!(
        a.outcome,
        WebhookOutcome::Applied | WebhookOutcome::Outdated
    )));
    assert_eq!(harness.calls(), applied);
    assert_eq!(harness.record("dana").unwrap().assignment, None);
    // An older one delivered now is ignored.
    assert_eq!(
        harness.deliver(&events[3]).await.outcome,
        WebhookOutcome::Duplicate
    );
    let late = variant(&fixture(UPDATED), "evt_late", "updated", NOW - 95, "active");
    assert_eq!(
        harness.deliver(&late).await.outcome,
        WebhookOutcome::Outdated
    );
}

#[tokio::test]
async fn a_failed_event_is_not_remembered_and_its_retry_applies() {
    let harness = Harness::new(|b| b);
    harness.hook.failures.store(1, Ordering::SeqCst);
    let event = fixture(UPDATED);
    let answer = harness.deliver(&event).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.outcome, WebhookOutcome::HookFailed);
    assert_eq!(answer.body, json!({"error": "hook_failed"}));
    assert_eq!(harness.record("dana").unwrap().assignment, None);
    // The failure did not count as the subscription's last event: an older one still applies.
    let older = variant(
        &fixture(UPDATED),
        "evt_older",
        "updated",
        NOW - 1000,
        "active",
    );
    assert_eq!(
        harness.deliver(&older).await.outcome,
        WebhookOutcome::Applied
    );
    // Stripe's retry of the failed event applies it.
    assert_eq!(
        harness.deliver(&event).await.outcome,
        WebhookOutcome::Applied
    );
    assert_eq!(harness.calls(), 3);
}

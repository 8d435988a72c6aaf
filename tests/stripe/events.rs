//! Statuses and periods: what each subscription state grants, judged by the plan layer at
//! chosen times.

use std::time::Duration;

use tower_plans::subscriber::{AddonGrant, Assignment};
use tower_plans::webhook::WebhookOutcome;

use crate::*;

/// The updated fixture with its status set.
fn with_status(status: &str) -> Value {
    set(fixture(UPDATED), "/data/object/status", json!(status))
}

#[tokio::test]
async fn active_grants_the_plan_until_the_period_end_plus_the_grace() {
    let harness = Harness::new(|b| b.grace(Duration::from_secs(3600)));
    assert_eq!(
        harness.create("dana", "clients").await.1,
        no_plan("clients")
    );

    let answer = harness.deliver(&fixture(UPDATED)).await;
    assert_eq!(answer.outcome, WebhookOutcome::Applied);
    let record = harness.record("dana").unwrap();
    let expires = PERIOD_END * 1000 + HOUR_MS;
    assert_eq!(
        record.assignment,
        Some(
            Assignment::new("pro")
                .joined_at(1_711_929_600_000)
                .expires_at(expires)
        )
    );
    // The usage is kept.
    assert_eq!(record.usage.count("clients"), Some(3));

    harness.at(expires - 1);
    let (status, decision) = harness.create("dana", "clients").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(decision, json!({"plan": "pro", "limit": 30, "usage": 3}));
    harness.at(expires);
    let (status, denial) = harness.create("dana", "clients").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        denial,
        json!({"reason": "subscription", "plan": "pro", "expired": true, "date": expires})
    );
}

#[tokio::test]
async fn the_default_grace_is_a_day() {
    let harness = Harness::new(|b| b);
    harness.deliver(&fixture(UPDATED)).await;
    let plan = harness.record("dana").unwrap().assignment.clone().unwrap();
    assert_eq!(plan.expires, Some(PERIOD_END * 1000 + DAY_MS));
}

#[tokio::test]
async fn trialing_grants_the_plan_as_a_trial_until_trial_end() {
    let harness = Harness::new(|b| b);
    let answer = harness.deliver(&fixture(CREATED_TRIAL)).await;
    assert_eq!(answer.outcome, WebhookOutcome::Applied);
    let record = harness.record("tess").unwrap();
    assert_eq!(
        record.assignment,
        Some(
            Assignment::new("regular")
                .as_trial()
                .joined_at(TRIAL_START * 1000)
                .expires_at(TRIAL_END * 1000)
        )
    );

    harness.at(TRIAL_END * 1000 - 1);
    let (status, decision) = harness.create("tess", "clients").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        decision,
        json!({"plan": "regular", "limit": 10, "usage": 2})
    );
    // At trial_end the trial is over: the catalog's fallback, free (1 client), applies.
    harness.at(TRIAL_END * 1000);
    let (status, denial) = harness.create("tess", "clients").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(denial["plan"], json!("free"));
    assert_eq!(denial["maximum"], json!(1));
}

#[tokio::test]
async fn past_due_keeps_the_plan_through_its_grace_then_none() {
    let harness = Harness::new(|b| b.past_due_grace(Duration::from_secs(3 * 24 * 3600)));
    let answer = harness.deliver(&with_status("past_due")).await;
    assert_eq!(answer.outcome, WebhookOutcome::Applied);
    let until = PERIOD_END * 1000 + 3 * DAY_MS;
    let plan = harness.record("dana").unwrap().assignment.clone().unwrap();
    assert_eq!(
        (&*plan.plan, plan.trial, plan.expires),
        ("pro", false, Some(until))
    );
    // The seats last as long.
    assert_eq!(
        harness.stripe_grants("dana"),
        [AddonGrant::new("seats")
            .quantity(5)
            .expires_at(until)
            .source("stripe")]
    );

    harness.at(PERIOD_END * 1000);
    assert_eq!(
        harness.create("dana", "clients").await.0,
        StatusCode::CREATED
    );
    harness.at(until - 1);
    assert_eq!(
        harness.create("dana", "clients").await.0,
        StatusCode::CREATED
    );
    harness.at(until);
    let (status, denial) = harness.create("dana", "clients").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(denial["expired"], json!(true));
    assert_eq!(denial["date"], json!(until));
    // Without a past-due grace (the default), it ends with the period.
    let harness = Harness::new(|b| b);
    harness.deliver(&with_status("past_due")).await;
    let plan = harness.record("dana").unwrap().assignment.clone().unwrap();
    assert_eq!(plan.expires, Some(PERIOD_END * 1000));
}

#[tokio::test]
async fn canceled_takes_the_plan_and_the_stripe_addons_away() {
    let harness = Harness::new(|b| b);
    harness.deliver(&fixture(UPDATED)).await;
    assert_eq!(
        harness.create("dana", "clients").await.0,
        StatusCode::CREATED
    );

    let canceled = variant(
        &fixture(UPDATED),
        "evt_canceled",
        "updated",
        NOW - 1,
        "canceled",
    );
    let answer = harness.deliver(&canceled).await;
    assert_eq!(answer.outcome, WebhookOutcome::Applied);
    let record = harness.record("dana").unwrap();
    assert_eq!(record.assignment, None);
    assert!(record.addons.is_empty());
    assert_eq!(record.cycle_anchor, None);
    let (status, denial) = harness.create("dana", "clients").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(denial, no_plan("clients"));
}

#[tokio::test]
async fn a_deleted_event_grants_nothing_whatever_its_status() {
    let harness = Harness::new(|b| b);
    harness.deliver(&fixture(UPDATED)).await;
    // A deleted subscription is `canceled`; even one that says otherwise grants nothing.
    let deleted = variant(
        &fixture(UPDATED),
        "evt_deleted",
        "deleted",
        NOW - 1,
        "active",
    );
    assert_eq!(
        harness.deliver(&deleted).await.outcome,
        WebhookOutcome::Applied
    );
    assert_eq!(harness.record("dana").unwrap().assignment, None);
    assert_eq!(
        harness.create("dana", "clients").await.1,
        no_plan("clients")
    );
}

#[tokio::test]
async fn every_other_status_grants_nothing() {
    for status in [
        "unpaid",
        "canceled",
        "incomplete",
        "incomplete_expired",
        "paused",
        "a_status_stripe_adds_later",
    ] {
        let harness = Harness::new(|b| b);
        // dana holds pro from an earlier event; this one takes it away.
        harness.deliver(&fixture(UPDATED)).await;
        let event = variant(&fixture(UPDATED), "evt_2", "updated", NOW - 1, status);
        assert_eq!(
            harness.deliver(&event).await.outcome,
            WebhookOutcome::Applied,
            "{status}"
        );
        let record = harness.record("dana").unwrap();
        assert_eq!(record.assignment, None, "{status}");
        assert!(harness.stripe_grants("dana").is_empty(), "{status}");
        assert_eq!(
            harness.create("dana", "clients").await.0,
            StatusCode::FORBIDDEN,
            "{status}"
        );
    }
}

#[tokio::test]
async fn paused_then_resumed() {
    let harness = Harness::new(|b| b);
    let paused = variant(
        &fixture(UPDATED),
        "evt_paused",
        "paused",
        NOW - 10,
        "paused",
    );
    assert_eq!(
        harness.deliver(&paused).await.outcome,
        WebhookOutcome::Applied
    );
    assert_eq!(
        harness.create("dana", "clients").await.0,
        StatusCode::FORBIDDEN
    );
    let resumed = variant(
        &fixture(UPDATED),
        "evt_resumed",
        "resumed",
        NOW - 5,
        "active",
    );
    assert_eq!(
        harness.deliver(&resumed).await.outcome,
        WebhookOutcome::Applied
    );
    assert_eq!(
        harness.create("dana", "clients").await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn periods_are_read_from_the_items_or_from_the_subscription() {
    // API 2025-03-31: on the items (the fixture).
    let on_items = Harness::new(|b| b);
    on_items.deliver(&fixture(UPDATED)).await;
    // An older API version: on the subscription, not on the items.
    let mut legacy = fixture(UPDATED);
    for item in legacy["data"]["object"]["items"]["data"]
        .as_array_mut()
        .unwrap()
    {
        let item = item.as_object_mut().unwrap();
        item.remove("current_period_start");
        item.remove("current_period_end");
    }
    let legacy = set(legacy, "/api_version", json!("2024-06-20"));
    let object = legacy["data"]["object"].clone();
    let mut object = object.as_object().unwrap().clone();
    object.insert("current_period_start".into(), json!(PERIOD_START));
    object.insert("current_period_end".into(), json!(PERIOD_END));
    let legacy = set(legacy, "/data/object", Value::Object(object));
    let on_subscription = Harness::new(|b| b);
    assert_eq!(
        on_subscription.deliver(&legacy).await.outcome,
        WebhookOutcome::Applied
    );
    let a = on_items.record("dana").unwrap();
    let b = on_subscription.record("dana").unwrap();
    assert_eq!(a.assignment, b.assignment);
    assert_eq!(a.addons, b.addons);
    assert_eq!(a.cycle_anchor, b.cycle_anchor);
    assert_eq!(
        b.assignment.as_ref().unwrap().expires,
        Some(PERIOD_END * 1000 + DAY_MS)
    );
    // Where both are given, the item's period counts.
    let mut both = set(legacy, "/id", json!("evt_both"));
    both["data"]["object"]["items"]["data"][0]["current_period_end"] = json!(PERIOD_END + 7);
    let harness = Harness::new(|b| b.grace(Duration::ZERO));
    harness.deliver(&both).await;
    assert_eq!(
        harness
            .record("dana")
            .unwrap()
            .assignment
            .as_ref()
            .unwrap()
            .expires,
        Some((PERIOD_END + 7) * 1000)
    );
}

#[tokio::test]
async fn the_cycle_anchor_follows_the_billing_cycle() {
    // The billing cycle anchor (2024-04-01) is before the current period (2024-05-01): it is
    // the anchor, so that a cycle anchored on a month's end keeps Stripe's days.
    let harness = Harness::new(|b| b);
    harness.deliver(&fixture(UPDATED)).await;
    assert_eq!(
        harness.record("dana").unwrap().cycle_anchor,
        Some(1_711_929_600_000)
    );
    // During a trial the anchor (the trial's end) is ahead: the period's start is the anchor.
    harness.deliver(&fixture(CREATED_TRIAL)).await;
    assert_eq!(
        harness.record("tess").unwrap().cycle_anchor,
        Some(TRIAL_START * 1000)
    );
    // Without a billing cycle anchor, the period's start.
    let harness = Harness::new(|b| b);
    let event = set(
        fixture(UPDATED),
        "/data/object/billing_cycle_anchor",
        Value::Null,
    );
    harness.deliver(&event).await;
    assert_eq!(
        harness.record("dana").unwrap().cycle_anchor,
        Some(PERIOD_START * 1000)
    );
}

//! The receiver's other answers: methods, sizes, malformed events, other event types, hooks
//! that fail or do not replace, and the invalidation of a cached user.

use std::time::Duration;

use tower_plans::stripe::StripeReceiver;
use tower_plans::webhook::{Invalidate, WebhookOutcome};
use tower_plans::UserCache;

use crate::*;

#[tokio::test]
async fn only_post_is_accepted() {
    let harness = Harness::new(|b| b);
    let body = fixture(UPDATED).to_string();
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let response = harness
            .receiver
            .clone()
            .oneshot(method_request(method.clone(), &body))
            .await
            .unwrap();
        assert_eq!(response.headers().get("allow").unwrap(), "POST");
        let answer = answer(response).await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    assert_eq!(harness.calls(), 0);
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let harness = Harness::new(|b| b.body_limit(1024));
    let answer = harness.deliver(&fixture(UPDATED)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.body, json!({"error": "body_too_large"}));
    assert_eq!(harness.calls(), 0);
}

#[tokio::test]
async fn malformed_events_are_400() {
    let harness = Harness::new(|b| b);
    let updated = fixture(UPDATED);
    let mut without_items = updated.clone();
    without_items["data"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("items");
    let bodies = [
        "".to_owned(),
        "not json".to_owned(),
        "[]".to_owned(),
        "{}".to_owned(),
        json!({"id": "evt_1", "type": "customer.subscription.updated", "created": NOW}).to_string(),
        without_items.to_string(),
        set(updated.clone(), "/created", json!("yesterday")).to_string(),
        set(updated.clone(), "/data/object/status", json!(null)).to_string(),
        set(
            updated.clone(),
            "/data/object/items/data/1/quantity",
            json!(-5),
        )
        .to_string(),
        set(
            updated.clone(),
            "/data/object/items/data/0/price/lookup_key",
            json!(7),
        )
        .to_string(),
        set(updated.clone(), "/data/object/metadata", json!(["dana"])).to_string(),
        set(updated.clone(), "/data/object/object", json!("invoice")).to_string(),
        "\u{0}\u{ff}".to_owned(),
    ];
    for body in bodies {
        let header = signed(SECRET, NOW, &body);
        let answer = harness.post(Some(&header), body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.body, json!({"error": "malformed_event"}));
    }
    assert_eq!(harness.calls(), 0);
}

#[tokio::test]
async fn other_event_types_are_acknowledged_and_not_applied() {
    let harness = Harness::new(|b| b);
    for kind in [
        "invoice.paid",
        "customer.subscription.trial_will_end",
        "customer.subscription.pending_update_applied",
        "checkout.session.completed",
    ] {
        let event = set(fixture(UPDATED), "/type", json!(kind));
        let answer = harness.deliver(&event).await;
        assert_eq!(answer.status, StatusCode::OK, "{kind}");
        assert_eq!(answer.outcome, WebhookOutcome::Unhandled);
        assert_eq!(answer.body, ignored("unhandled_event"));
    }
    // Their data need not be a subscription.
    let invoice = json!({"id": "evt_inv", "type": "invoice.paid", "created": NOW,
                         "data": {"object": {"id": "in_1", "object": "invoice"}}});
    assert_eq!(
        harness.deliver(&invoice).await.outcome,
        WebhookOutcome::Unhandled
    );
    assert_eq!(harness.calls(), 0);
    assert_eq!(harness.record("dana").unwrap().assignment, None);
}

/// A hook written before `replace` existed: it applies the `webhook` module's events only.
struct OldHook;

#[async_trait]
impl EntitlementHook for OldHook {
    async fn apply(&self, _event: &EntitlementEvent) -> Result<(), BoxError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_hook_that_does_not_replace_answers_500_so_stripe_retries() {
    let config = mapped(StripeConfig::builder().secret(SECRET))
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
        .build()
        .unwrap();
    // Through an Arc<dyn> too, which must forward `replace`.
    let hook: Arc<dyn EntitlementHook> = Arc::new(OldHook);
    let receiver = StripeReceiver::new(config.clone(), hook);
    let body = fixture(UPDATED).to_string();
    let request = Request::post("/webhooks/stripe")
        .header("stripe-signature", config.sign(NOW, body.as_bytes()))
        .body(Full::<Bytes>::from(body))
        .unwrap();
    let old = answer(receiver.oneshot(request).await.unwrap()).await;
    assert_eq!(old.outcome, WebhookOutcome::HookFailed);

    // A forwarding Arc<dyn> reaches a hook that does replace.
    let store = MemoryStore::from_json(CATALOG, USERS).unwrap();
    let hook: Arc<dyn EntitlementHook> = Arc::new(MemoryStoreHook::new(store.clone()));
    let receiver = StripeReceiver::new(config.clone(), Box::new(hook));
    let body = fixture(UPDATED).to_string();
    let request = Request::post("/webhooks/stripe")
        .header("stripe-signature", config.sign(NOW, body.as_bytes()))
        .body(Full::<Bytes>::from(body))
        .unwrap();
    let answer = answer(receiver.oneshot(request).await.unwrap()).await;
    assert_eq!(answer.outcome, WebhookOutcome::Applied);
    assert_eq!(store.subscriber("dana").unwrap().plan_name(), Some("pro"));
}

#[tokio::test]
async fn a_name_the_catalog_does_not_know_fails_and_changes_nothing() {
    let harness = Harness::with_builder(|b| b.plan("pro_monthly", "platinum"));
    let answer = harness.deliver(&fixture(UPDATED)).await;
    assert_eq!(answer.outcome, WebhookOutcome::HookFailed);
    assert_eq!(harness.record("dana").unwrap().assignment, None);
    let harness = Harness::new(|b| b.addon("seat_monthly", "extra-seats"));
    // The price id is not mapped, the lookup key is (to an add-on the catalog lacks).
    let answer = harness.deliver(&fixture(UPDATED)).await;
    assert_eq!(answer.outcome, WebhookOutcome::HookFailed);
    assert_eq!(harness.record("dana").unwrap().assignment, None);
}

#[tokio::test]
async fn rights_that_grant_nothing_leave_an_unknown_user_unknown() {
    let harness = Harness::new(|b| b);
    let event = set(
        variant(&fixture(UPDATED), "evt_x", "deleted", NOW, "canceled"),
        "/data/object/metadata/user_id",
        json!("nobody"),
    );
    assert_eq!(
        harness.deliver(&event).await.outcome,
        WebhookOutcome::Applied
    );
    assert_eq!(harness.record("nobody"), None);
    // Rights that grant something create the user.
    let event = set(
        fixture(UPDATED),
        "/data/object/metadata/user_id",
        json!("newcomer"),
    );
    let event = set(event, "/data/object/id", json!("sub_other"));
    assert_eq!(
        harness.deliver(&event).await.outcome,
        WebhookOutcome::Applied
    );
    assert_eq!(harness.record("newcomer").unwrap().plan_name(), Some("pro"));
}

/// Counts invalidations; fails when told to.
#[derive(Default)]
struct Invalidations {
    users: std::sync::Mutex<Vec<String>>,
    fail: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Invalidate for Invalidations {
    async fn invalidate_user(&self, id: &str) -> Result<(), BoxError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err("the bus is down".into());
        }
        self.users.lock().unwrap().push(id.to_owned());
        Ok(())
    }
}

#[tokio::test]
async fn an_applied_event_invalidates_the_cached_user() {
    let store = MemoryStore::from_json(CATALOG, USERS).unwrap();
    let layer = PlanLimitLayer::builder(store.clone())
        .clock(|| NOW * 1000)
        .user_cache(UserCache::time_to_live(Duration::from_secs(3600), 100))
        .build()
        .unwrap();
    let config = mapped(StripeConfig::builder().secret(SECRET))
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
        .invalidator(layer.invalidator())
        .build()
        .unwrap();
    let receiver = StripeReceiver::new(config.clone(), MemoryStoreHook::new(store.clone()));
    let create = || {
        let mut request = Request::post("/clients")
            .body(Full::<Bytes>::default())
            .unwrap();
        request.extensions_mut().insert(UserId::from("dana"));
        let service = layer
            .clone()
            .layer(service_fn(|_: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
            }));
        service.oneshot(request)
    };
    // dana's record, without a plan, is cached now.
    assert_eq!(create().await.unwrap().status(), StatusCode::FORBIDDEN);
    let body = fixture(UPDATED).to_string();
    let request = Request::post("/webhooks/stripe")
        .header("stripe-signature", config.sign(NOW, body.as_bytes()))
        .body(Full::<Bytes>::from(body))
        .unwrap();
    let answer = answer(receiver.oneshot(request).await.unwrap()).await;
    assert_eq!(answer.outcome, WebhookOutcome::Applied);
    assert_eq!(create().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn a_failed_invalidation_answers_500_and_the_retry_applies_again() {
    let invalidations = Arc::new(Invalidations::default());
    invalidations.fail.store(true, Ordering::SeqCst);
    let harness = Harness::new({
        let invalidations = Arc::clone(&invalidations);
        move |b| b.invalidator(invalidations)
    });
    let event = fixture(UPDATED);
    let answer = harness.deliver(&event).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    invalidations.fail.store(false, Ordering::SeqCst);
    assert_eq!(
        harness.deliver(&event).await.outcome,
        WebhookOutcome::Applied
    );
    assert_eq!(harness.calls(), 2);
    assert_eq!(*invalidations.users.lock().unwrap(), ["dana"]);
}

/// With the `metrics` feature, each delivery counts once by its outcome.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn deliveries_count_by_outcome() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let harness = Harness::new(|b| b);
    harness.deliver(&fixture(UPDATED)).await;
    harness.deliver(&fixture(UPDATED)).await;
    harness.post(None, "{}").await;
    let older = variant(
        &fixture(UPDATED),
        "evt_old",
        "updated",
        NOW - 1000,
        "active",
    );
    harness.deliver(&older).await;
    let mut counted: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "tower_plans_stripe_events_total")
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
            ("outcome=outdated".to_owned(), 1),
            ("outcome=unauthorized".to_owned(), 1),
        ]
    );
}

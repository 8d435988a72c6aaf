//! The mapping from prices, lookup keys and products to plans and add-ons, seats, and who the
//! user is.

use tower_plans::subscriber::AddonGrant;
use tower_plans::webhook::WebhookOutcome;

use crate::*;

#[tokio::test]
async fn seats_become_the_addon_quantity() {
    let harness = Harness::new(|b| b);
    harness.deliver(&fixture(UPDATED)).await;
    let until = PERIOD_END * 1000 + DAY_MS;
    assert_eq!(
        harness.stripe_grants("dana"),
        [AddonGrant::new("seats")
            .quantity(5)
            .expires_at(until)
            .source("stripe")]
    );
    // pro's 2 members plus 5 seats: at 6 dana may add one.
    let (status, decision) = harness.create("dana", "members").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(decision, json!({"plan": "pro", "limit": 7, "usage": 6}));

    // Down to 1 seat: 3 members.
    let fewer = set(
        variant(&fixture(UPDATED), "evt_fewer", "updated", NOW, "active"),
        "/data/object/items/data/1/quantity",
        json!(1),
    );
    assert_eq!(
        harness.deliver(&fewer).await.outcome,
        WebhookOutcome::Applied
    );
    assert_eq!(harness.stripe_grants("dana")[0].quantity, 1);
    let (status, denial) = harness.create("dana", "members").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(denial["maximum"], json!(3));

    // A price without a quantity (metered) grants one unit.
    let metered = variant(
        &fixture(UPDATED),
        "evt_metered",
        "updated",
        NOW + 1,
        "active",
    );
    let mut metered = metered;
    metered["data"]["object"]["items"]["data"][1]
        .as_object_mut()
        .unwrap()
        .remove("quantity");
    harness.deliver(&metered).await;
    assert_eq!(harness.stripe_grants("dana")[0].quantity, 1);
}

#[tokio::test]
async fn a_lookup_key_alone_maps_a_price() {
    // Only the lookup key is known to the application; the price id is not.
    let harness = Harness::with_builder(|b| b.plan("pro_monthly", "pro"));
    let answer = harness.deliver(&fixture(UPDATED)).await;
    assert_eq!(answer.outcome, WebhookOutcome::Applied);
    assert_eq!(harness.record("dana").unwrap().plan_name(), Some("pro"));
    // The seats are not mapped here: no add-on.
    assert!(harness.stripe_grants("dana").is_empty());
    assert_eq!(
        harness.create("dana", "clients").await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_price_id_or_a_product_id_maps_too_and_the_price_id_comes_first() {
    let harness = Harness::with_builder(|b| {
        b.plan("price_1P0ybeLzuH5f3Kq9ProMnth", "regular")
            .plan("pro_monthly", "pro")
            .addon("prod_Pq1cSeAtS", "seats")
    });
    harness.deliver(&fixture(UPDATED)).await;
    assert_eq!(harness.record("dana").unwrap().plan_name(), Some("regular"));
    assert_eq!(harness.stripe_grants("dana")[0].quantity, 5);
    // The lookup key before the product.
    let harness = Harness::with_builder(|b| {
        b.plan("prod_Pq1cPr0PlAn", "regular")
            .plan("pro_monthly", "pro")
    });
    harness.deliver(&fixture(UPDATED)).await;
    assert_eq!(harness.record("dana").unwrap().plan_name(), Some("pro"));
}

#[tokio::test]
async fn a_subscription_with_nothing_mapped_is_ignored() {
    let harness = Harness::with_builder(|b| b.plan("some_other_product", "pro"));
    let answer = harness.deliver(&fixture(UPDATED)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.outcome, WebhookOutcome::Unmapped);
    assert_eq!(answer.body, ignored("unmapped_subscription"));
    assert_eq!(harness.calls(), 0);
    assert_eq!(harness.record("dana").unwrap().assignment, None);
}

#[tokio::test]
async fn addons_granted_by_other_means_are_kept() {
    let harness = Harness::new(|b| b);
    // An admin granted "more-clients"; an old Stripe grant of 9 seats is still there.
    harness.store.update_user("dana", |record| {
        record.addons.push(AddonGrant::new("more-clients"));
        record
            .addons
            .push(AddonGrant::new("seats").quantity(9).source("stripe"));
        record
            .addons
            .push(AddonGrant::new("seats").quantity(2).source("admin"));
    });
    harness.deliver(&fixture(UPDATED)).await;
    let until = PERIOD_END * 1000 + DAY_MS;
    assert_eq!(
        harness.record("dana").unwrap().addons,
        [
            AddonGrant::new("more-clients"),
            AddonGrant::new("seats").quantity(2).source("admin"),
            AddonGrant::new("seats")
                .quantity(5)
                .expires_at(until)
                .source("stripe"),
        ]
    );
    // 2 members on pro, 2 seats from the admin, 5 from Stripe.
    assert_eq!(harness.create("dana", "members").await.1["limit"], json!(9));
    // A cancellation takes Stripe's away only.
    let canceled = variant(
        &fixture(UPDATED),
        "evt_canceled",
        "deleted",
        NOW,
        "canceled",
    );
    harness.deliver(&canceled).await;
    assert_eq!(
        harness.record("dana").unwrap().addons,
        [
            AddonGrant::new("more-clients"),
            AddonGrant::new("seats").quantity(2).source("admin"),
        ]
    );
}

/// The updated fixture without `metadata.user_id`.
fn anonymous() -> Value {
    set(
        fixture(UPDATED),
        "/data/object/metadata",
        json!({"signup_source": "api"}),
    )
}

#[tokio::test]
async fn without_metadata_the_customer_lookup_finds_the_user() {
    let harness = Harness::new(|b| {
        b.customer_lookup_fn(|customer: String| async move {
            Ok((customer == "cus_Pq1d8zYxWvU2aB").then(|| "dana".to_owned()))
        })
    });
    assert_eq!(
        harness.deliver(&anonymous()).await.outcome,
        WebhookOutcome::Applied
    );
    assert_eq!(harness.record("dana").unwrap().plan_name(), Some("pro"));

    // A customer the application does not know: acknowledged, not applied.
    let stranger = set(anonymous(), "/data/object/customer", json!("cus_unknown"));
    let stranger = set(stranger, "/id", json!("evt_stranger"));
    let answer = harness.deliver(&stranger).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.outcome, WebhookOutcome::UnknownUser);
    assert_eq!(answer.body, ignored("unknown_user"));
    assert_eq!(harness.calls(), 1);

    // metadata.user_id wins over the lookup.
    let tess = set(
        fixture(UPDATED),
        "/data/object/metadata/user_id",
        json!("tess"),
    );
    let tess = set(tess, "/id", json!("evt_tess"));
    harness.deliver(&tess).await;
    assert_eq!(harness.record("tess").unwrap().plan_name(), Some("pro"));
}

#[tokio::test]
async fn an_expanded_customer_is_looked_up_by_its_id() {
    let harness = Harness::new(|b| {
        b.customer_lookup_fn(|customer: String| async move {
            Ok((customer == "cus_Pq1d8zYxWvU2aB").then(|| "dana".to_owned()))
        })
    });
    let expanded = set(
        anonymous(),
        "/data/object/customer",
        json!({"id": "cus_Pq1d8zYxWvU2aB", "object": "customer", "email": "dana@example.com"}),
    );
    assert_eq!(
        harness.deliver(&expanded).await.outcome,
        WebhookOutcome::Applied
    );
    assert_eq!(harness.record("dana").unwrap().plan_name(), Some("pro"));
}

#[tokio::test]
async fn without_metadata_or_lookup_the_event_is_ignored() {
    let harness = Harness::new(|b| b);
    let answer = harness.deliver(&anonymous()).await;
    assert_eq!(answer.outcome, WebhookOutcome::UnknownUser);
    assert_eq!(harness.calls(), 0);
    // An empty user id is none either.
    let empty = set(fixture(UPDATED), "/data/object/metadata/user_id", json!(""));
    assert_eq!(
        harness.deliver(&empty).await.outcome,
        WebhookOutcome::UnknownUser
    );
}

#[tokio::test]
async fn a_failing_lookup_answers_500_and_the_retry_applies() {
    let failures = Arc::new(AtomicUsize::new(1));
    let remaining = Arc::clone(&failures);
    let harness = Harness::new(move |b| {
        b.customer_lookup_fn(move |_customer: String| {
            let remaining = Arc::clone(&remaining);
            async move {
                if remaining
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return Err::<Option<String>, BoxError>("the users database is down".into());
                }
                Ok(Some("dana".to_owned()))
            }
        })
    });
    let answer = harness.deliver(&anonymous()).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.body, json!({"error": "hook_failed"}));
    assert_eq!(harness.record("dana").unwrap().assignment, None);
    // Stripe retries the same event.
    assert_eq!(
        harness.deliver(&anonymous()).await.outcome,
        WebhookOutcome::Applied
    );
    assert_eq!(failures.load(Ordering::SeqCst), 0);
}

//! Stripe's rights in Redis records: `RedisPlanStore::replace_rights` (a compare-and-set that
//! keeps usage and other grants), and a Stripe event that reaches one instance seen by another.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use tower::ServiceExt;
use tower_plans::redis::driver as redis;
use tower_plans::redis::{Error, RedisPlanStore};
use tower_plans::stripe::{StripeConfig, StripeReceiver};
use tower_plans::subscriber::{AddonGrant, Assignment};
use tower_plans::webhook::{EntitlementEvent, EntitlementHook, Replacement, WebhookOutcome};
use tower_plans::{BoxError, PlanStore};

use crate::common::*;

/// The application's hook over Redis records: Stripe's rights through `replace_rights`.
struct RedisHook(RedisPlanStore);

#[async_trait]
impl EntitlementHook for RedisHook {
    async fn apply(&self, _event: &EntitlementEvent) -> Result<(), BoxError> {
        Err("this application receives Stripe events only".into())
    }

    async fn replace(&self, rights: &Replacement) -> Result<(), BoxError> {
        Ok(self.0.replace_rights(rights).await?)
    }
}

#[tokio::test]
async fn redis_replace_rights_keeps_usage_and_other_grants() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    let plans = conn.plan_store();
    plans.set_catalog_json(CATALOG).await.unwrap();
    // The shorthand form: every other top-level key is usage.
    plans
        .set_user_json(
            "ann",
            r#"{"name": "ann", "plan": "free", "clients": 4,
                "addons": [{"name": "promo"}, {"name": "seats", "quantity": 9, "source": "stripe"}]}"#,
        )
        .await
        .unwrap();
    let rights = Replacement::new("ann", "stripe")
        .plan(
            Assignment::new("pro")
                .joined_at(1)
                .expires_at(2_000_000_000_000),
        )
        .addon(AddonGrant::new("seats").quantity(3))
        .cycle_anchor(1_700_000_000_000);
    plans.replace_rights(&rights).await.unwrap();
    let ann = plans.user("ann").await.unwrap().expect("ann");
    assert_eq!(
        ann.assignment,
        Some(
            Assignment::new("pro")
                .joined_at(1)
                .expires_at(2_000_000_000_000)
        )
    );
    assert_eq!(ann.usage.count("clients"), Some(4));
    assert_eq!(ann.usage.len(), 1);
    assert_eq!(
        ann.addons,
        [
            AddonGrant::new("promo"),
            AddonGrant::new("seats").quantity(3).source("stripe")
        ]
    );
    assert_eq!(ann.cycle_anchor, Some(1_700_000_000_000));

    // Rights that grant nothing: the plan and Stripe's grants go, the rest stays.
    plans
        .replace_rights(&Replacement::new("ann", "stripe"))
        .await
        .unwrap();
    let ann = plans.user("ann").await.unwrap().expect("ann");
    assert_eq!(ann.assignment, None);
    assert_eq!(ann.addons, [AddonGrant::new("promo")]);
    assert_eq!(ann.usage.count("clients"), Some(4));
    assert_eq!(ann.cycle_anchor, None);

    // An unknown user stays unknown when granted nothing, and gets a record otherwise.
    plans
        .replace_rights(&Replacement::new("nobody", "stripe"))
        .await
        .unwrap();
    assert!(plans.user("nobody").await.unwrap().is_none());
    plans
        .replace_rights(&Replacement::new("newcomer", "stripe").plan(Assignment::new("pro")))
        .await
        .unwrap();
    let newcomer = plans.user("newcomer").await.unwrap().expect("created");
    assert_eq!(newcomer.plan_name(), Some("pro"));
}

#[tokio::test]
async fn redis_replace_rights_refuses_a_malformed_record_and_writes_nothing() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    let plans = conn.plan_store();
    let mut raw = conn.manager().expect("one redis-server").clone();
    let key = "test:{ann}:user";
    for bad in [r#"{"plan": 7}"#, "not json"] {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(bad)
            .query_async(&mut raw)
            .await
            .unwrap();
        let rights = Replacement::new("ann", "stripe").plan(Assignment::new("pro"));
        let error = plans.replace_rights(&rights).await.unwrap_err();
        assert!(matches!(error, Error::Load(_)), "{bad}: {error}");
        let kept: String = redis::cmd("GET")
            .arg(key)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(kept, bad);
    }
}

#[tokio::test]
async fn redis_concurrent_replacements_lose_no_write() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    let plans = conn.plan_store();
    plans
        .set_user_json("ann", r#"{"usage": {"clients": 1}}"#)
        .await
        .unwrap();
    // Ten sources replace their own grants at once: with a read-modify-write that lost updates,
    // some grants would be missing.
    let writes = (0..10).map(|i| {
        let plans = plans.clone();
        tokio::spawn(async move {
            let rights = Replacement::new("ann", format!("source-{i}"))
                .addon(AddonGrant::new(format!("pack-{i}")).quantity(i));
            plans.replace_rights(&rights).await
        })
    });
    for write in futures::future::join_all(writes).await {
        write.expect("the task ran").expect("the write succeeded");
    }
    let ann = plans.user("ann").await.unwrap().expect("ann");
    let mut sources: Vec<String> = ann
        .addons
        .iter()
        .map(|grant| grant.source.as_deref().unwrap_or_default().to_owned())
        .collect();
    sources.sort();
    assert_eq!(sources.len(), 10, "{:?}", ann.addons);
    sources.dedup();
    assert_eq!(sources.len(), 10);
    assert_eq!(ann.usage.count("clients"), Some(1));
}

#[tokio::test]
async fn redis_a_stripe_event_that_reaches_one_instance_updates_the_others() {
    let server = RedisServer::start();
    let a = Instance::cached(&server).await;
    let b = Instance::cached(&server).await;
    a.conn
        .plan_store()
        .load_json(CATALOG, r#"{"ann": {"plan": "free"}}"#)
        .await
        .unwrap();
    for instance in [&a, &b] {
        assert_eq!(
            instance.send(Method::GET, "/tasks", "ann").await.1,
            "free usage=0"
        );
    }

    let config = StripeConfig::builder()
        .secret("whsec_redis")
        .plan("pro_monthly", "pro")
        .invalidator(a.invalidator.clone())
        .build()
        .unwrap();
    let receiver = StripeReceiver::new(config.clone(), RedisHook(a.conn.plan_store()));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = serde_json::json!({
        "id": "evt_redis_1", "object": "event", "type": "customer.subscription.created",
        "created": now, "data": {"object": {
            "id": "sub_ann", "object": "subscription", "status": "active", "customer": "cus_ann",
            "metadata": {"user_id": "ann"},
            "items": {"object": "list", "data": [{
                "price": {"id": "price_1", "lookup_key": "pro_monthly"}, "quantity": 1,
                "current_period_start": now, "current_period_end": now + 30 * 86_400}]}}}
    })
    .to_string();
    let request = Request::post("/webhooks/stripe")
        .header("stripe-signature", config.sign(now, body.as_bytes()))
        .body(Full::<Bytes>::from(body))
        .unwrap();
    let response = receiver.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.extensions().get::<WebhookOutcome>(),
        Some(&WebhookOutcome::Applied)
    );

    assert_eq!(a.send(Method::GET, "/tasks", "ann").await.1, "pro usage=0");
    let seen = eventually(Duration::from_secs(1), || async {
        b.send(Method::GET, "/tasks", "ann").await.1 == "pro usage=0"
    })
    .await;
    assert!(seen.is_some(), "instance B kept the old plan");
}

/// On a Redis Cluster, each user's record is rewritten on its own master, concurrently.
#[cfg(feature = "redis-cluster")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_replace_rights_on_every_master() {
    use crate::cluster::{connect_cluster, users_on_each_master, RedisCluster};

    let cluster = RedisCluster::start();
    let users: Vec<String> = users_on_each_master(&cluster, "payer", 2)
        .into_values()
        .flatten()
        .collect();
    let conn = connect_cluster(&cluster).await;
    let plans = conn.plan_store();
    for user in &users {
        plans
            .set_user_json(
                user,
                r#"{"usage": {"clients": 2}, "addons": [{"name": "promo"}]}"#,
            )
            .await
            .unwrap();
    }
    let writes = users.iter().flat_map(|user| {
        (0..3).map(|i| {
            let plans = plans.clone();
            let rights = Replacement::new(user.clone(), format!("source-{i}"))
                .plan(Assignment::new("pro"))
                .addon(AddonGrant::new("seats").quantity(i + 1));
            tokio::spawn(async move { plans.replace_rights(&rights).await })
        })
    });
    for write in futures::future::join_all(writes).await {
        write.expect("the task ran").expect("the write succeeded");
    }
    for user in &users {
        let record = plans.user(user).await.unwrap().expect("a record");
        assert_eq!(record.plan_name(), Some("pro"), "{user}");
        assert_eq!(record.usage.count("clients"), Some(2), "{user}");
        // The promotion's grant and one grant per source.
        assert_eq!(record.addons.len(), 4, "{user}: {:?}", record.addons);
    }
}

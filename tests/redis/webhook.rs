//! A signed webhook that reaches one instance updates every instance: the receiver invalidates
//! through the Redis invalidator.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use tower::ServiceExt;
use tower_plans::redis::RedisPlanStore;
use tower_plans::webhook::{
    Effect, EntitlementEvent, EntitlementHook, WebhookConfig, WebhookOutcome, WebhookReceiver,
};
use tower_plans::BoxError;

use crate::common::*;

/// Applies events to subscriber records in Redis.
struct RedisHook(RedisPlanStore);

#[async_trait]
impl EntitlementHook for RedisHook {
    async fn apply(&self, event: &EntitlementEvent) -> Result<(), BoxError> {
        let user = event.user().ok_or("no user")?;
        let record = match (event.effect(), event.plan.as_deref()) {
            (Effect::Grant, Some(plan)) => serde_json::json!({ "plan": plan }).to_string(),
            _ => "{}".to_owned(),
        };
        self.0.set_user_json(user, &record).await?;
        Ok(())
    }
}

fn event(config: &WebhookConfig, body: &str) -> Request<Full<Bytes>> {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    Request::post("/webhooks/billing")
        .header("x-purchasely-timestamp", &timestamp)
        .header(
            "x-purchasely-request-signature",
            config.sign(&timestamp, body.as_bytes()),
        )
        .body(Full::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn redis_a_webhook_that_reaches_one_instance_updates_the_others() {
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

    // The webhook reaches instance A only.
    let config = WebhookConfig::builder()
        .secret("whsec_test")
        .invalidator(a.invalidator.clone())
        .build()
        .unwrap();
    let receiver = WebhookReceiver::new(config.clone(), RedisHook(a.conn.plan_store()));
    let body = r#"{"event_id":"e1","event_name":"ACTIVATE","user_id":"ann","plan":"pro"}"#;
    let response = receiver.oneshot(event(&config, body)).await.unwrap();
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

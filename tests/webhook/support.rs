//! What every part of the receiver's tests shares: the seed signature, the sample events, a
//! configuration at a fixed clock, a hook that records what it applied, and requests to send.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_plans::webhook::{
    Effect, EntitlementEvent, EntitlementHook, WebhookConfig, WebhookOutcome, WebhookReceiver,
};
use tower_plans::BoxError;

/// The seed signature example: a secret, a timestamp, a body and the signature they give.
pub const SEED_SECRET: &str = "foobar";
pub const SEED_TIMESTAMP: &str = "1698322022";
pub const SEED_BODY: &str = r#"{"a_random_key":"a_random_value_ad"}"#;
pub const SEED_SIGNATURE: &str = "f3c2a452e9ea72f41107321aeaf7999f1054148866a710c9b23f9f501785e2a4";
/// The receiver's clock, in seconds: the seed timestamp.
pub const NOW: u64 = 1_698_322_022;

/// A sandbox `ACTIVATE` as the provider sends it.
pub const SAMPLE_ACTIVATE: &str = r#"{
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

/// The `DEACTIVATE` of the same subscription.
pub const SAMPLE_DEACTIVATE: &str = r#"{
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

/// A configuration with the seed secret and a clock fixed at `now` (seconds).
pub fn config_at(now: u64) -> WebhookConfig {
    WebhookConfig::builder()
        .secret(SEED_SECRET)
        .clock(move || UNIX_EPOCH + Duration::from_secs(now))
        .build()
        .unwrap()
}

/// Records applied events; fails the first `failures` calls.
#[derive(Default)]
pub struct RecordingHook {
    applied: Mutex<Vec<(String, Effect)>>,
    /// How many times `apply` was called, failed calls included.
    pub calls: AtomicUsize,
    failures: usize,
}

impl RecordingHook {
    /// A hook whose first `failures` calls fail.
    pub fn failing(failures: usize) -> Self {
        Self {
            failures,
            ..Self::default()
        }
    }

    /// The `(event id, effect)` of every event applied, in order.
    pub fn applied(&self) -> Vec<(String, Effect)> {
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

/// A receiver at [`NOW`] over `hook`.
pub fn receiver(hook: Arc<RecordingHook>) -> WebhookReceiver<Arc<RecordingHook>> {
    WebhookReceiver::new(config_at(NOW), hook)
}

/// A request carrying `body`, signed with the seed secret at the seed timestamp.
pub fn signed(body: &str) -> Request<Full<Bytes>> {
    let signature = config_at(NOW).sign(SEED_TIMESTAMP, body.as_bytes());
    request(body, Some(SEED_TIMESTAMP), Some(&signature))
}

/// A request carrying `body` with the given timestamp and signature headers, if any.
pub fn request(
    body: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
) -> Request<Full<Bytes>> {
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

/// Sends `request` to `receiver`: the status, the JSON body and the outcome it records.
pub async fn send<H: EntitlementHook>(
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

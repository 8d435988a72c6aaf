//! The Stripe receiver: `Stripe-Signature`, subscription events in Stripe's JSON shape, the
//! statuses and periods, the mapping, the order of deliveries, and the quickstart over loopback.
//!
//! Signatures are computed here with the `hmac` crate, apart from the crate's own signing code.
//! Times are fixed: the receiver's clock (for `t`) and the layer's clock (for expiries) are set
//! by each test, never slept on.

mod events;
mod mapping;
mod order;
mod quickstart;
mod receiver;
mod signature;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use sha2::Sha256;
use tower::{service_fn, Layer, ServiceExt};
use tower_plans::stripe::{StripeConfig, StripeConfigBuilder, StripeReceiver};
use tower_plans::subscriber::AddonGrant;
use tower_plans::webhook::{
    EntitlementEvent, EntitlementHook, MemoryStoreHook, Replacement, WebhookOutcome,
};
use tower_plans::{BoxError, MemoryStore, PlanLimitLayer, Subscriber, UserId};

/// The endpoint secret events are signed with.
pub const SECRET: &str = "whsec_test_5e1f0c2a9b7d4e3f";
/// The receiver's clock, in seconds: 100 s after the `updated` fixture was created.
pub const NOW: u64 = 1_714_521_705;

/// The `customer.subscription.updated` fixture: API 2025-03-31, periods on the items, `active`,
/// a `pro_monthly` item and 5 seats, for `dana`.
pub const UPDATED: &str = include_str!("../fixtures/stripe/subscription_updated.json");
/// The `customer.subscription.created` fixture: API 2024-06-20, periods on the subscription,
/// `trialing` (14 days) on `regular_monthly`, for `tess`.
pub const CREATED_TRIAL: &str = include_str!("../fixtures/stripe/subscription_created_trial.json");

/// The updated fixture's period: 2024-05-01 to 2024-06-01, in seconds.
pub const PERIOD_START: u64 = 1_714_521_600;
pub const PERIOD_END: u64 = 1_717_200_000;
/// The trial fixture's trial: 2024-04-01 to 2024-04-15, in seconds.
pub const TRIAL_START: u64 = 1_711_929_600;
pub const TRIAL_END: u64 = 1_713_139_200;

pub const HOUR_MS: u64 = 3_600_000;
pub const DAY_MS: u64 = 24 * HOUR_MS;

pub const CATALOG: &str = r#"{
    "trial": {"duration": 14, "fallback": "free"},
    "plans": [
        {"name": "free", "limits": {"clients": 1, "members": 1}},
        {"name": "regular", "limits": {"clients": 10, "members": 2}},
        {"name": "pro", "limits": {"clients": 30, "members": 2}}
    ],
    "addons": [
        {"name": "seats", "limits": {"members": 1}},
        {"name": "more-clients", "limits": {"clients": 10}}
    ]
}"#;

pub const USERS: &str = r#"{
    "dana": {"usage": {"clients": 3, "members": 6}},
    "tess": {"usage": {"clients": 2}}
}"#;

/// The hex HMAC-SHA256 of `"{t}.{body}"` under `secret`, with the `hmac` crate.
pub fn v1(secret: &str, t: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A `Stripe-Signature` value for `body` signed at `t` under `secret`.
pub fn signed(secret: &str, t: u64, body: &str) -> String {
    format!("t={t},v1={}", v1(secret, t, body))
}

/// A fixture as JSON.
pub fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("a fixture is JSON")
}

/// `event` with the value at `pointer` replaced (the path must exist).
pub fn set(mut event: Value, pointer: &str, value: Value) -> Value {
    *event
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the event")) = value;
    event
}

/// `event` with another id, type, creation time and status.
pub fn variant(event: &Value, id: &str, kind: &str, created: u64, status: &str) -> Value {
    let event = set(event.clone(), "/id", json!(id));
    let event = set(
        event,
        "/type",
        json!(format!("customer.subscription.{kind}")),
    );
    let event = set(event, "/created", json!(created));
    set(event, "/data/object/status", json!(status))
}

/// The standard mapping: `pro_monthly` (a lookup key) to pro, the regular price (a price id) to
/// regular, and the seats product (a product id) to seats.
pub fn mapped(builder: StripeConfigBuilder) -> StripeConfigBuilder {
    builder
        .plan("pro_monthly", "pro")
        .plan("price_1OzTqQLzuH5f3Kq9RegMnth", "regular")
        .addon("prod_Pq1cSeAtS", "seats")
}

/// A hook over a memory store that counts its calls and fails the first `failures`.
pub struct CountingHook {
    pub inner: MemoryStoreHook,
    pub calls: AtomicUsize,
    pub failures: AtomicUsize,
}

#[async_trait]
impl EntitlementHook for CountingHook {
    async fn apply(&self, event: &EntitlementEvent) -> Result<(), BoxError> {
        self.inner.apply(event).await
    }

    async fn replace(&self, rights: &Replacement) -> Result<(), BoxError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("the database is down".into());
        }
        self.inner.replace(rights).await
    }
}

/// One answer of the receiver.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub outcome: WebhookOutcome,
}

/// A store, a plan layer on a clock the test sets, and a receiver applying to the store.
pub struct Harness {
    pub store: MemoryStore,
    pub layer: PlanLimitLayer,
    /// The layer's clock, in milliseconds.
    pub clock: Arc<AtomicU64>,
    pub config: StripeConfig,
    pub receiver: StripeReceiver<Arc<CountingHook>>,
    pub hook: Arc<CountingHook>,
}

impl Harness {
    /// The standard mapping, and what `configure` adds.
    pub fn new(configure: impl FnOnce(StripeConfigBuilder) -> StripeConfigBuilder) -> Self {
        Self::with_builder(|builder| configure(mapped(builder)))
    }

    /// Only what `configure` sets (besides the secret and the clock).
    pub fn with_builder(
        configure: impl FnOnce(StripeConfigBuilder) -> StripeConfigBuilder,
    ) -> Self {
        let store = MemoryStore::from_json(CATALOG, USERS).expect("the test store loads");
        let clock = Arc::new(AtomicU64::new(NOW * 1000));
        let layer_clock = Arc::clone(&clock);
        let layer = PlanLimitLayer::builder(store.clone())
            .clock(move || layer_clock.load(Ordering::SeqCst))
            .build()
            .expect("the layer builds");
        let builder = StripeConfig::builder()
            .secret(SECRET)
            .clock(|| UNIX_EPOCH + Duration::from_secs(NOW));
        let config = configure(builder)
            .build()
            .expect("the configuration builds");
        let hook = Arc::new(CountingHook {
            inner: MemoryStoreHook::new(store.clone()),
            calls: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
        });
        let receiver = StripeReceiver::new(config.clone(), Arc::clone(&hook));
        Self {
            store,
            layer,
            clock,
            config,
            receiver,
            hook,
        }
    }

    /// Delivers `event` signed now with the secret.
    pub async fn deliver(&self, event: &Value) -> Answer {
        let body = event.to_string();
        let header = signed(SECRET, NOW, &body);
        self.post(Some(&header), body).await
    }

    /// POSTs `body` with `header` as `Stripe-Signature`.
    pub async fn post(&self, header: Option<&str>, body: impl Into<Bytes>) -> Answer {
        let mut request = Request::post("/webhooks/stripe");
        if let Some(header) = header {
            request = request.header("stripe-signature", header);
        }
        let request = request.body(Full::new(body.into())).expect("a request");
        answer(
            self.receiver
                .clone()
                .oneshot(request)
                .await
                .expect("infallible"),
        )
        .await
    }

    /// Sets the layer's clock.
    pub fn at(&self, ms: u64) {
        self.clock.store(ms, Ordering::SeqCst);
    }

    /// `POST /<resource>` by `user` through the plan layer: the status, and the body (the
    /// decision as `{"plan", "limit", "usage"}` when allowed, the denial otherwise).
    pub async fn create(&self, user: &str, resource: &str) -> (StatusCode, Value) {
        let service =
            self.layer
                .clone()
                .layer(service_fn(|request: Request<Full<Bytes>>| async move {
                    let allowed = request
                .extensions()
                .get::<tower_plans::Allowed>()
                .map(|allowed| {
                    json!({"plan": &*allowed.plan, "limit": allowed.limit, "usage": allowed.usage})
                })
                .unwrap_or(Value::Null);
                    let mut response = Response::new(Full::from(allowed.to_string()));
                    *response.status_mut() = StatusCode::CREATED;
                    Ok::<_, Infallible>(response)
                }));
        let mut request = Request::post(format!("/{resource}"))
            .body(Full::default())
            .expect("a request");
        request.extensions_mut().insert(UserId::from(user));
        let response = service.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        (status, serde_json::from_slice(&bytes).expect("a JSON body"))
    }

    /// The user's record in the store.
    pub fn record(&self, user: &str) -> Option<Arc<Subscriber>> {
        self.store.subscriber(user)
    }

    /// The user's grants marked `"stripe"`.
    pub fn stripe_grants(&self, user: &str) -> Vec<AddonGrant> {
        self.record(user)
            .map(|record| {
                record
                    .addons
                    .iter()
                    .filter(|grant| grant.source.as_deref() == Some("stripe"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many times the hook was asked to replace rights.
    pub fn calls(&self) -> usize {
        self.hook.calls.load(Ordering::SeqCst)
    }
}

/// Reads a response: status, JSON body, outcome; checks that they agree.
pub async fn answer(response: Response<Full<Bytes>>) -> Answer {
    let status = response.status();
    let outcome = *response
        .extensions()
        .get::<WebhookOutcome>()
        .expect("the outcome is in the extensions");
    assert_eq!(
        response.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    assert_eq!(status, outcome.status());
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let body: Value = serde_json::from_slice(&bytes).expect("a JSON body");
    assert_eq!(
        body,
        serde_json::from_str::<Value>(&outcome.body()).unwrap()
    );
    Answer {
        status,
        body,
        outcome,
    }
}

/// The body of a `200` that applied the event.
pub fn applied() -> Value {
    json!({"status": "applied"})
}

/// The body of a `200` that ignored the event for `reason`.
pub fn ignored(reason: &str) -> Value {
    json!({"status": "ignored", "reason": reason})
}

/// The body of a `401` for `error`.
pub fn refused(error: &str) -> Value {
    json!({"error": error})
}

/// The denial of a user without a plan.
pub fn no_plan(item: &str) -> Value {
    json!({"reason": "subscription", "plan": null, "item": item, "action": "create"})
}

/// `POST` requests need a method for the 405 test.
pub fn method_request(method: Method, body: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("/webhooks/stripe")
        .header("stripe-signature", signed(SECRET, NOW, body))
        .body(Full::from(body.to_owned()))
        .expect("a request")
}

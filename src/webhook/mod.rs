//! Signed entitlement webhooks that keep plans fresh.
//!
//! Plans change outside the request path: a purchase, a renewal, a cancellation, a failed
//! payment. A billing platform announces each change by POSTing a signed JSON event.
//! [`WebhookReceiver`] is a tower service (an axum route) that, for every such request:
//!
//! 1. reads the signature and timestamp headers (by default `x-purchasely-request-signature` and
//!    `x-purchasely-timestamp`) and answers `401` when one is missing;
//! 2. reads the raw body, up to [`body_limit`](WebhookConfigBuilder::body_limit) (1 MiB by
//!    default; `413` beyond);
//! 3. checks that the signature is the hex `HMAC-SHA256(secret, timestamp + raw body)` under one of
//!    the configured secrets, compared in constant time, and that the timestamp (seconds since the
//!    Unix epoch) is within the [`tolerance`](WebhookConfigBuilder::tolerance) of the clock (5
//!    minutes by default); `401` otherwise;
//! 4. parses the [`EntitlementEvent`]; `400` when the body is not one;
//! 5. acknowledges with `200`, without applying, any event other than `ACTIVATE`, `DEACTIVATE`,
//!    `ADDON_ACTIVATE` and `ADDON_DEACTIVATE`, and any event about an anonymous user (no
//!    `user_id`): the user's later events are not held back by it;
//! 6. acknowledges with `200`, without applying again, an event whose `event_id` was applied
//!    recently (the ids are remembered in a bounded cache; concurrent deliveries of one id apply
//!    it once);
//! 7. otherwise calls the [`EntitlementHook`], then invalidates the user through the configured
//!    [`Invalidate`] (the layer's [`Invalidator`](crate::Invalidator), or with the `redis`
//!    feature a `redis::RedisInvalidator` that reaches every
//!    instance), and only then answers `200`. When the hook or the invalidation fails it
//!    answers `500`, so the sender retries; a failed event is not remembered, so the retry
//!    applies it.
//!
//! An `ACTIVATE` grants its plan when its `subscription_status` is one of the active statuses
//! (`AUTO_RENEWING`, `AUTO_RENEWING_CANCELED`, `IN_GRACE_PERIOD` by default, configurable) or
//! absent; an `ACTIVATE` with another status revokes it, like a `DEACTIVATE` (see [`Effect`]).
//! `ADDON_ACTIVATE` and `ADDON_DEACTIVATE` do the same for the [add-on](crate::catalog::Addon)
//! named by the event's `addon`, with its `quantity`: `{"event_name": "ADDON_ACTIVATE",
//! "user_id": "john", "addon": "more-clients", "quantity": 2, "purchased_at_ms": ..,
//! "effective_next_renewal_at_ms": ..}`.
//!
//! Every response has a small JSON body, such as `{"status":"applied"}` or
//! `{"error":"bad_signature"}`, and carries its [`WebhookOutcome`] in the response extensions.
//!
//! [`MemoryStoreHook`] applies events to a [`MemoryStore`](crate::MemoryStore); applications with
//! their own database implement [`EntitlementHook`].
//!
//! # Example
//!
//! A `MemoryStore`, the plan layer with a user cache around the API, and the receiver on its own
//! route, outside the layer:
//!
//! ```
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//!
//! use axum::routing::{post, post_service};
//! use axum::Router;
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_plans::webhook::{MemoryStoreHook, WebhookConfig, WebhookReceiver};
//! use tower_plans::{MemoryStore, PlanLimitLayer, UserCache, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(
//!     r#"[{"name": "free", "clients": 3}, {"name": "pro", "clients": 30}]"#,
//!     r#"{"john": {"plan": "free", "usage": {"clients": 3}}}"#,
//! )?;
//! let layer = PlanLimitLayer::builder(store.clone())
//!     .user_cache(UserCache::time_to_live(Duration::from_secs(600), 10_000))
//!     .build()?;
//! let config = WebhookConfig::builder()
//!     .secret("whsec_current")
//!     .secret("whsec_previous") // still accepted while the sender switches over
//!     .invalidator(layer.invalidator())
//!     .build()?;
//! let receiver = WebhookReceiver::new(config.clone(), MemoryStoreHook::new(store.clone()));
//!
//! let app = Router::new()
//!     .route("/clients", post(|| async { "created" }))
//!     .layer(layer)
//!     .route("/webhooks/billing", post_service(receiver));
//!
//! // The application's authentication puts a `UserId` in the extensions.
//! let create_client = || {
//!     let mut request = Request::post("/clients").body(axum::body::Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     request
//! };
//! let response = app.clone().oneshot(create_client()).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN); // 3 of 3 clients on "free"
//!
//! // The billing platform announces the upgrade.
//! let body = r#"{"event_id":"e1","event_name":"ACTIVATE","user_id":"john","plan":"pro"}"#;
//! let timestamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs().to_string();
//! let event = Request::post("/webhooks/billing")
//!     .header("x-purchasely-timestamp", &timestamp)
//!     .header("x-purchasely-request-signature", config.sign(&timestamp, body.as_bytes()))
//!     .body(axum::body::Body::from(body))?;
//! let response = app.clone().oneshot(event).await?;
//! assert_eq!(response.status(), StatusCode::OK); // {"status":"applied"}
//!
//! // John's cached record was dropped: the next request sees "pro".
//! let response = app.clone().oneshot(create_client()).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```

mod config;
pub(crate) mod dedup;
mod event;
mod hook;
mod invalidate;
mod memory;
mod outcome;
mod replacement;
pub(crate) mod service;
pub(crate) mod verify;

pub use config::{
    WebhookConfig, WebhookConfigBuilder, DEFAULT_ACTIVE_STATUSES, DEFAULT_BODY_LIMIT,
    DEFAULT_DEDUP_CAPACITY, DEFAULT_SIGNATURE_HEADER, DEFAULT_TIMESTAMP_HEADER, DEFAULT_TOLERANCE,
};
pub use event::{Effect, EntitlementEvent, EventKind};
pub use hook::EntitlementHook;
pub use invalidate::Invalidate;
pub use memory::MemoryStoreHook;
pub use outcome::WebhookOutcome;
pub use replacement::Replacement;
pub use service::{ResponseFuture, WebhookReceiver};
pub use verify::VerifyError;

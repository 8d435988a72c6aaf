//! Stripe subscriptions as plans: a receiver for Stripe's webhooks (feature `stripe`).
//!
//! Stripe announces every change of a subscription (created, renewed, upgraded, past due,
//! paused, canceled) by POSTing a signed event to the application's endpoint. [`StripeReceiver`]
//! is a tower service (an axum route) that turns each into the user's rights and **replaces**
//! what Stripe granted the user before, whole: the plan assignment, the add-ons and the billing
//! cycle's anchor. It never patches case by case, so a missed or late event is corrected by the
//! next one. For every request it:
//!
//! 1. answers `405` to anything but a `POST`;
//! 2. reads the `Stripe-Signature` header (`t=<unix seconds>,v1=<hex>[,v1=<hex>...]`, see
//!    [`SignatureHeader`]); `401` when it is missing or malformed (no `t`, or no `v1`: a header
//!    with only `v0`, the test-mode scheme, is refused);
//! 3. reads the raw body, up to [`body_limit`](StripeConfigBuilder::body_limit) (1 MiB by
//!    default; `413` beyond);
//! 4. checks that one of the `v1` signatures is the hex `HMAC-SHA256(secret, "{t}.{raw body}")`
//!    under one of the configured endpoint secrets (several may be active, as while Stripe rolls
//!    a secret; every pair is compared, in constant time), and that `t` is within the
//!    [`tolerance`](StripeConfigBuilder::tolerance) of the clock (300 s by default), in the past
//!    or in the future; `401` otherwise;
//! 5. parses the [`StripeEvent`]; `400` when it is not one (a field the receiver reads with the
//!    wrong type, a subscription event without its subscription);
//! 6. acknowledges with `200`, without applying, an event other than
//!    `customer.subscription.created`, `.updated`, `.deleted`, `.paused` and `.resumed`;
//! 7. finds the user: the subscription's `metadata.user_id` (set it with
//!    `subscription_data.metadata` in Checkout), else the application's
//!    [`CustomerLookup`] from the customer id; `200` without applying when there is none;
//! 8. maps the subscription to rights ([`StripeConfig::replacement`]); `200` without applying
//!    when none of its items is mapped (a product the application does not sell through plans);
//! 9. acknowledges with `200`, without applying again, an event whose `id` was applied recently
//!    (a bounded cache; concurrent deliveries of one id apply it once);
//! 10. acknowledges with `200`, without applying, an event older than the last one applied for
//!     its subscription (Stripe does not deliver in order): older by `created`, and among events
//!     of one second a `created` before the others and a `deleted` after them;
//! 11. otherwise calls [`EntitlementHook::replace`](crate::webhook::EntitlementHook::replace),
//!     then invalidates the user through the configured
//!     [`Invalidate`](crate::webhook::Invalidate) (the layer's
//!     [`Invalidator`](crate::Invalidator), or a `redis::RedisInvalidator` for every instance),
//!     and only then answers `200`. When the hook, the invalidation or the customer lookup
//!     fails it answers `500`, so that Stripe retries; a failed event is not remembered.
//!
//! Every response has a small JSON body (`{"status":"applied"}`, `{"status":"duplicate"}`,
//! `{"status":"ignored","reason":"outdated_event"}`, `{"error":"bad_signature"}`, ...) and
//! carries its [`WebhookOutcome`](crate::webhook::WebhookOutcome) in the response extensions.
//! With the `metrics` feature each delivery counts in `tower_plans_stripe_events_total`, by
//! `outcome` (the labels of `tower_plans_webhook_events_total`, and `outdated`,
//! `unknown_user`, `unmapped`).
//!
//! # From a subscription to rights
//!
//! The application maps Stripe's prices to its catalog with [`StripeConfigBuilder::plan`] and
//! [`StripeConfigBuilder::addon`]: a key is a price id (`price_...`), a price's `lookup_key`
//! or a product id (`prod_...`); an item is mapped by its price id, else its lookup key, else
//! its product. The first item mapped to a plan gives the plan; each item mapped to an add-on
//! grants it, with the item's `quantity` as the grant's quantity (seats). Then the status:
//!
//! | `status` | rights |
//! |---|---|
//! | `trialing` | the plan as a trial (`trial: true`) until `trial_end` |
//! | `active` | the plan until `current_period_end` + [`grace`](StripeConfigBuilder::grace) (one day by default) |
//! | `past_due` | the plan until `current_period_end` + [`past_due_grace`](StripeConfigBuilder::past_due_grace) (none by default), then none |
//! | `unpaid`, `canceled`, `incomplete_expired`, `paused` | none |
//! | `incomplete` | none: the first payment has not succeeded (Stripe gives it 23 hours, then `incomplete_expired`); the plan comes with the `active` that follows |
//! | any other | none |
//!
//! A `customer.subscription.deleted` event grants nothing, whatever its status. Add-ons end
//! when the plan would. The periods are read from the subscription's items (Stripe's API from
//! 2025-03-31 moved them there) or from the subscription (earlier versions). The record's
//! [`cycle_anchor`](crate::Subscriber::cycle_anchor) is the subscription's
//! `billing_cycle_anchor` when it is not after the current period's start, else that start.
//! The layer's own [`grace_period`](crate::PlanLimitLayerBuilder::grace_period) applies on
//! top, as to every expiry.
//!
//! # What "whole" replaces
//!
//! Each applied event sets the user's plan assignment (a subscription that grants nothing
//! removes it), replaces the add-on grants whose [`source`](crate::subscriber::AddonGrant::source)
//! is `"stripe"` with the event's (each marked `"stripe"`), and sets the cycle anchor. Grants
//! without that source (an admin's, a promotion's, the `webhook` receiver's) and the usage are
//! kept. The model is one Stripe subscription per user carrying the plan and its add-ons (an
//! upgrade changes the subscription's items): with two live subscriptions for one user, the
//! last event applied wins. Applications that need more implement
//! [`EntitlementHook::replace`](crate::webhook::EntitlementHook::replace) themselves: the
//! [`Replacement`](crate::webhook::Replacement) names its subscription, customer, status and
//! event time.
//!
//! Where the rights go: [`MemoryStoreHook`](crate::webhook::MemoryStoreHook) replaces them in a
//! [`MemoryStore`](crate::MemoryStore); over records in Redis (feature `redis`), a hook's
//! `replace` calls `RedisPlanStore::replace_rights`, which rewrites the JSON record with a
//! compare-and-set, so that no concurrent write is lost; the application's own store
//! implements `replace` with [`Replacement::apply_to`](crate::webhook::Replacement::apply_to)
//! or [`apply_to_json`](crate::webhook::Replacement::apply_to_json) in a transaction.
//!
//! The remembered event ids and the last event of each subscription are kept in this
//! receiver's memory (bounded; [`dedup_capacity`](StripeConfigBuilder::dedup_capacity),
//! [`order_capacity`](StripeConfigBuilder::order_capacity)). Across restarts, or across
//! instances that each receive some of the deliveries, a hook that stores
//! [`Replacement::event_created`](crate::webhook::Replacement::event_created) per subscription
//! can refuse older events durably.
//!
//! # Example
//!
//! A `MemoryStore`, the plan layer with a user cache, and the receiver beside it:
//!
//! ```
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//!
//! use axum::routing::{post, post_service};
//! use axum::Router;
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_plans::stripe::{StripeConfig, StripeReceiver};
//! use tower_plans::webhook::MemoryStoreHook;
//! use tower_plans::{MemoryStore, PlanLimitLayer, UserCache, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(
//!     r#"{"plans": [{"name": "pro", "clients": 30}],
//!         "addons": [{"name": "seats", "limits": {"members": 1}}]}"#,
//!     r#"{"john": {"usage": {"clients": 3}}}"#,
//! )?;
//! let layer = PlanLimitLayer::builder(store.clone())
//!     .user_cache(UserCache::time_to_live(Duration::from_secs(600), 10_000))
//!     .build()?;
//! let config = StripeConfig::builder()
//!     .secret("whsec_test")
//!     .plan("pro_monthly", "pro") // a price's lookup_key
//!     .addon("price_seat", "seats") // a price id
//!     .invalidator(layer.invalidator())
//!     .build()?;
//! let receiver = StripeReceiver::new(config.clone(), MemoryStoreHook::new(store.clone()));
//! let app = Router::new()
//!     .route("/clients", post(|| async { "created" }))
//!     .layer(layer)
//!     .route("/webhooks/stripe", post_service(receiver));
//!
//! let create_client = || {
//!     let mut request = Request::post("/clients").body(axum::body::Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     request
//! };
//! assert_eq!(app.clone().oneshot(create_client()).await?.status(), StatusCode::FORBIDDEN);
//!
//! // Stripe announces john's subscription.
//! let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
//! let event = |id: &str, kind: &str, status: &str| {
//!     let body = format!(
//!         r#"{{"id": "{id}", "type": "customer.subscription.{kind}", "created": {now},
//!              "data": {{"object": {{"id": "sub_1", "object": "subscription",
//!                  "status": "{status}", "customer": "cus_1", "metadata": {{"user_id": "john"}},
//!                  "items": {{"data": [
//!                      {{"price": {{"id": "price_1", "lookup_key": "pro_monthly"}}, "quantity": 1,
//!                        "current_period_start": {now}, "current_period_end": {end}}},
//!                      {{"price": {{"id": "price_seat"}}, "quantity": 5,
//!                        "current_period_start": {now}, "current_period_end": {end}}}]}}}}}}}}"#,
//!         end = now + 30 * 86_400
//!     );
//!     Request::post("/webhooks/stripe")
//!         .header("stripe-signature", config.sign(now, body.as_bytes()))
//!         .body(axum::body::Body::from(body))
//!         .unwrap()
//! };
//! let response = app.clone().oneshot(event("evt_1", "created", "active")).await?;
//! assert_eq!(response.status(), StatusCode::OK); // {"status":"applied"}
//! assert_eq!(app.clone().oneshot(create_client()).await?.status(), StatusCode::OK);
//! assert_eq!(store.subscriber("john").unwrap().addons[0].quantity, 5);
//!
//! // The subscription ends: the plan and the Stripe add-ons go.
//! let response = app.clone().oneshot(event("evt_2", "deleted", "canceled")).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(app.clone().oneshot(create_client()).await?.status(), StatusCode::FORBIDDEN);
//! assert!(store.subscriber("john").unwrap().addons.is_empty());
//! # Ok(())
//! # }
//! ```

mod config;
mod event;
mod lookup;
mod order;
mod rights;
mod service;
mod signature;

pub use config::{
    StripeConfig, StripeConfigBuilder, DEFAULT_GRACE, DEFAULT_ORDER_CAPACITY,
    DEFAULT_PAST_DUE_GRACE, DEFAULT_TOLERANCE,
};
pub use event::{StripeEvent, StripeEventKind, Subscription, SubscriptionItem, SubscriptionStatus};
pub use lookup::CustomerLookup;
pub use rights::SOURCE;
pub use service::StripeReceiver;
pub use signature::{SignatureHeader, SIGNATURE_HEADER};

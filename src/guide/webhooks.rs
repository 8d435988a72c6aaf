//! # Billing webhooks
//!
//! Plans change outside the request path: a purchase, a renewal, a failed payment, a
//! cancellation. Billing platforms announce each change by POSTing a signed event. Two receivers,
//! each a tower service to mount on a route of its own (outside the plan layer), turn those
//! events into changed records and then invalidate the user in every layer that caches them:
//!
//! - [`webhook::WebhookReceiver`](crate::webhook::WebhookReceiver) (feature `webhook`) takes
//!   entitlement events signed with a shared secret (HMAC-SHA256 over the timestamp and the raw
//!   body, in Purchasely's headers by default): `ACTIVATE` and `DEACTIVATE` grant and take away a
//!   plan, `ADDON_ACTIVATE` and `ADDON_DEACTIVATE` an [add-on](super::addons).
//! - [`stripe::StripeReceiver`](crate::stripe::StripeReceiver) (feature `stripe`, which turns on
//!   `webhook`) takes Stripe's `customer.subscription.*` events, checks their `Stripe-Signature`,
//!   maps the subscription's prices to a plan and add-ons, and **replaces** everything Stripe
//!   granted the user before, whole, so that a missed or late event is corrected by the next one.
//!
//! Both work the same way around the event:
//!
//! - a request that is not signed with one of the configured secrets, or whose timestamp is not
//!   within the tolerance (5 minutes), is answered `401`; a body over the limit (1 MiB) `413`; a
//!   body that is not an event `400`. Nothing in a request makes a receiver panic;
//! - an event whose id was applied recently is acknowledged (`200`) and not applied again, and
//!   concurrent deliveries of one id apply it once;
//! - the event is applied by an [`EntitlementHook`](crate::webhook::EntitlementHook), then the
//!   user is invalidated through the configured [`Invalidate`](crate::webhook::Invalidate) (the
//!   layer's [`Invalidator`](crate::Invalidator), or a `redis::RedisInvalidator` that reaches
//!   every instance), and only then is the event acknowledged with `200`. When the hook or the
//!   invalidation fails, the answer is `500`: the sender retries, and the retry applies it;
//! - every answer has a small JSON body (`{"status":"applied"}`, `{"error":"bad_signature"}`)
//!   and carries its [`WebhookOutcome`](crate::webhook::WebhookOutcome) in the response
//!   extensions.
//!
//! The [`webhook`](crate::webhook) and [`stripe`](crate::stripe) modules give every step, and
//! Stripe's statuses (trialing, active, past due, canceled, ...) as rights.
//!
//! ## Where the events go
//!
//! [`MemoryStoreHook`](crate::webhook::MemoryStoreHook) applies both kinds to a
//! [`MemoryStore`](crate::MemoryStore). Over Redis records, a hook calls
//! `RedisPlanStore::replace_rights`, which rewrites the record with a compare-and-set. Over your
//! own database, implement the hook: `apply` for the signed events,
//! [`replace`](crate::webhook::EntitlementHook::replace) for Stripe's, where
//! [`Replacement::apply_to`](crate::webhook::Replacement::apply_to) does the replacement on a
//! record (inside a transaction, in a real database). The trait is an `async_trait`, so the
//! application depends on the `async-trait` crate to implement it. A hook should be idempotent:
//! the remembered event ids are bounded and local to the process.
//!
//! ## Example
//!
//! One hook over the application's records, behind both receivers:
//!
//! ```
//! # #[cfg(feature = "stripe")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::HashMap;
//! use std::time::{SystemTime, UNIX_EPOCH};
//!
//! use async_trait::async_trait;
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use axum::routing::post_service;
//! use axum::Router;
//! use tokio::sync::Mutex;
//! use tower::ServiceExt;
//! use tower_plans::stripe::{StripeConfig, StripeReceiver};
//! use tower_plans::subscriber::Assignment;
//! use tower_plans::webhook::{
//!     Effect, EntitlementEvent, EntitlementHook, Replacement, WebhookConfig, WebhookReceiver,
//! };
//! use tower_plans::{BoxError, Subscriber};
//!
//! /// The application's records; a database in real life.
//! #[derive(Default)]
//! struct Accounts {
//!     records: Mutex<HashMap<String, Subscriber>>,
//! }
//!
//! #[async_trait]
//! impl EntitlementHook for Accounts {
//!     async fn apply(&self, event: &EntitlementEvent) -> Result<(), BoxError> {
//!         let user = event.user().ok_or("the receiver passes only events about a user")?;
//!         let mut records = self.records.lock().await;
//!         let record = records.entry(user.to_owned()).or_default();
//!         match event.effect() {
//!             Effect::Grant => {
//!                 let plan = event.plan.as_deref().ok_or("an ACTIVATE names its plan")?;
//!                 record.assignment = Some(Assignment::new(plan));
//!             }
//!             Effect::Revoke => record.assignment = None,
//!             // Answered 500: the sender keeps it and retries.
//!             _ => return Err("this application sells no add-ons this way".into()),
//!         }
//!         Ok(())
//!     }
//!
//!     async fn replace(&self, rights: &Replacement) -> Result<(), BoxError> {
//!         let mut records = self.records.lock().await;
//!         rights.apply_to(records.entry(rights.user.clone()).or_default());
//!         Ok(())
//!     }
//! }
//!
//! let accounts = std::sync::Arc::new(Accounts::default());
//! let billing = WebhookConfig::builder().secret("whsec_billing").build()?;
//! let stripe = StripeConfig::builder()
//!     .secret("whsec_stripe")
//!     .plan("pro_monthly", "pro") // a price's lookup_key
//!     .build()?;
//! let app = Router::new()
//!     .route(
//!         "/webhooks/billing",
//!         post_service(WebhookReceiver::new(billing.clone(), accounts.clone())),
//!     )
//!     .route(
//!         "/webhooks/stripe",
//!         post_service(StripeReceiver::new(stripe.clone(), accounts.clone())),
//!     );
//! let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
//!
//! // A signed ACTIVATE: john is on pro.
//! let body = r#"{"event_id": "e1", "event_name": "ACTIVATE", "user_id": "john", "plan": "pro"}"#;
//! let timestamp = now.to_string();
//! let signed = Request::post("/webhooks/billing")
//!     .header("x-purchasely-timestamp", &timestamp)
//!     .header("x-purchasely-request-signature", billing.sign(&timestamp, body.as_bytes()))
//!     .body(Body::from(body))?;
//! assert_eq!(app.clone().oneshot(signed).await?.status(), StatusCode::OK);
//! assert_eq!(accounts.records.lock().await["john"].plan_name(), Some("pro"));
//!
//! // A forged one changes nothing.
//! let forged = Request::post("/webhooks/billing")
//!     .header("x-purchasely-timestamp", &timestamp)
//!     .header("x-purchasely-request-signature", "00")
//!     .body(Body::from(body.replace("john", "eve")))?;
//! assert_eq!(app.clone().oneshot(forged).await?.status(), StatusCode::UNAUTHORIZED);
//! assert!(!accounts.records.lock().await.contains_key("eve"));
//!
//! // Stripe: ann's subscription is active until the end of its period.
//! let body = format!(
//!     r#"{{"id": "evt_1", "type": "customer.subscription.created", "created": {now},
//!          "data": {{"object": {{"id": "sub_1", "object": "subscription", "status": "active",
//!              "customer": "cus_1", "metadata": {{"user_id": "ann"}},
//!              "items": {{"data": [{{"price": {{"id": "price_1", "lookup_key": "pro_monthly"}},
//!                  "quantity": 1, "current_period_start": {now},
//!                  "current_period_end": {end}}}]}}}}}}}}"#,
//!     end = now + 30 * 86_400
//! );
//! let event = Request::post("/webhooks/stripe")
//!     .header("stripe-signature", stripe.sign(now, body.as_bytes()))
//!     .body(Body::from(body))?;
//! assert_eq!(app.clone().oneshot(event).await?.status(), StatusCode::OK);
//! assert_eq!(accounts.records.lock().await["ann"].plan_name(), Some("pro"));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "stripe"))]
//! # fn main() {}
//! ```
//!
//! With the plan layer in the same app, give both configurations the layer's invalidator
//! ([`WebhookConfigBuilder::invalidator`](crate::webhook::WebhookConfigBuilder::invalidator)),
//! so that an event reaches a user cache at once.
//!
//! ## Running them
//!
//! - `cargo run --example webhook --features webhook` serves an API whose plans follow signed
//!   events, and prints curl commands that sign them.
//! - `cargo run --example stripe --features stripe` runs a tour of signed Stripe events (a
//!   trial, the paid plan with seats, a cancellation, a redelivery, an older event, a forged
//!   one); `-- --check` runs it over loopback and exits 0 when every answer is as printed.
//! - The quickstart built with `--features stripe` and run with `STRIPE_WEBHOOK_SECRET` set
//!   receives Stripe's events at `POST /webhooks/stripe` (for example from
//!   `stripe listen --forward-to localhost:3000/webhooks/stripe`), mapping prices with its
//!   fixture's `"stripe": {"prices": {...}}`.

// The links to the `webhook` and `stripe` modules resolve when the features are on, as on
// docs.rs.
#![cfg_attr(
    not(all(feature = "webhook", feature = "stripe")),
    allow(rustdoc::broken_intra_doc_links)
)]

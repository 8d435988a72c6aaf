//! # Plans and subscribers
//!
//! The layer asks its [`PlanStore`](crate::PlanStore) for two things: the [`Catalog`] of plans,
//! and the [`Subscriber`] record of the user who sent the request. Both have a JSON form, that of
//! the Node.js `subscriber` package, which [`MemoryStore`](crate::MemoryStore) and the Redis
//! store read. A store of your own may build them in Rust instead ([`Catalog::builder`],
//! [`Subscriber::new`]); both ways check the same rules.
//!
//! ## The catalog
//!
//! ```json
//! {
//!   "trial": {"duration": 14, "fallback": "free"},
//!   "actions": ["export"],
//!   "plans": [
//!     {"name": "free",   "limits": {"clients": 3, "projects": {"create": 1, "delete": 0}}},
//!     {"name": "bronze", "clients": 10, "groups": {"index": null, "show": 10, "create": 3}},
//!     {"name": "pro",    "clients": null, "reports": {"export": {"max": 20, "per": "day"}}}
//!   ]
//! }
//! ```
//!
//! - Only `plans` is required, and the whole catalog may be a bare array of plans.
//! - `trial` is a number of days, or `{"duration": days, "fallback": "plan"}`.
//! - A plan's limits are under `limits`; without that key, every property but `name` is a limit
//!   (`bronze` and `pro` above).
//! - A number limits `create` only: `"clients": 3` is "3 clients". `null`, or leaving the
//!   resource out, is unlimited; `0` blocks the action.
//! - An object limits actions by name: `index`, `show`, `create`, `update`, `patch` (the `update`
//!   limit applies when a plan sets no `patch` limit), `delete` (`destroy` is accepted) and the
//!   custom actions declared in the top-level `actions` array. Any other key is an error, so a
//!   misspelt `craete` cannot become a limit that nothing checks.
//! - A limit may be a quota that resets, `{"max": 20, "per": "day"}`: see
//!   [Quotas that reset](super::quotas).
//! - `addons` lists add-ons, read as plans are: see [Add-ons](super::addons).
//!
//! A resource is *governed* when some plan or add-on names it; on a plan that does not name it,
//! it is unlimited. Anything malformed is a [`FormatError`](crate::format::FormatError) that
//! names the path to the bad value, such as `plans[2].limits.clients.create`. [`Catalog`] has the
//! complete rules.
//!
//! ## The subscriber record
//!
//! ```json
//! {"name": "john", "plan": "free", "usage": {"clients": 3, "tasks": {"create": 2, "show": 40}}}
//! ```
//!
//! - `plan` is a plan name, or an assignment
//!   `{"name": "pro", "trial": true, "join": <ms>, "expire": <ms>}` (milliseconds since the Unix
//!   epoch; `trial` defaults to `false`, and a trial needs `join` or `expire`). A record without
//!   `plan` has no plan.
//! - `usage` gives, per resource, a count (the items the user has, and the usage of every action
//!   without a count of its own) or counts per action. Without a `usage` key, the other
//!   top-level properties are the usage: `{"plan": "free", "clients": 3}`.
//! - `addons` lists the user's [add-on grants](super::addons); `cycle_anchor` is when the user's
//!   billing cycle started, as a billing provider reports it.
//!
//! Without [counted usage](super::counting), the record's usage is what limits are compared
//! with, and the application keeps it. [`Subscriber`] has the complete rules.
//!
//! ## How a request is decided
//!
//! For a governed request, the layer finds the plan that applies to the user at the time of the
//! layer's clock, then compares the user's usage with that plan's limit on the request's resource
//! and action. [`decide`](crate::decision::decide) gives the rules in full; in short:
//!
//! - A plan ends at its `expire`; a trial without one ends `join` plus the trial's duration. The
//!   layer's [`grace_period`](crate::PlanLimitLayerBuilder::grace_period) is added to every end.
//! - An ended trial falls back to the catalog's `fallback` plan, with that plan's limits only.
//!   Any other ended plan, no plan, or a plan the catalog does not know leaves the user without
//!   a plan: the [`default_plan`](crate::PlanLimitLayerBuilder::default_plan) applies if you set
//!   one, otherwise every governed request is refused (unless the user holds
//!   [add-ons](super::addons#without-a-plan) for the resource).
//! - The plan's limit on the resource and action, raised by the user's active add-ons, is then
//!   compared with the usage: unlimited allows; otherwise `usage >= limit` is refused, so a
//!   limit of 0 always refuses.
//!
//! A refusal is a `403` with `content-type: application/json` and one of these bodies:
//!
//! ```text
//! {"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3}
//! {"reason":"subscription","plan":"pro","expired":true,"date":1296000000}
//! {"reason":"subscription","plan":null,"item":"clients","action":"create"}
//! ```
//!
//! A governed request without a user is answered `401 {"reason":"unauthenticated"}`; a store
//! that fails answers `503 {"reason":"plan_store_unavailable"}` (see
//! [Configuration](super::configuration#when-a-store-fails)). The response carries the
//! [`Rejection`](crate::Rejection), and the [`Denial`](crate::Denial) of a 403, in its
//! extensions; [`render_rejection`](crate::PlanLimitLayerBuilder::render_rejection) changes how
//! these answers look. An allowed request reaches your service with the [`Allowed`](crate::Allowed)
//! decision in its extensions: the plan, its state, the limit and the usage, for a handler that
//! shows "3 of 10 clients used".
//!
//! ## Example
//!
//! A trial that falls back, and a plan that expires, judged against a clock the test moves:
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use axum::routing::post;
//! use axum::{Extension, Router};
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_plans::{Allowed, MemoryStore, PlanLimitLayer, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! const DAY: u64 = 86_400_000;
//!
//! let store = MemoryStore::from_json(
//!     r#"{
//!         "trial": {"duration": 14, "fallback": "free"},
//!         "plans": [{"name": "free", "clients": 3}, {"name": "pro", "clients": 30}]
//!     }"#,
//!     r#"{
//!         "john": {"plan": {"name": "pro", "trial": true, "join": 0}, "usage": {"clients": 5}},
//!         "ann": {"plan": {"name": "pro", "expire": 1296000000}, "usage": {"clients": 5}}
//!     }"#,
//! )?;
//! let now = Arc::new(AtomicU64::new(DAY));
//! let clock = Arc::clone(&now);
//! let plans = PlanLimitLayer::builder(store)
//!     .clock(move || clock.load(Ordering::Relaxed))
//!     .build()?;
//!
//! let app = Router::new()
//!     .route(
//!         "/clients",
//!         post(|Extension(allowed): Extension<Allowed>| async move {
//!             format!("{} ({})", allowed.plan, allowed.state.as_str())
//!         }),
//!     )
//!     .route_layer(plans);
//! let create = |user: &str| {
//!     let mut request = Request::post("/clients").body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from(user));
//!     request
//! };
//! let body = |response: axum::response::Response| async move {
//!     let bytes = response.into_body().collect().await.unwrap().to_bytes();
//!     String::from_utf8(bytes.to_vec()).unwrap()
//! };
//!
//! // Day 1: john is on his trial of pro, ann on pro.
//! let response = app.clone().oneshot(create("john")).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(body(response).await, "pro (trial)");
//!
//! // Day 15: john's trial is over and free applies, where 5 clients are too many;
//! // ann's plan ended on day 15 and nothing replaces it.
//! now.store(15 * DAY, Ordering::Relaxed);
//! let response = app.clone().oneshot(create("john")).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! assert_eq!(
//!     body(response).await,
//!     r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":5}"#
//! );
//! let response = app.clone().oneshot(create("ann")).await?;
//! assert_eq!(
//!     body(response).await,
//!     r#"{"reason":"subscription","plan":"pro","expired":true,"date":1296000000}"#
//! );
//!
//! // Someone the store does not know has no plan.
//! let response = app.clone().oneshot(create("bob")).await?;
//! assert_eq!(
//!     body(response).await,
//!     r#"{"reason":"subscription","plan":null,"item":"clients","action":"create"}"#
//! );
//! # Ok(())
//! # }
//! ```
//!
//! [`Catalog`]: crate::Catalog
//! [`Catalog::builder`]: crate::Catalog::builder
//! [`Subscriber`]: crate::Subscriber
//! [`Subscriber::new`]: crate::Subscriber::new

//! Tower middleware that enforces subscription-plan limits.
//!
//! A SaaS backend sells plans: "free" keeps 3 clients, "pro" 30; a 14-day trial of "pro" falls
//! back to "free"; plans expire. `tower-plans` is one tower [`Layer`](tower_layer::Layer),
//! [`PlanLimitLayer`], placed after authentication. For every request it:
//!
//! 1. maps the method and path to a governed resource and [`Action`] with a
//!    [`RouteTable`](routes::RouteTable) (REST conventions, a configurable `base`, per-resource
//!    paths and custom routes), in a way that query strings, percent-encoding, doubled slashes,
//!    dot segments and case cannot bypass; an ungoverned request passes straight through;
//! 2. finds the user: a [`UserId`] in the request extensions, put there by your authentication,
//!    or your own extractor; a governed request without one is answered `401`;
//! 3. loads the [`Catalog`] of plans and the user's [`Subscriber`] record (plan assignment and
//!    usage) from a [`PlanStore`], caching the catalog and, optionally, users;
//! 4. [`decide`](decision::decide)s: trials, fallbacks, expiry, grace periods and default plans,
//!    then the plan's [`Limit`](catalog::Limit), raised by the user's active
//!    [add-ons](catalog::Addon), against the user's usage. A denial is answered
//!    `403` with a JSON body; an allowed request reaches your service with the [`Allowed`]
//!    decision in its extensions.
//!
//! With a [`UsageStore`] ([`count_usage`](PlanLimitLayerBuilder::count_usage)) the layer keeps
//! the counts itself: an allowed request reserves its unit before your service runs and its
//! response commits or releases it, so concurrent requests never overshoot a limit.
//!
//! A limit may be a quota that resets each UTC day, ISO week, month or year
//! ([`Limit::Periodic`](catalog::Limit::Periodic)): its denial says when it resets and carries
//! `Retry-After`. [`rate_limit_headers`](PlanLimitLayerBuilder::rate_limit_headers) adds the
//! `RateLimit-Policy` and `RateLimit` header fields, and
//! [`entitlements`](PlanLimitLayer::entitlements) (or the
//! [`EntitlementsService`](entitlements::EntitlementsService)) tells a front end what a user may
//! do, as data.
//!
//! It works wrapping axum routers, hyper services and any tower stack. [`MemoryStore`] is an
//! in-memory store that loads the JSON formats, can be changed while serving, and counts usage.
//! The [`guide`] explains each part, with examples that run.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_plans::{Allowed, Catalog, MemoryStore, PlanLimitLayer, Subscriber, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let catalog = Catalog::from_json(r#"[{"name": "free", "clients": 3}, {"name": "pro", "clients": 30}]"#)?;
//! let store = MemoryStore::new(catalog);
//! store.insert_user("john", Subscriber::from_json(r#"{"name": "john", "plan": "free", "clients": 3}"#)?);
//!
//! let service = ServiceBuilder::new()
//!     .layer(PlanLimitLayer::builder(store).build()?)
//!     .service(service_fn(|req: Request<Full<bytes::Bytes>>| async move {
//!         let plan = req.extensions().get::<Allowed>().map(|a| a.plan.to_string());
//!         Ok::<_, Infallible>(Response::new(Full::from(plan.unwrap_or_default())))
//!     }));
//!
//! // Authentication runs before the layer and inserts the user's id.
//! let request = |method: &str| {
//!     let mut req = Request::builder().method(method).uri("/clients").body(Full::default()).unwrap();
//!     req.extensions_mut().insert(UserId::from("john"));
//!     req
//! };
//!
//! // john may list his clients ...
//! let res = service.clone().oneshot(request("GET")).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! // ... but "free" keeps 3 clients and he has 3.
//! let res = service.clone().oneshot(request("POST")).await?;
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! let body = res.into_body().collect().await?.to_bytes();
//! assert_eq!(
//!     body,
//!     r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3}"#
//! );
//! # Ok(())
//! # }
//! ```
//!
//! # In axum
//!
//! Put the layer on the router with `route_layer`, so paths the application does not serve stay
//! `404`, and your authentication outside it with `layer`, so it runs first and inserts the
//! [`UserId`]. Handlers read the decision from the request extensions:
//!
//! ```
//! use axum::{routing::get, Extension, Router};
//! use tower_plans::{Allowed, Catalog, MemoryStore, PlanLimitLayer};
//!
//! async fn list(Extension(allowed): Extension<Allowed>) -> String {
//!     format!("you are on the {} plan", allowed.plan)
//! }
//!
//! fn app() -> Result<Router, Box<dyn std::error::Error>> {
//!     let catalog = Catalog::from_json(
//!         r#"{
//!             "trial": {"duration": 14, "fallback": "free"},
//!             "plans": [
//!                 {"name": "free", "clients": 3},
//!                 {"name": "pro", "clients": 30}
//!             ]
//!         }"#,
//!     )?;
//!     let store = MemoryStore::new(catalog);
//!     let plans = PlanLimitLayer::builder(store).base("/api").build()?;
//!
//!     Ok(Router::new()
//!         .route("/api/clients", get(list).post(|| async { "created" }))
//!         // Checks only requests that matched a route: unknown paths stay 404.
//!         .route_layer(plans))
//!     // Your authentication goes outside, `.layer(auth)`, so it runs first and inserts a `UserId`.
//! }
//! # app().unwrap();
//! ```
//!
//! # The guide
//!
//! The [`guide`] has a chapter for each part, with examples that run:
//! [plans and subscribers](guide::catalog), [add-ons](guide::addons),
//! [paths and actions](guide::routes), [configuration](guide::configuration),
//! [counting usage](guide::counting), [quotas](guide::quotas), [metered plans](guide::metering),
//! [billing cycles, rates, soft limits and alerts](guide::cycles),
//! [RateLimit headers](guide::rate_limit_headers), [entitlements](guide::entitlements),
//! [your own database](guide::own_database), [several instances with Redis](guide::redis),
//! [billing webhooks](guide::webhooks), [metrics and tracing](guide::metrics), the
//! [examples](guide::examples) and [fuzzing](guide::fuzzing).
//!
//! # Feature flags
//!
//! All are off by default; each brings in only its own dependencies.
//!
//! - `webhook`: a receiver for signed entitlement webhooks that updates plans and add-ons and
//!   invalidates the layer's caches (`tower_plans::webhook`).
//! - `stripe` (turns on `webhook`): a receiver for Stripe's subscription webhooks
//!   (`Stripe-Signature`) that replaces each user's Stripe plan and add-ons
//!   (`tower_plans::stripe`).
//! - `redis`: several instances over one Redis (`tower_plans::redis`): counters and reservations
//!   in Lua scripts, a plan store over Redis keys, and invalidation broadcast over pub/sub.
//! - `redis-cluster` (turns on `redis`): the same on a Redis Cluster
//!   (`RedisConnection::open_cluster`).
//! - `metrics`: counters of decisions, store calls, cache hits and misses, reservations and
//!   webhook events, and a histogram of store latency, through the `metrics` facade, all named
//!   `tower_plans_*` ([the list](guide::metrics)). The application installs the exporter.
//! - `usage-page`: a page for your customers that shows their plan, limits, quotas, overage,
//!   credit pools and top-ups from the entitlements JSON (`tower_plans::usage_page`), served by
//!   [`PlanLimitLayer::usage_page`]; no dependencies.
//!
//! # Tracing
//!
//! Each governed request runs in an info-level `plan_limit` span with its `resource` and
//! `action`, then the `plan` and the `outcome` once known; each store call in a debug-level
//! `store_call` child span. The user id is logged at debug level only. See
//! [Metrics and tracing](guide::metrics).

#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod alerts;
mod body;
mod cache;
pub mod catalog;
mod check;
mod count;
pub mod decision;
pub mod entitlements;
mod error;
pub mod format;
mod future;
pub mod guide;
mod hash;
mod headers;
mod invalidator;
mod layer;
pub mod lease;
mod metrics;
mod names;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
pub mod rate;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod response;
pub mod routes;
mod service;
pub mod store;
#[cfg(feature = "stripe")]
#[cfg_attr(docsrs, doc(cfg(feature = "stripe")))]
pub mod stripe;
pub mod subscriber;
mod time;
mod timeout;
#[cfg(feature = "usage-page")]
#[cfg_attr(docsrs, doc(cfg(feature = "usage-page")))]
pub mod usage_page;
mod user;
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub mod webhook;

pub use body::ResponseBody;
pub use cache::UserCache;
pub use catalog::{Action, Catalog};
pub use count::Meter;
pub use decision::{Allowed, Denial};
pub use error::ConfigError;
pub use future::ResponseFuture;
pub use invalidator::Invalidator;
pub use layer::{PlanLimitLayer, PlanLimitLayerBuilder};
pub use response::{JsonRejection, Rejection, RenderRejection};
pub use service::PlanLimit;
pub use store::{BoxError, MemoryStore, PlanStore, UsageStore};
pub use subscriber::Subscriber;
pub use user::{RequestHead, UserId};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

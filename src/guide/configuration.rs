//! # Configuration
//!
//! [`PlanLimitLayer::builder`](crate::PlanLimitLayer::builder) takes the plan store; every option
//! has a default, and [`build`](crate::PlanLimitLayerBuilder::build) checks them all at once,
//! returning a [`ConfigError`](crate::ConfigError) that names the bad one.
//!
//! | builder method | default | meaning |
//! |---|---|---|
//! | [`base(path)`](crate::PlanLimitLayerBuilder::base) | `/` | where resources live ([Paths and actions](super::routes)) |
//! | [`path(resource, template)`](crate::PlanLimitLayerBuilder::path) | `base/resource` | a resource's collection path |
//! | [`route(method, template, resource, action)`](crate::PlanLimitLayerBuilder::route) | none | a custom route |
//! | [`case_sensitive(bool)`](crate::PlanLimitLayerBuilder::case_sensitive) | `false` | match paths case-sensitively |
//! | [`plans_ttl(duration)`](crate::PlanLimitLayerBuilder::plans_ttl) | 60 minutes | how long the catalog is used before it is fetched again; zero fetches it for every request that could be governed |
//! | [`max_stale(duration)`](crate::PlanLimitLayerBuilder::max_stale) | 24 hours | how long past `plans_ttl` the last good catalog serves while refreshes fail |
//! | [`user_cache(UserCache)`](crate::PlanLimitLayerBuilder::user_cache) | off | cache subscriber records (time-to-live or time-to-idle, bounded) |
//! | [`store_timeout(duration)`](crate::PlanLimitLayerBuilder::store_timeout) | 5 seconds | a slower store call counts as failed |
//! | [`fail_open(bool)`](crate::PlanLimitLayerBuilder::fail_open) | `false` | on a store failure, answer 503 (`false`) or let the request pass with a warning |
//! | [`allowed_extension(bool)`](crate::PlanLimitLayerBuilder::allowed_extension) | `true` | put the [`Allowed`](crate::Allowed) decision in the request extensions |
//! | [`grace_period(duration)`](crate::PlanLimitLayerBuilder::grace_period) | zero | added to every expiry |
//! | [`default_plan(name)`](crate::PlanLimitLayerBuilder::default_plan) | none | the plan of users without an active plan |
//! | [`extract_user(closure)`](crate::PlanLimitLayerBuilder::extract_user) | the [`UserId`](crate::UserId) extension | who the user is |
//! | [`render_rejection(renderer)`](crate::PlanLimitLayerBuilder::render_rejection) | [`JsonRejection`](crate::JsonRejection) | how 401, 403, 429 and 503 answers look |
//! | [`clock(closure)`](crate::PlanLimitLayerBuilder::clock) | the system clock | the time trials, expiries, add-ons, quotas and rates are judged against |
//! | [`count_usage(store)`](crate::PlanLimitLayerBuilder::count_usage) | off | keep usage counts in a [`UsageStore`](crate::UsageStore) ([Counting usage](super::counting)) |
//! | [`lease(duration)`](crate::PlanLimitLayerBuilder::lease) | 5 minutes | how long a reservation that is never settled holds its unit |
//! | [`commit_when(closure)`](crate::PlanLimitLayerBuilder::commit_when) | `2xx` | which response statuses commit a reservation |
//! | [`commit_dropped(bool)`](crate::PlanLimitLayerBuilder::commit_dropped) | `false` | whether a response future dropped after the inner service was called commits its reservation (`true`) or releases it |
//! | [`rate_limit_headers(bool)`](crate::PlanLimitLayerBuilder::rate_limit_headers) | `false` | `RateLimit-Policy` and `RateLimit` fields on the responses of limited actions ([RateLimit headers](super::rate_limit_headers)) |
//! | [`rate_store(store)`](crate::PlanLimitLayerBuilder::rate_store) | [`MemoryRates`](crate::rate::MemoryRates) | where the plans' rates are kept; one store shared by every instance enforces them across instances ([Rates](super::cycles#rates)) |
//! | [`alerts(thresholds, handler)`](crate::PlanLimitLayerBuilder::alerts) | off | call `handler` when a count reaches a threshold of its limit; needs `count_usage` ([Usage alerts](super::cycles#usage-alerts)) |
//!
//! Cloning the layer, or the services it makes, copies a pointer: they share the configuration,
//! the catalog cache and the user cache.
//!
//! ## The catalog: loaded once, refreshed in the background
//!
//! The first request that needs a catalog loads it, and concurrent requests share that one
//! `plans()` call. Once `plans_ttl` has passed, the next request that could be governed starts
//! one refresh in the background and is decided with the loaded catalog meanwhile, so no request
//! waits for a refresh. A failed refresh is logged at warn level, and the last good catalog
//! keeps serving for up to `max_stale`; the next attempt waits `plans_ttl` or 5 seconds,
//! whichever is shorter. Outside a Tokio runtime there is no background: the request that starts
//! the refresh runs it and waits for it.
//!
//! Which resources are governed comes from the catalog, so a request that *could* be governed
//! waits for a catalog when none is usable: before the first load, after
//! [`Invalidator::catalog`](crate::Invalidator::catalog), past `max_stale`, or always with a zero
//! `plans_ttl`. A request could be governed when its method is `GET`, `HEAD`, `POST`, `PUT`,
//! `PATCH` or `DELETE` and its path is at or below the base, or on a configured `path`, or when
//! a custom route matches it. Any other request, such as `/health` beside `base("/api")`, passes
//! without touching the store, even while the store is down. With the default `base("/")` every
//! path could be governed: give your API a base, or serve health checks outside the layer. The
//! [layer's docs](crate::PlanLimitLayer#what-could-be-governed) say it exactly.
//!
//! ## The user cache and invalidation
//!
//! By default every governed request asks the store for the user's record, since usage changes.
//! [`UserCache::time_to_live`](crate::UserCache::time_to_live) (or
//! [`time_to_idle`](crate::UserCache::time_to_idle), which each request extends) keeps records
//! between requests, for a bounded number of users; unknown users are cached too, and
//! concurrent misses for one user make one store call.
//!
//! When rights change (an admin action, a payment), change the store first, then tell the
//! layer through the handle from [`PlanLimitLayer::invalidator`](crate::PlanLimitLayer::invalidator):
//! [`user(id)`](crate::Invalidator::user) drops one user's record,
//! [`all_users()`](crate::Invalidator::all_users) every record, and
//! [`catalog()`](crate::Invalidator::catalog) the catalog. The handle is cheap to clone, `Send`
//! and `Sync`: give it to the admin routes or the webhook receiver. A request that starts after
//! the call reads the store again; a store call that began before it is not cached. With several
//! instances, each layer has its own caches: see [Several instances](super::redis).
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use axum::routing::post;
//! use axum::Router;
//! use tower::ServiceExt;
//! use tower_plans::subscriber::Assignment;
//! use tower_plans::{MemoryStore, PlanLimitLayer, UserCache, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(
//!     r#"[{"name": "free", "clients": 3}, {"name": "pro", "clients": 30}]"#,
//!     r#"{"john": {"plan": "free", "usage": {"clients": 3}}}"#,
//! )?;
//! let plans = PlanLimitLayer::builder(store.clone())
//!     .base("/api")
//!     .user_cache(UserCache::time_to_live(Duration::from_secs(600), 10_000))
//!     .build()?;
//! let invalidator = plans.invalidator();
//! let app = Router::new()
//!     .route("/api/clients", post(|| async { StatusCode::CREATED }))
//!     .route_layer(plans);
//! let create = || {
//!     let mut request = Request::post("/api/clients").body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     request
//! };
//! assert_eq!(app.clone().oneshot(create()).await?.status(), StatusCode::FORBIDDEN);
//!
//! // John upgrades. The layer still has his free record cached ...
//! store.set_plan("john", Some(Assignment::new("pro")));
//! assert_eq!(app.clone().oneshot(create()).await?.status(), StatusCode::FORBIDDEN);
//!
//! // ... until it is told.
//! invalidator.user("john");
//! assert_eq!(app.clone().oneshot(create()).await?.status(), StatusCode::CREATED);
//! # Ok(())
//! # }
//! ```
//!
//! ## When a store fails
//!
//! A store call that fails, or takes longer than `store_timeout`, fails the request's check.
//! By default the layer then fails closed: `503 {"reason":"plan_store_unavailable"}`. With
//! `fail_open(true)` the request passes unchecked (and uncounted), with a warning in the log.
//! Either way the store's error text is logged, never sent to the client.
//!
//! The timeout runs on Tokio's timer from the moment a call first has to wait: a store that
//! answers at once, such as [`MemoryStore`](crate::MemoryStore), never sets a timer. Outside a
//! Tokio runtime there is no timer, and store calls are awaited however long they take. Inside
//! a runtime built without timers (`enable_time`), a store call that has to wait panics;
//! `#[tokio::main]` enables them.
//!
//! ```
//! use std::sync::Arc;
//!
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use axum::routing::get;
//! use axum::Router;
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_plans::store::StoreFuture;
//! use tower_plans::{Catalog, PlanLimitLayer, PlanStore, Subscriber, UserId};
//!
//! /// A store whose database is down: the catalog loads, users do not.
//! struct Down(Arc<Catalog>);
//!
//! impl PlanStore for Down {
//!     fn plans(&self) -> StoreFuture<'_, Arc<Catalog>> {
//!         StoreFuture::ready(Ok(Arc::clone(&self.0)))
//!     }
//!
//!     fn user<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
//!         StoreFuture::new(async { Err("connection refused".into()) })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let catalog = Arc::new(Catalog::from_json(r#"[{"name": "free", "clients": 3}]"#)?);
//! let request = || {
//!     let mut request = Request::get("/clients").body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     request
//! };
//!
//! let closed = PlanLimitLayer::builder(Down(Arc::clone(&catalog))).build()?;
//! let app = Router::new().route("/clients", get(|| async { "clients" })).route_layer(closed);
//! let response = app.oneshot(request()).await?;
//! assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(body, r#"{"reason":"plan_store_unavailable"}"#);
//!
//! let open = PlanLimitLayer::builder(Down(catalog)).fail_open(true).build()?;
//! let app = Router::new().route("/clients", get(|| async { "clients" })).route_layer(open);
//! assert_eq!(app.oneshot(request()).await?.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```

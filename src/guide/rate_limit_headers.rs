//! # RateLimit headers
//!
//! [`rate_limit_headers(true)`](crate::PlanLimitLayerBuilder::rate_limit_headers) adds the
//! `RateLimit-Policy` and `RateLimit` header fields of the IETF httpapi draft ("RateLimit header
//! fields for HTTP") to the responses of every action with a finite limit, allowed or refused,
//! so that a client sees how much it has left without asking. The policy is named
//! `resource.action`; `q` is the limit and `r` what is left after the request (0 on a refusal).
//! A [quota](super::quotas) adds the length of its current period in seconds (`w`) and the
//! seconds until it resets (`t`):
//!
//! ```text
//! RateLimit-Policy: "clients.create";q=3
//! RateLimit: "clients.create";r=2
//!
//! RateLimit-Policy: "reports.create";q=20;w=86400
//! RateLimit: "reports.create";r=19;t=43200
//! ```
//!
//! - The fields are appended, so those of another limiter stay beside them.
//! - A request that draws from a [credit pool](super::metering) also gets the pool's policy,
//!   named `"credits.<pool>"`.
//! - A [rate](super::cycles#rates) has a policy of its own, `"api.index.rate"` (`"rate"` for
//!   the plan-wide one): `q` requests per `w` seconds, `r` that could come at once, and `t`
//!   seconds until the rate is whole again (on its `429`, until the next request fits).
//! - A quota that follows the [billing cycle](super::cycles#billing-cycles) gives the cycle's
//!   length as `w` and the seconds to its end as `t`.
//! - Resource and action names outside printable ASCII get no fields.
//! - A counted request reports the count it reserved against; a request whose unit is then
//!   released (it failed) leaves one more than its `r` said.
//! - A quota's refusal, and a rate's `429`, carry `Retry-After` whether the option is on or
//!   not.
//! - The draft still changes; one function of the crate writes the fields, and its tests pin
//!   the exact strings.
//!
//! Writing the fields allocates their two values, so a limited request decided from the caches
//! is no longer free of allocations with the option on.
//!
//! ## Example
//!
//! ```
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use axum::routing::post;
//! use axum::Router;
//! use tower::ServiceExt;
//! use tower_plans::{MemoryStore, PlanLimitLayer, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(
//!     r#"[{"name": "free", "limits": {
//!         "clients": 3,
//!         "reports": {"create": {"max": 20, "per": "day"}}
//!     }}]"#,
//!     r#"{"john": {"plan": "free", "usage": {"clients": 2}}}"#,
//! )?;
//! let plans = PlanLimitLayer::builder(store.clone())
//!     .count_usage(store)
//!     .rate_limit_headers(true)
//!     .clock(|| 1_795_953_600_000) // 2026-11-29, 12:00 UTC
//!     .build()?;
//! let app = Router::new()
//!     .route("/clients", post(|| async { StatusCode::CREATED }))
//!     .route("/reports", post(|| async { StatusCode::CREATED }))
//!     .route_layer(plans);
//! let create = |path: &str| {
//!     let mut request = Request::post(path).body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     request
//! };
//!
//! // The last of john's three clients.
//! let response = app.clone().oneshot(create("/clients")).await?;
//! assert_eq!(response.status(), StatusCode::CREATED);
//! assert_eq!(response.headers()["ratelimit-policy"], r#""clients.create";q=3"#);
//! assert_eq!(response.headers()["ratelimit"], r#""clients.create";r=0"#);
//!
//! // The first report of the day.
//! let response = app.clone().oneshot(create("/reports")).await?;
//! assert_eq!(response.headers()["ratelimit-policy"], r#""reports.create";q=20;w=86400"#);
//! assert_eq!(response.headers()["ratelimit"], r#""reports.create";r=19;t=43200"#);
//! # Ok(())
//! # }
//! ```

//! # Quotas that reset
//!
//! Plans sell more than item counts: "1000 API calls a month", "20 exports a day". In place of a
//! number, an action's limit may be `{"max": N, "per": "hour" | "day" | "week" | "month" |
//! "year"}`:
//!
//! ```json
//! {"name": "free", "limits": {
//!   "clients": 3,
//!   "reports": {"create": {"max": 20, "per": "day"}},
//!   "api_calls": {"index": {"max": 1000, "per": "month"}}
//! }}
//! ```
//!
//! Periods are UTC calendar periods: an hour starts at minute 0, a day at midnight UTC, a week is
//! an ISO week (from Monday 00:00 UTC), a month and a year start on the 1st. The count belongs to the current
//! period and starts again from 0 in the next one. A quota may follow the subscription's billing
//! cycle instead (`"anchor": "subscription"`: from the day the user subscribed), see
//! [Billing cycles](super::cycles#billing-cycles). From Rust the limit is
//! [`Limit::per(20, Period::Day)`](crate::catalog::Limit::per); a malformed quota is a
//! [`FormatError`](crate::format::FormatError) naming its path
//! (`plans[0].limits.reports.create.per: unknown period "fortnight"; ...`).
//!
//! ## Counting per period
//!
//! With [counted usage](super::counting), each period has a counter of its own (a
//! [`Counter`](crate::store::Counter) made with
//! [`in_period(window)`](crate::store::Counter::in_period)), which starts from 0 rather than from
//! the subscriber record. A `create` under a quota counts the creates of the period, and a
//! `delete` gives nothing back to it (the resource's item count still goes up and down, for
//! plans that limit it). `MemoryStore` keeps a user's period counters beside the record and
//! forgets a period once the next one is used; the Redis store keeps them in a hash per user and
//! period (`…:{john}:used@2026-11`) that expires an hour after the period ends.
//!
//! Without counting, the record's usage is taken as the current period's: the application
//! resets it.
//!
//! ## When it resets
//!
//! A refusal by a quota says when the count resets (`resets`, in milliseconds since the Unix
//! epoch), and the response carries `Retry-After`, the seconds until then:
//!
//! ```text
//! HTTP/1.1 403 Forbidden
//! retry-after: 43200
//! content-type: application/json
//!
//! {"reason":"subscription","plan":"free","item":"reports","action":"create","maximum":2,"usage":2,"resets":1795996800000}
//! ```
//!
//! [`Allowed::window`](crate::Allowed::window) (and [`Allowed::resets`](crate::Allowed::resets))
//! give a handler the period of an allowed request; [entitlements](super::entitlements) give a
//! front end each quota's period and reset. [`Period::window`](crate::catalog::Period::window)
//! computes a period's bounds.
//!
//! ## Example
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use axum::routing::post;
//! use axum::Router;
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_plans::{MemoryStore, PlanLimitLayer, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(
//!     r#"[{"name": "free", "limits": {"reports": {"create": {"max": 2, "per": "day"}}}}]"#,
//!     r#"{"john": {"plan": "free"}}"#,
//! )?;
//! // Sunday 2026-11-29, 12:00 UTC.
//! let now = Arc::new(AtomicU64::new(1_795_953_600_000));
//! let clock = Arc::clone(&now);
//! let plans = PlanLimitLayer::builder(store.clone())
//!     .count_usage(store)
//!     .clock(move || clock.load(Ordering::Relaxed))
//!     .build()?;
//! let app = Router::new()
//!     .route("/reports", post(|| async { StatusCode::CREATED }))
//!     .route_layer(plans);
//! let create = || {
//!     let mut request = Request::post("/reports").body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     request
//! };
//!
//! for _ in 0..2 {
//!     assert_eq!(app.clone().oneshot(create()).await?.status(), StatusCode::CREATED);
//! }
//! let response = app.clone().oneshot(create()).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! assert_eq!(response.headers()["retry-after"], "43200"); // twelve hours to midnight
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(
//!     body,
//!     r#"{"reason":"subscription","plan":"free","item":"reports","action":"create","maximum":2,"usage":2,"resets":1795996800000}"#
//! );
//!
//! // Monday: a new day, a new count.
//! now.store(1_795_996_800_000, Ordering::Relaxed);
//! assert_eq!(app.clone().oneshot(create()).await?.status(), StatusCode::CREATED);
//!
//! // A period the catalog does not know is an error that names its place.
//! let error = tower_plans::Catalog::from_json(
//!     r#"[{"name": "free", "limits": {"reports": {"create": {"max": 2, "per": "fortnight"}}}}]"#,
//! )
//! .unwrap_err();
//! assert_eq!(error.path(), "plans[0].limits.reports.create.per");
//! # Ok(())
//! # }
//! ```

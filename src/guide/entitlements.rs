//! # Entitlements
//!
//! A front end wants to show "3 of 10 clients used, resets on the 1st" without guessing.
//! [`PlanLimitLayer::entitlements(user)`](crate::PlanLimitLayer::entitlements) returns what the
//! user may do, as [`Entitlements`](crate::entitlements::Entitlements):
//!
//! - the plan that applies, its standing (`active`, `trial`, `fallback`, `default`, `none` or
//!   `expired`) and when it ends;
//! - for every action that some plan or add-on of the catalog limits: the maximum (the plan's,
//!   raised by the user's active [add-ons](super::addons); `null` when unlimited), the usage
//!   (the usage store's count when the layer [counts usage](super::counting), the record's
//!   otherwise), what remains, a [quota](super::quotas)'s period and reset, and the limit's
//!   sources: the plan, and each active add-on with its quantity.
//!
//! It reads what a request of the user would read: the catalog and the record through the
//! layer's caches, with its store timeout and its clock. A store failure is an
//! [`Unavailable`](crate::entitlements::Unavailable) error (the store's error is logged, never
//! returned). An unknown user is not an error: they have no plan, or the default plan. Without a
//! plan, only the resources that active add-ons name are listed.
//!
//! [`PlanLimitLayer::entitlements_service()`](crate::PlanLimitLayer::entitlements_service) answers
//! the same as JSON for the request's user (found as the layer finds it), for a route such as
//! `GET /entitlements` behind the same authentication: `401` without a user, `503` when a store
//! fails.
//!
//! ```json
//! {"user": "alice", "plan": "free", "state": "active", "expires": null, "limits": [
//!   {"resource": "clients", "action": "create", "max": 13, "used": 2, "remaining": 11,
//!    "per": null, "resets": null,
//!    "sources": [{"plan": "free", "limit": 3}, {"addon": "more-clients", "limit": 10, "quantity": 1}]},
//!   {"resource": "reports", "action": "create", "max": 2, "used": 2, "remaining": 0,
//!    "per": "month", "resets": 1796083200000,
//!    "sources": [{"plan": "free", "limit": {"max": 2, "per": "month"}}]}
//! ], "credits": []}
//! ```
//!
//! The `credits` list holds the user's [credit pools](super::metering): each pool's allowance,
//! what was used of it, when it resets and the active grants with what remains of them.
//!
//! A [soft limit](super::cycles#soft-limits) adds its `"overage"` (a number, or `null` without
//! end), and a soft pool its `"overage"` and `"overage_used"`; hard ones have neither key. A
//! quota that follows the [billing cycle](super::cycles#billing-cycles) resets at the end of
//! the user's cycle.
//!
//! ## Example
//!
//! ```
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use axum::routing::post;
//! use axum::Router;
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_plans::entitlements::Standing;
//! use tower_plans::{MemoryStore, PlanLimitLayer, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(
//!     r#"{
//!         "plans": [{"name": "free", "limits": {
//!             "clients": 3,
//!             "reports": {"create": {"max": 2, "per": "month"}}
//!         }}],
//!         "addons": [{"name": "more-clients", "limits": {"clients": 10}}]
//!     }"#,
//!     r#"{"alice": {"plan": "free", "usage": {"clients": 2, "reports": 2},
//!                   "addons": [{"name": "more-clients"}]}}"#,
//! )?;
//! let plans = PlanLimitLayer::builder(store)
//!     .base("/api")
//!     .clock(|| 1_795_953_600_000) // 2026-11-29, 12:00 UTC
//!     .build()?;
//!
//! let alice = plans.entitlements("alice").await?;
//! assert_eq!(alice.standing, Standing::Active);
//! let clients = &alice.limits[0];
//! assert_eq!((clients.max(), clients.used, clients.remaining()), (Some(13), 2, Some(11)));
//!
//! // Beside the governed routes, behind the same authentication.
//! let app = Router::new()
//!     .route("/api/reports", post(|| async { "made" }))
//!     .route_layer(plans.clone())
//!     .route_service("/entitlements", plans.entitlements_service());
//! let mut request = Request::get("/entitlements").body(Body::empty())?;
//! request.extensions_mut().insert(UserId::from("alice"));
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let json = response.into_body().collect().await?.to_bytes();
//! assert_eq!(
//!     json,
//!     concat!(
//!         r#"{"user":"alice","plan":"free","state":"active","expires":null,"limits":["#,
//!         r#"{"resource":"clients","action":"create","max":13,"used":2,"remaining":11,"#,
//!         r#""per":null,"resets":null,"sources":[{"plan":"free","limit":3},"#,
//!         r#"{"addon":"more-clients","limit":10,"quantity":1}]},"#,
//!         r#"{"resource":"reports","action":"create","max":2,"used":2,"remaining":0,"#,
//!         r#""per":"month","resets":1796083200000,"#,
//!         r#""sources":[{"plan":"free","limit":{"max":2,"per":"month"}}]}],"credits":[]}"#,
//!     )
//! );
//! # Ok(())
//! # }
//! ```
//!
//! ## A page for your customers
//!
//! With the `usage-page` feature,
//! [`PlanLimitLayer::usage_page()`](crate::PlanLimitLayer::usage_page) serves a small,
//! self-contained page (HTML, CSS and JavaScript, nothing fetched from elsewhere) that reads
//! this JSON in the browser and shows it: the plan and its standing, a bar with used / max,
//! what remains and when it resets for each limit and pool, "Unlimited" without a bar,
//! overage in its own colour and in words, top-ups with their expiry, and a warning from 80 %
//! used. Route it beside the entitlements (`.route_service("/account", plans.usage_page())`),
//! behind the same session authentication: its fetch of `entitlements` carries the session
//! cookie. See [`usage_page`](crate::usage_page) for its headers and its
//! `Content-Security-Policy`.

//! A usage page for your customers: "3 of 10 clients, 812 of 1000 credits, resets in 12 days",
//! rendered in the browser from the [entitlements JSON](crate::entitlements#the-json-form).
//!
//! [`UsagePage`] is a tower service that answers one small, self-contained HTML page (its CSS
//! and JavaScript inline, no fonts, scripts or styles from anywhere else). In the browser the
//! page fetches the signed-in user's entitlements, `entitlements` beside the page by default
//! ([`entitlements_url`](UsagePage::entitlements_url) says otherwise), and shows:
//!
//! - the plan and how the user stands with it: active (and until when), on a trial and when it
//!   ends, a trial that fell back, the default plan, no plan, or expired and when;
//! - each limited action and each credit pool as a bar with used / max, what remains, and, for
//!   a quota or a renewing pool, when it resets ("resets in 12 days", with the date);
//! - a warning from 80 % used, "Limit reached" at the maximum, and usage past the maximum of a
//!   soft limit in its own colour and in words ("Over the limit by 12", the pool's overage
//!   used), with how much overage the plan allows;
//! - a pool's top-ups with what is left of each and when it expires;
//! - "Unlimited", with the usage, and no bar, for an action the plan does not limit.
//!
//! It reads well on a phone, follows the system's light or dark scheme, and means nothing by
//! colour alone: every state is written out, and the bars, which repeat the figures, are
//! hidden from assistive technology. `401` from the entitlements URL shows "Sign in ...", any
//! other failure a short message; with JavaScript off the page says it needs it.
//!
//! # Who the user is
//!
//! The page's request for the entitlements is a same-origin `fetch`, which carries the
//! browser's cookies: a real application serves the page and the
//! [`EntitlementsService`](crate::entitlements::EntitlementsService) behind the session
//! authentication it already has, and the entitlements are the signed-in user's. The page also
//! adds its own query parameters to that request (a demo that takes its user from `?user=`
//! gets the same user for both).
//!
//! # Headers
//!
//! `200` with `content-type: text/html; charset=utf-8`, `cache-control: no-cache` and an
//! `ETag` (a request whose `If-None-Match` names it gets `304`), and a strict
//! `Content-Security-Policy`: `default-src 'self'`, the inline style and script allowed by
//! their SHA-256 digests only, no `<base>`, forms or framing; also
//! `x-content-type-options: nosniff` and `referrer-policy: no-referrer`. `HEAD` gets the
//! headers; any other method `405` with `allow: GET, HEAD`. The service answers every path
//! it is given: route it with the router.
//!
//! The policy allows the page's own style and script only, so the page cannot be restyled from
//! outside; an application that wants its own look renders the same JSON itself. Every figure
//! on the page is a `<data>` element whose `value` is the JSON number, and each limit, pool
//! and top-up is an element whose `data-*` attributes repeat its JSON fields (`data-max`,
//! `data-used`, `data-resets`, ..., `null` written as `"null"`), so a browser test can compare
//! the page with the JSON exactly.
//!
//! # Example
//!
//! ```
//! use axum::body::Body;
//! use axum::http::{header, Request, StatusCode};
//! use axum::Router;
//! use tower::ServiceExt;
//! use tower_plans::{MemoryStore, PlanLimitLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(r#"[{"name": "free", "clients": 3}]"#, "{}")?;
//! let plans = PlanLimitLayer::builder(store).base("/api").build()?;
//! let app = Router::new()
//!     // ... your governed routes, with `.route_layer(plans.clone())` ...
//!     .route_service("/entitlements", plans.entitlements_service())
//!     .route_service("/account", plans.usage_page());
//! // ... and your session authentication around it all with `.layer(...)`.
//!
//! let response = app.oneshot(Request::get("/account").body(Body::empty())?).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
//! let policy = response.headers()[header::CONTENT_SECURITY_POLICY].to_str()?;
//! assert!(policy.starts_with("default-src 'self'; script-src 'sha256-"));
//! # Ok(())
//! # }
//! ```

mod page;
mod service;

pub use service::UsagePage;

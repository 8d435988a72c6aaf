//! # Metered plans: costs, credit pools, reported consumption and top-ups
//!
//! Plans sell consumption as well as counts: "1000 AI credits a month; an image costs 5, a chat
//! costs its tokens". Three pieces of data say it, and the layer enforces them with the
//! reservations of [counted usage](super::counting), for `n` units instead of one:
//!
//! - the catalog's `"meters"` say what a request costs, and which pool pays;
//! - plans and add-ons declare credit pools: an allowance per period, or for good;
//! - a subscriber record's `"grants"` are one-off top-ups of a pool.
//!
//! Metering needs [`count_usage`](crate::PlanLimitLayerBuilder::count_usage): the usage store
//! keeps what each pool and grant spent (see [Without counting](#without-counting)).
//!
//! ## Meters
//!
//! The catalog's top-level `"meters"` holds a meter by resource and action (REST actions, or the
//! custom actions of the catalog's `"actions"`):
//!
//! ```json
//! {
//!   "actions": ["export"],
//!   "plans": [
//!     {"name": "free", "limits": {"reports": {"export": 10}},
//!      "credits": {"ai": {"max": 50, "per": "month"}}},
//!     {"name": "pro", "limits": {"images": {"create": 300}},
//!      "credits": {"ai": {"max": 1000, "per": "month"}}}
//!   ],
//!   "addons": [{"name": "more-ai", "credits": {"ai": 500}}],
//!   "meters": {
//!     "images": {"create": {"cost": 5, "credits": "ai"}},
//!     "chat": {"create": {"credits": "ai", "report": true, "estimate": 200}},
//!     "reports": {"export": {"cost": 3}}
//!   }
//! }
//! ```
//!
//! - `cost` (default 1) is the units a request takes.
//! - `credits` names the credit pool it draws from. Without it, the cost is taken from the
//!   action's own limit: an export above takes 3 of free's 10, and is refused once fewer than 3
//!   are left.
//! - `report: true` means the handler reports what the request consumed
//!   ([below](#reported-consumption)); `estimate` (default 1) is what is reserved before the
//!   handler runs. A reported meter has no `cost`, and only a reported meter has an `estimate`.
//!
//! A request takes at least one unit, so a cost or estimate of 0 is an error, as is a pool that
//! no plan or add-on declares; each names its place (`meters.images.create.cost`,
//! `meters.images.create.credits`). A resource that a meter names is governed, like one a plan
//! names. From Rust, a meter is a [`Cost`](crate::catalog::Cost)
//! (`Cost::fixed(5).from_pool("ai")`, `Cost::reported(200).from_pool("ai")`) given to
//! [`CatalogBuilder::meter`](crate::catalog::CatalogBuilder::meter), and
//! [`Catalog::cost`](crate::Catalog::cost) finds the meter of a request.
//!
//! ## Credit pools
//!
//! A plan declares its pools beside its limits, with a limit's forms: `{"max": 1000, "per":
//! "month"}` renews each UTC period as a [quota](super::quotas) does, a number is a lifetime
//! allowance, `null` is unlimited. A plan without the pool has none of it: its requests that draw
//! from it are refused (with `"maximum":0`). An add-on raises a pool as it raises a limit: each
//! active `more-ai` add-on adds 500 to the allowance, times its quantity
//! ([Add-ons](super::addons)).
//!
//! A request whose meter draws from a pool reserves its units on the pool's counter (one per
//! user, pool and period: [`Counter::credits`](crate::store::Counter::credits)). When its action
//! also has a finite limit it reserves one unit there too, both or neither, atomically: a pro
//! user above may create 300 images, and each costs 5 credits. A request that fails gives back
//! what it reserved, as any counted request does.
//!
//! ## Top-ups
//!
//! A record may hold one-off grants of credits that do not renew:
//!
//! ```json
//! {"plan": "pro", "grants": [
//!   {"id": "g1", "credits": "ai", "amount": 500,
//!    "starts": 1795953600000, "expires": 1814400000000}
//! ]}
//! ```
//!
//! A grant counts from `starts` (inclusive; without it, always started) until `expires`
//! (exclusive; without it, never ends). Its units are spent only once the period's allowance
//! (the plan's, raised by the add-ons) is used up, the grant that expires soonest first. What a
//! grant spent does not come back at a new period, and an expired grant is gone with what it
//! had left. One reservation may take units from the allowance and from several grants, and its
//! commit or release keeps that split. Ids are unique within a record; a grant's spending is
//! counted under its id ([`Counter::grant`](crate::store::Counter::grant)). From Rust, a grant is
//! a [`CreditGrant`](crate::subscriber::CreditGrant), added with
//! [`Subscriber::with_grant`](crate::Subscriber::with_grant).
//!
//! ## Reported consumption
//!
//! Some costs are known only after the handler ran: the tokens of a model's answer. For a
//! reported meter the layer reserves the `estimate`, and puts a [`Meter`](crate::Meter) in the
//! request extensions. The handler calls [`report(units)`](crate::Meter::report) with what the
//! request consumed, as often as it likes (the amounts add up). When the response settles:
//!
//! - a success (a `2xx`, or what [`commit_when`](crate::PlanLimitLayerBuilder::commit_when)
//!   says) commits what was reported, and the rest of the estimate is given back;
//! - a report above the estimate is counted in full, even past the allowance: the work is done,
//!   and it is never refused after the fact; the next request finds less, and is refused when
//!   its estimate no longer fits (units beyond the hold go to the allowance while it has room,
//!   then to the grants, then past the allowance);
//! - a success that reported nothing commits the estimate (a report of 0 is a report, and
//!   counts 0);
//! - a failure commits nothing, whatever was reported.
//!
//! The reported units are those of the pool when the meter draws from one (the action's own
//! limit still takes one unit), else those of the action's own limit. A handler finds no meter
//! when the layer counts nothing for the request: [without counting](#without-counting), or
//! for a meter without a pool on an action other than `create` that the plan leaves unlimited.
//!
//! ### Streaming
//!
//! The response of a reported request settles when its body ends, not when its head is sent,
//! so a handler can report as it streams: the estimate stays held meanwhile. A body dropped
//! before its end (the client went away) or that fails settles the same way, with what was
//! reported until then. A stream must end within the
//! [`lease`](crate::PlanLimitLayerBuilder::lease) (5 minutes by default): a commit after the
//! lease counts nothing.
//!
//! ## What requests and refusals say
//!
//! - [`Allowed`](crate::Allowed) gives a metered request's [`cost`](crate::Allowed::cost) (the
//!   estimate, for a reported meter) and its pool in [`credits`](crate::Allowed::credits): the
//!   allowance, what was used of it before the request, and its period. Its JSON form adds
//!   `"cost"` when more than 1 and `"credits":{"pool":"ai","limit":1000,"usage":35,
//!   "remaining":965}` (with `resets` for a renewing pool).
//! - A pool that cannot cover the cost answers `403` with the reason `"credits"`
//!   ([`Denial::Credits`](crate::Denial::Credits)):
//!   `{"reason":"credits","plan":"pro","credits":"ai","maximum":1000,"usage":998,"cost":5,"resets":1796083200000}`.
//!   `maximum` and `usage` are the allowance's (grants aside), `cost` is there when more than 1,
//!   and `resets` and `Retry-After` come with a renewing pool. The metrics count these refusals
//!   under `reason="credits"`.
//! - A cost refused by the action's own limit is a
//!   [`LimitReached`](crate::Denial::LimitReached), whose usual body adds `"cost": 3` when the
//!   cost is more than 1.
//! - With [`rate_limit_headers`](crate::PlanLimitLayerBuilder::rate_limit_headers), a pool with
//!   a finite allowance has a policy of its own, named `"credits.<pool>"`, beside the action's:
//!   `RateLimit-Policy: "credits.ai";q=1000;w=2592000` and `RateLimit: "credits.ai";r=800;t=…`,
//!   where `r` is what the allowance has left after the request's cost (or estimate), grants
//!   aside.
//! - [Entitlements](super::entitlements) list each pool the user has some of, under `credits`:
//!   `{"pool","max","used","remaining","per","resets","grants":[{"id","remaining","expires"}]}`.
//!   `used` includes what requests under way hold; `grants` are the active grants, in the order
//!   they are spent.
//!
//! ## Without counting
//!
//! Without a usage store nothing records what a pool spent: a request is refused only when its
//! cost is more than the whole allowance and the active grants together (or its plan has no
//! such pool), a cost on an action's own limit is compared with the record's usage, no
//! [`Meter`](crate::Meter) is put in the extensions, and entitlements show nothing used. A
//! handler takes the meter as an `Option` where it may be missing.
//!
//! Every usage store of the crate ([`MemoryStore`](crate::MemoryStore), the Redis store and the
//! Postgres store) reserves several units, pools and grants; for your own, see
//! [Your own database](super::own_database).
//!
//! The [quickstart](super::examples) shows it all over HTTP: every plan of its fixture has a
//! monthly `ai` pool, `POST /api/images` costs 5 credits, `POST /api/chat` reports the `units`
//! of its JSON body while it streams its answer, the user `grace` holds a top-up and `ivan` the
//! `more-ai` add-on.
//!
//! ## Example: a cost of 5 against a pool
//!
//! ```
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
//!     r#"{
//!         "plans": [{"name": "pro", "credits": {"ai": {"max": 12, "per": "month"}}}],
//!         "meters": {"images": {"create": {"cost": 5, "credits": "ai"}}}
//!     }"#,
//!     r#"{"john": {"plan": "pro"}}"#,
//! )?;
//! let plans = PlanLimitLayer::builder(store.clone())
//!     .count_usage(store)
//!     .rate_limit_headers(true)
//!     .clock(|| 1_795_953_600_000) // 2026-11-29, 12:00 UTC
//!     .build()?;
//! let app = Router::new()
//!     .route("/images", post(|| async { StatusCode::CREATED }))
//!     .route_layer(plans.clone());
//! let image = || {
//!     let mut request = Request::post("/images").body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     request
//! };
//!
//! // Two images: 10 of the 12 credits.
//! let response = app.clone().oneshot(image()).await?;
//! assert_eq!(response.status(), StatusCode::CREATED);
//! assert_eq!(response.headers()["ratelimit"], r#""credits.ai";r=7;t=129600"#);
//! let response = app.clone().oneshot(image()).await?;
//! assert_eq!(response.status(), StatusCode::CREATED);
//! assert_eq!(response.headers()["ratelimit"], r#""credits.ai";r=2;t=129600"#);
//!
//! // A third does not fit in the 2 left.
//! let response = app.clone().oneshot(image()).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! assert_eq!(response.headers()["retry-after"], "129600"); // 36 hours to December
//! assert_eq!(
//!     response.headers()["ratelimit-policy"],
//!     r#""credits.ai";q=12;w=2592000"#
//! );
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(
//!     body,
//!     r#"{"reason":"credits","plan":"pro","credits":"ai","maximum":12,"usage":10,"cost":5,"resets":1796083200000}"#
//! );
//!
//! let pool = &plans.entitlements("john").await?.credits[0];
//! assert_eq!((pool.used, pool.remaining()), (10, Some(2)));
//! # Ok(())
//! # }
//! ```
//!
//! ## Example: reported consumption, also while streaming
//!
//! The chat handler reports the tokens its model used (here, a number sent in the request, a
//! stand-in for the model's count); the story handler streams three chunks of 40 tokens each.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use axum::routing::post;
//! use axum::{Extension, Router};
//! use bytes::Bytes;
//! use futures::StreamExt;
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_plans::{MemoryStore, Meter, PlanLimitLayer, UserId};
//!
//! async fn chat(Extension(meter): Extension<Meter>, tokens: String) -> StatusCode {
//!     // ... the model answered; an empty request reports nothing.
//!     if let Ok(tokens) = tokens.parse() {
//!         meter.report(tokens);
//!     }
//!     StatusCode::OK
//! }
//!
//! async fn story(Extension(meter): Extension<Meter>) -> Body {
//!     // Each chunk reports its tokens as it is sent.
//!     Body::from_stream(futures::stream::iter(0..3).map(move |_| {
//!         meter.report(40);
//!         Ok::<_, Infallible>(Bytes::from_static(b"token "))
//!     }))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(
//!     r#"{
//!         "plans": [{"name": "pro", "credits": {"ai": {"max": 1000, "per": "month"}}}],
//!         "meters": {
//!             "chat": {"create": {"credits": "ai", "report": true, "estimate": 200}},
//!             "stories": {"create": {"credits": "ai", "report": true, "estimate": 200}}
//!         }
//!     }"#,
//!     r#"{"john": {"plan": "pro"}}"#,
//! )?;
//! let plans = PlanLimitLayer::builder(store.clone())
//!     .count_usage(store)
//!     .rate_limit_headers(true)
//!     .clock(|| 1_795_953_600_000) // 2026-11-29, 12:00 UTC
//!     .build()?;
//! let app = Router::new()
//!     .route("/chat", post(chat))
//!     .route("/stories", post(story))
//!     .route_layer(plans.clone());
//! let send = |path: &str, body: &str| {
//!     let mut request = Request::post(path).body(Body::from(body.to_owned())).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     app.clone().oneshot(request)
//! };
//! let used = || async { plans.entitlements("john").await.map(|e| e.credits[0].used) };
//!
//! // 200 reserved, 120 reported: 120 counted, the rest given back.
//! let response = send("/chat", "120").await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.headers()["ratelimit"], r#""credits.ai";r=800;t=129600"#);
//! response.into_body().collect().await?;
//! assert_eq!(used().await?, 120);
//!
//! // Nothing reported: the estimate is counted.
//! send("/chat", "").await?.into_body().collect().await?;
//! assert_eq!(used().await?, 320);
//!
//! // More than the estimate: counted in full.
//! send("/chat", "350").await?.into_body().collect().await?;
//! assert_eq!(used().await?, 670);
//!
//! // A stream: the estimate is held until its body ends, then what it reported is counted.
//! let response = send("/stories", "").await?;
//! assert_eq!(used().await?, 870);
//! let text = response.into_body().collect().await?.to_bytes();
//! assert_eq!(text, "token token token ");
//! assert_eq!(used().await?, 790);
//! # Ok(())
//! # }
//! ```
//!
//! ## Example: a top-up spent after the allowance
//!
//! The record lists the later grant first; the one that expires sooner is spent first.
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
//!     r#"{
//!         "plans": [{"name": "pro", "credits": {"ai": {"max": 10, "per": "month"}}}],
//!         "meters": {"images": {"create": {"cost": 5, "credits": "ai"}}}
//!     }"#,
//!     r#"{"john": {"plan": "pro", "grants": [
//!         {"id": "late", "credits": "ai", "amount": 20, "expires": 1814400000000},
//!         {"id": "soon", "credits": "ai", "amount": 20, "expires": 1798761600000}
//!     ]}}"#,
//! )?;
//! // 2026-11-29, 12:00 UTC.
//! let now = Arc::new(AtomicU64::new(1_795_953_600_000));
//! let clock = Arc::clone(&now);
//! let plans = PlanLimitLayer::builder(store.clone())
//!     .count_usage(store)
//!     .clock(move || clock.load(Ordering::Relaxed))
//!     .build()?;
//! let app = Router::new()
//!     .route("/images", post(|| async { StatusCode::CREATED }))
//!     .route_layer(plans.clone());
//! let image = || {
//!     let mut request = Request::post("/images").body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     app.clone().oneshot(request)
//! };
//! let entitlements = || async {
//!     let mut request = Request::get("/").body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     let response = plans.entitlements_service().oneshot(request).await.unwrap();
//!     response.into_body().collect().await.unwrap().to_bytes()
//! };
//!
//! // Three images: 10 from the allowance, then 5 from the grant that expires first.
//! for _ in 0..3 {
//!     assert_eq!(image().await?.status(), StatusCode::CREATED);
//! }
//! assert_eq!(
//!     entitlements().await,
//!     concat!(
//!         r#"{"user":"john","plan":"pro","state":"active","expires":null,"limits":[],"#,
//!         r#""credits":[{"pool":"ai","max":10,"used":10,"remaining":0,"#,
//!         r#""per":"month","resets":1796083200000,"#,
//!         r#""grants":[{"id":"soon","remaining":15,"expires":1798761600000},"#,
//!         r#"{"id":"late","remaining":20,"expires":1814400000000}]}]}"#,
//!     )
//! );
//!
//! // December: the allowance is back; what the grant spent is not.
//! now.store(1_796_083_200_000, Ordering::Relaxed);
//! assert_eq!(
//!     entitlements().await,
//!     concat!(
//!         r#"{"user":"john","plan":"pro","state":"active","expires":null,"limits":[],"#,
//!         r#""credits":[{"pool":"ai","max":10,"used":0,"remaining":10,"#,
//!         r#""per":"month","resets":1798761600000,"#,
//!         r#""grants":[{"id":"soon","remaining":15,"expires":1798761600000},"#,
//!         r#"{"id":"late","remaining":20,"expires":1814400000000}]}]}"#,
//!     )
//! );
//! # Ok(())
//! # }
//! ```

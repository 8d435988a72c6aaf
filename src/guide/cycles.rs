//! # Billing cycles, rate limits, soft limits and usage alerts
//!
//! Beside how many a plan allows, it may say when its count starts again, how fast its users
//! may call, how far past its limit they may go, and when to tell someone they are close:
//!
//! ```json
//! {"name": "pro", "anchor": "subscription", "rate": {"max": 100, "per": "second"},
//!  "limits": {
//!    "reports": {"create": {"max": 1000, "per": "month"}},
//!    "api": {"index": {"max": 10000, "per": "day", "anchor": "calendar",
//!                      "rate": {"max": 60, "per": "minute", "burst": 10}}},
//!    "exports": {"create": {"max": 100, "per": "month", "overage": 20}},
//!    "search": {"index": {"rate": {"max": 5, "per": "second"}}}
//!  },
//!  "credits": {"ai": {"max": 1000, "per": "month", "overage": null}}}
//! ```
//!
//! - [Billing cycles](#billing-cycles): `"anchor": "subscription"` starts each period of a
//!   quota or a credit pool on the day the subscription started rather than on the 1st.
//! - [Rates](#rates): `"rate"` limits how fast requests may come, on one action or, on the
//!   plan, on every governed request; a request too early answers `429`.
//! - [Soft limits](#soft-limits): `"overage"` lets requests go past `max`, flagged.
//! - [Usage alerts](#usage-alerts): the builder's [`alerts`](crate::PlanLimitLayerBuilder::alerts)
//!   calls your code when a user's count reaches 80 % of a limit, or 10 units left.
//!
//! A limit written as an object takes the keys `max`, `per`, `anchor`, `overage` and `rate`
//! (any other is an error naming its path); an object with only a `rate` leaves the action
//! unlimited in number. A plan takes `anchor` and `rate` beside its `limits` and `credits`. An
//! add-on only adds to limits: any of the three keys in an add-on is an error. From Rust, a
//! limit with its terms is a [`Rule`](crate::catalog::Rule)
//! (`Rule::new(Limit::per(1000, Period::Month)).with_anchor(Anchor::Subscription)`), set with
//! [`Plan::with_rule`](crate::catalog::Plan::with_rule) or
//! [`Plan::with_credit_rule`](crate::catalog::Plan::with_credit_rule); a plan's own terms are
//! [`Plan::with_anchor`](crate::catalog::Plan::with_anchor) and
//! [`Plan::with_rate`](crate::catalog::Plan::with_rate).
//!
//! ## Billing cycles
//!
//! A [quota](super::quotas) counts per UTC calendar period. Customers are billed from the day
//! they subscribed, and a quota may follow that instead: `"anchor": "subscription"` on the
//! quota, on a [credit pool](super::metering), or on the plan for all of its quotas and pools
//! (a quota's own `"anchor": "calendar"` then keeps it on the calendar, as `api.index` above).
//! An anchor needs a period: on a lifetime limit it is an error.
//!
//! **Where the anchor comes from.** The subscriber record's `cycle_anchor` (milliseconds since
//! the Unix epoch; a top-level key that, like `addons` and `grants`, is never read as usage),
//! else the `join` of its plan assignment; a record with neither counts on the calendar:
//!
//! ```json
//! {"john": {"plan": {"name": "pro", "join": 1769853600000}},
//!  "jane": {"plan": "pro", "cycle_anchor": 1772701200000}}
//! ```
//!
//! The [Stripe receiver](super::webhooks) sets `cycle_anchor` from the subscription (its
//! `billing_cycle_anchor`, or the current period's start when the anchor is later); from Rust
//! it is [`Subscriber::cycle_anchor`](crate::Subscriber::cycle_anchor), and the assignment's
//! `join` is [`Assignment::joined`](crate::subscriber::Assignment::joined).
//!
//! **How a period runs.** A monthly cycle runs from the anchor's day of the month and time of
//! day to the same in the next month, the day clamped to the month's last day, as Stripe
//! bills: john, who joined on January 31 at 10:00, has cycles that end on February 28 (29 in a
//! leap year), then March 31, April 30, May 31, each at 10:00. Each bound is computed from the
//! anchor itself, so February's short month does not pull the later ones to the 28th. A year
//! runs likewise (an anchor on February 29 falls on February 28 in common years); a week from
//! the anchor's weekday and time of day; a day from its time of day; an hour (`"per": "hour"`,
//! which calendar quotas take too) from its minute. [`Period::anchored_window`] computes a
//! cycle.
//!
//! **What follows the cycle.** Everything the layer says of a quota's period: the `resets` of
//! a refusal and of [entitlements](super::entitlements), `Retry-After`, the `w` (the cycle's
//! length, 28 days from January 31) and `t` (seconds to its end) of the
//! [RateLimit headers](super::rate_limit_headers), and the counters' periods. A cycle's counter
//! is labelled by its start (`m1769853600000` rather than `2026-01`, see
//! [`Window`](crate::catalog::Window)), so:
//!
//! - a new anchor starts a new period, counting from 0 (a user who resubscribes, or whose
//!   billing date moves, starts afresh);
//! - a plan change under the same anchor keeps the counts: the period is the same.
//!
//! Add-ons raise an anchored quota as any other. A request the plan does not cover but an
//! add-on does ([`PlanState::Addons`](crate::decision::PlanState::Addons)) counts on the
//! calendar.
//!
//! [`Period::anchored_window`]: crate::catalog::Period::anchored_window
//!
//! ## Rates
//!
//! A rate limits how fast requests may come, whatever the count:
//!
//! - on one action: `"api": {"index": {"rate": {"max": 60, "per": "minute"}}}`, beside a
//!   `max` or alone;
//! - on the plan: `"rate": {"max": 100, "per": "second"}` counts every governed request of its
//!   users (a request whose action also has a rate takes both).
//!
//! `per` is `"second"`, `"minute"`, `"hour"` or `"day"`. The rate is a generic cell rate (GCRA,
//! as the `governor` crate keeps it): `max` requests per `per`, spread evenly, one every
//! `per / max`, and after a quiet spell up to `burst` at once (`max` unless `burst` says less,
//! from 1 to `max`). 60 a minute with a burst of 10 lets 10 through at once, then one a second.
//! A rate needs no [usage store](super::counting): it counts requests, not what they did. A
//! credit pool takes no rate (set it on the actions that draw from it).
//!
//! A request the rate does not let through answers `429 Too Many Requests`
//! ([`Denial::RateLimited`](crate::Denial::RateLimited), reason `"rate_limited"`):
//!
//! ```text
//! HTTP/1.1 429 Too Many Requests
//! retry-after: 30
//! content-type: application/json
//!
//! {"reason":"rate_limited","plan":"pro","item":"api","action":"index","maximum":2,"per":"minute","retry_after_ms":30000}
//! ```
//!
//! `maximum` and `per` are the rate's (the plan's, when the plan-wide rate refused), and
//! `retry_after_ms` is when the next request fits; `Retry-After` is that in whole seconds,
//! rounded up. With [RateLimit headers](super::rate_limit_headers) on, a rate has a policy of
//! its own: `"api.index.rate"` for an action's, `"rate"` for the plan's, with `q` the rate's
//! `max`, `w` its `per` in seconds, `r` how many more could come at once, and `t` the seconds
//! until the rate is whole again (on a `429`, until the next request fits):
//!
//! ```text
//! RateLimit-Policy: "api.index";q=1000;w=86400
//! RateLimit-Policy: "api.index.rate";q=60;w=60
//! RateLimit: "api.index.rate";r=59;t=1
//! ```
//!
//! **A refusal takes nothing.** The rates are taken before the quota's reservation: a request
//! refused by a rate counts nothing on its quota, and one refused by its quota (or its credit
//! pool) gives its rates back, so that it counts nothing on them either. A request refused from
//! the record alone (no plan, an expired plan) takes no rate. A request that passes both and
//! then fails in your service keeps its rate: it came.
//!
//! **Where rates are kept.** By default in the layer's memory ([`MemoryRates`]: one number per
//! user and rate, changed atomically), exact for one instance; clones of a layer share it.
//! Several instances need one store they all share: give each the same one with
//! [`rate_store`](crate::PlanLimitLayerBuilder::rate_store), an implementation of
//! [`RateStore`] (two methods, `acquire` and `refund`; see the [`rate`](crate::rate) module for
//! the algorithm and the behaviour a store must keep). With the `redis` feature,
//! `RedisConnection::rate_store()` gives one over Redis or a Redis Cluster (see
//! [Several instances](super::redis#rates)). A rate store that fails is a store
//! failure: `503`, or the request passes with [`fail_open`](crate::PlanLimitLayerBuilder::fail_open).
//!
//! [`MemoryRates`]: crate::rate::MemoryRates
//! [`RateStore`]: crate::rate::RateStore
//!
//! ## Soft limits
//!
//! `"overage"` makes a limit soft: past `max` requests still pass, flagged, up to `max` plus
//! the overage, and are refused beyond; `"overage": null` has no end. For billing that charges
//! for what went over: `{"max": 1000, "per": "month", "overage": 200}` passes the 1001st to
//! the 1200th request of the month, and refuses the 1201st with the usual `403`, whose
//! `maximum` is still 1000 and `usage` 1200.
//!
//! - The request's [`Allowed::overage`](crate::Allowed::overage) says how far past `max` the
//!   count is with it (0 within the limit), and its response carries
//!   `Plan-Overage: exports.create=3` (whether RateLimit headers are on or not).
//! - `RateLimit` says `r=0` past `max`: nothing is left of the limit itself.
//! - [Entitlements](super::entitlements) give a soft limit's `"overage"` (a number, or `null`
//!   without end) and count the units past `max` in `used`; a hard limit has no `overage` key.
//!
//! A credit pool takes an overage too: `"credits": {"ai": {"max": 1000, "overage": 500}}`.
//! Its overage is spent last, once the allowance and the user's grants are used up, and the
//! pool's flag is `Plan-Overage: credits.ai=40`, its
//! [`Credits::overage`](crate::decision::Credits::overage) the units past them. Its
//! entitlements add `"overage"` and `"overage_used"` (what was spent of it, in the current
//! period for a renewing pool), for a soft pool only.
//!
//! Without a [usage store](super::counting), the record's usage is compared with `max` plus
//! the overage, and flagged the same way.
//!
//! ## Usage alerts
//!
//! [`alerts(thresholds, handler)`](crate::PlanLimitLayerBuilder::alerts) on the builder calls
//! `handler` with a [`UsageAlert`] when a request's count reaches a threshold of a finite limit
//! it counted on: its action's limit, or the credit pool it drew from.
//!
//! - Thresholds are [`Threshold::Percent`] of `max` (a number converts to one: `[80, 100]`),
//!   rounded up to a whole unit, or [`Threshold::Remaining`] units left (`Remaining(10)` of
//!   1000 is reached at 990). A soft limit's thresholds are of its `max`, overage aside.
//! - An alert is `{user, plan, subject, threshold, used, max, period}`: the subject is the
//!   action of a resource or a pool ([`Subject`]), `used` the count after the commit that
//!   reached the threshold, `period` the quota's [`Window`](crate::catalog::Window) (`None` for
//!   a lifetime limit). Its JSON form is `{"user","plan","resource","action"` (or `"pool"`)
//!   `,"threshold","used","max","period"}`, `threshold` a percent as a number.
//! - Each fires at most once per counter, period and threshold, across every instance that
//!   shares the usage store: a request that jumps past both 80 % and 100 % fires both, the
//!   next period of a quota fires them again, and a count set back below a threshold does not
//!   fire it twice in one period.
//! - The handler is a closure `Fn(UsageAlert) -> impl Future<Output = Result<(), BoxError>>`
//!   that is `Send + Sync + 'static` (or a type of your own that implements [`AlertHandler`]).
//!
//! **Off the request path.** After a request commits, a cheap test on the counts the request
//! already has says whether a threshold may have been reached; only then is a task spawned that
//! reads the counters again, sets the markers and calls the handler. The response never waits
//! for it, and a slow handler delays no request. A failure (reading a count, setting a marker,
//! or the handler's error) is logged at warn level and counted in the metric
//! `tower_plans_alerts_total{outcome="failed"}` (`outcome="fired"` for each alert handled, see
//! [Metrics](super::metrics)); it is not retried, so a failed alert is lost rather than sent
//! twice. The task is spawned on the current Tokio runtime (outside one, the check runs only
//! as far as the store and the handler answer at once). Alerts need
//! [`count_usage`](crate::PlanLimitLayerBuilder::count_usage): without it `build` fails.
//!
//! **What the usage store must do.** "Once across instances" is a marker in the usage store:
//! [`UsageStore::mark(counter, marker)`](crate::UsageStore::mark) sets it and answers `true`
//! only to the one call that set it first, atomically (an insert-if-absent: a unique row, a
//! Redis `HSETNX`). A marker belongs to the counter's period, so a new period starts without
//! markers; the store may forget a period's markers once it is over.
//! [`MemoryStore`](crate::MemoryStore), the Redis and Postgres stores and the SQLite example
//! keep them, one period past the period's end ([`Counter::marks_kept_until`](crate::store::Counter::marks_kept_until)).
//! A store that does not implement `mark`
//! inherits a default that fails: its alerts are logged and counted as failed, never sent (see
//! [Your own database](super::own_database)).
//!
//! [`UsageAlert`]: crate::alerts::UsageAlert
//! [`Threshold::Percent`]: crate::alerts::Threshold::Percent
//! [`Threshold::Remaining`]: crate::alerts::Threshold::Remaining
//! [`Subject`]: crate::alerts::Subject
//! [`AlertHandler`]: crate::alerts::AlertHandler
//!
//! ## Example: a monthly quota from January 31
//!
//! john joined `pro` on 2026-01-31 at 10:00 UTC. His monthly cycle ends on February 28 (2026
//! is not a leap year), the next on March 31; on March 5 his billing date moves, and a new
//! period starts from 0.
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
//! const JAN_31: u64 = 1_769_853_600_000; // 2026-01-31T10:00:00Z
//! const FEB_10: u64 = 1_770_724_800_000; // 2026-02-10T12:00:00Z
//! const FEB_28: u64 = 1_772_272_800_000; // 2026-02-28T10:00:00Z
//! const MAR_5: u64 = 1_772_701_200_000; // 2026-03-05T09:00:00Z
//! const APR_5: u64 = 1_775_379_600_000; // 2026-04-05T09:00:00Z
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(
//!     r#"[{"name": "pro", "limits": {
//!         "reports": {"create": {"max": 2, "per": "month", "anchor": "subscription"}}
//!     }}]"#,
//!     &format!(r#"{{"john": {{"plan": {{"name": "pro", "join": {JAN_31}}}}}}}"#),
//! )?;
//! let now = Arc::new(AtomicU64::new(FEB_10));
//! let clock = Arc::clone(&now);
//! let plans = PlanLimitLayer::builder(store.clone())
//!     .count_usage(store.clone())
//!     .rate_limit_headers(true)
//!     .clock(move || clock.load(Ordering::Relaxed))
//!     .build()?;
//! let app = Router::new()
//!     .route("/reports", post(|| async { StatusCode::CREATED }))
//!     .route_layer(plans.clone());
//! let create = || {
//!     let mut request = Request::post("/reports").body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     app.clone().oneshot(request)
//! };
//!
//! for _ in 0..2 {
//!     assert_eq!(create().await?.status(), StatusCode::CREATED);
//! }
//! let response = create().await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! // 17 days and 22 hours to February 28, 10:00; the cycle is 28 days long.
//! assert_eq!(response.headers()["retry-after"], "1548000");
//! assert_eq!(response.headers()["ratelimit-policy"], r#""reports.create";q=2;w=2419200"#);
//! // It resets at the end of the cycle: February 28, 10:00.
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(
//!     body,
//!     r#"{"reason":"subscription","plan":"pro","item":"reports","action":"create","maximum":2,"usage":2,"resets":1772272800000}"#
//! );
//!
//! // February 28, 10:00: a new cycle, 31 days to March 31.
//! now.store(FEB_28, Ordering::Relaxed);
//! let response = create().await?;
//! assert_eq!(response.status(), StatusCode::CREATED);
//! assert_eq!(response.headers()["ratelimit"], r#""reports.create";r=1;t=2678400"#);
//!
//! // March 5, 09:00: the billing date moves. A new anchor, a new period from 0.
//! now.store(MAR_5, Ordering::Relaxed);
//! let john = store.subscriber("john").expect("john").as_ref().clone();
//! store.insert_user("john", john.with_cycle_anchor(MAR_5));
//! plans.invalidator().user("john");
//! let reports = &plans.entitlements("john").await?.limits[0];
//! assert_eq!((reports.used, reports.resets), (0, Some(APR_5)));
//! assert_eq!(create().await?.status(), StatusCode::CREATED);
//! # Ok(())
//! # }
//! ```
//!
//! ## Example: 2 requests a minute
//!
//! The rate sits beside a daily quota: the `429` counts nothing on the quota, and 30 seconds
//! later (one request every `60 / 2` seconds) the next passes.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use axum::routing::get;
//! use axum::Router;
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_plans::{MemoryStore, PlanLimitLayer, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(
//!     r#"[{"name": "pro", "limits": {"api": {"index": {
//!         "max": 1000, "per": "day", "rate": {"max": 2, "per": "minute"}
//!     }}}}]"#,
//!     r#"{"john": {"plan": "pro"}}"#,
//! )?;
//! // 2026-11-29, 12:00 UTC.
//! let now = Arc::new(AtomicU64::new(1_795_953_600_000));
//! let clock = Arc::clone(&now);
//! let plans = PlanLimitLayer::builder(store.clone())
//!     .count_usage(store)
//!     .rate_limit_headers(true)
//!     .clock(move || clock.load(Ordering::Relaxed))
//!     .build()?;
//! let app = Router::new()
//!     .route("/api", get(|| async { "listed" }))
//!     .route_layer(plans.clone());
//! let list = || {
//!     let mut request = Request::get("/api").body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     app.clone().oneshot(request)
//! };
//!
//! let response = list().await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let rate: Vec<_> = response.headers().get_all("ratelimit").iter().collect();
//! assert_eq!(rate, [r#""api.index";r=999;t=43200"#, r#""api.index.rate";r=1;t=30"#]);
//! assert_eq!(list().await?.status(), StatusCode::OK);
//!
//! // The third within the minute.
//! let response = list().await?;
//! assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(response.headers()["retry-after"], "30");
//! assert_eq!(response.headers()["ratelimit-policy"], r#""api.index.rate";q=2;w=60"#);
//! assert_eq!(response.headers()["ratelimit"], r#""api.index.rate";r=0;t=30"#);
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(
//!     body,
//!     r#"{"reason":"rate_limited","plan":"pro","item":"api","action":"index","maximum":2,"per":"minute","retry_after_ms":30000}"#
//! );
//! // It took nothing of the daily quota.
//! assert_eq!(plans.entitlements("john").await?.limits[0].used, 2);
//!
//! // 30 seconds on, one more fits.
//! now.fetch_add(30_000, Ordering::Relaxed);
//! assert_eq!(list().await?.status(), StatusCode::OK);
//! assert_eq!(plans.entitlements("john").await?.limits[0].used, 3);
//! # Ok(())
//! # }
//! ```
//!
//! ## Example: a soft limit with an overage of 2
//!
//! The handler reads how far past the limit its request went from
//! [`Allowed`](crate::Allowed).
//!
//! ```
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
//! let store = MemoryStore::from_json(
//!     r#"[{"name": "pro", "limits": {
//!         "exports": {"create": {"max": 3, "per": "month", "overage": 2}}
//!     }}]"#,
//!     r#"{"john": {"plan": "pro"}}"#,
//! )?;
//! let plans = PlanLimitLayer::builder(store.clone())
//!     .count_usage(store)
//!     .clock(|| 1_795_953_600_000) // 2026-11-29, 12:00 UTC
//!     .build()?;
//! let app = Router::new()
//!     .route(
//!         "/exports",
//!         post(|Extension(allowed): Extension<Allowed>| async move {
//!             // Bill what went over.
//!             (StatusCode::CREATED, format!("over by {}", allowed.overage))
//!         }),
//!     )
//!     .route_layer(plans.clone());
//! let export = || {
//!     let mut request = Request::post("/exports").body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     app.clone().oneshot(request)
//! };
//!
//! // Three within the limit, unflagged.
//! for _ in 0..3 {
//!     let response = export().await?;
//!     assert_eq!(response.status(), StatusCode::CREATED);
//!     assert!(response.headers().get("plan-overage").is_none());
//! }
//! // Two more pass, flagged.
//! for over in 1..=2 {
//!     let response = export().await?;
//!     assert_eq!(response.status(), StatusCode::CREATED);
//!     assert_eq!(response.headers()["plan-overage"], format!("exports.create={over}"));
//!     let body = response.into_body().collect().await?.to_bytes();
//!     assert_eq!(body, format!("over by {over}"));
//! }
//! // Beyond the overage: refused.
//! let response = export().await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(
//!     body,
//!     r#"{"reason":"subscription","plan":"pro","item":"exports","action":"create","maximum":3,"usage":5,"resets":1796083200000}"#
//! );
//!
//! let entitlements = plans.entitlements("john").await?;
//! assert_eq!(
//!     serde_json::to_string(&entitlements.limits[0])?,
//!     concat!(
//!         r#"{"resource":"exports","action":"create","max":3,"used":5,"remaining":0,"#,
//!         r#""per":"month","resets":1796083200000,"overage":2,"#,
//!         r#""sources":[{"plan":"pro","limit":{"max":3,"per":"month"}}]}"#,
//!     )
//! );
//! # Ok(())
//! # }
//! ```
//!
//! ## Example: alerts at 80 and 100 percent
//!
//! The handler records each alert; it runs in a task of its own after the response, so the
//! example waits for it (a bounded wait).
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//!
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use axum::routing::post;
//! use axum::Router;
//! use tower::ServiceExt;
//! use tower_plans::alerts::{Threshold, UsageAlert};
//! use tower_plans::{MemoryStore, PlanLimitLayer, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(
//!     r#"[{"name": "pro", "limits": {"tasks": {"create": {"max": 5, "per": "month"}}}}]"#,
//!     r#"{"john": {"plan": "pro"}}"#,
//! )?;
//! let seen: Arc<Mutex<Vec<UsageAlert>>> = Arc::default();
//! let sink = Arc::clone(&seen);
//! let plans = PlanLimitLayer::builder(store.clone())
//!     .count_usage(store)
//!     .clock(|| 1_795_953_600_000) // 2026-11-29, 12:00 UTC
//!     .alerts([80, 100], move |alert: UsageAlert| {
//!         // Send an email, post to a queue, ...
//!         sink.lock().unwrap().push(alert);
//!         async { Ok(()) }
//!     })
//!     .build()?;
//! let app = Router::new()
//!     .route("/tasks", post(|| async { StatusCode::CREATED }))
//!     .route_layer(plans);
//! let fired = || -> Vec<(Threshold, u64)> {
//!     let seen = seen.lock().unwrap();
//!     seen.iter().map(|alert| (alert.threshold, alert.used)).collect()
//! };
//! // Waits (at most 10 seconds) until the alerts handled are `want`.
//! let wait_for = |want: Vec<(Threshold, u64)>| async move {
//!     tokio::time::timeout(Duration::from_secs(10), async {
//!         while fired() != want {
//!             tokio::time::sleep(Duration::from_millis(1)).await;
//!         }
//!     })
//!     .await
//! };
//!
//! for task in 1..=6 {
//!     let mut request = Request::post("/tasks").body(Body::empty())?;
//!     request.extensions_mut().insert(UserId::from("john"));
//!     let status = app.clone().oneshot(request).await?.status();
//!     let want = match task {
//!         1..=3 => vec![],
//!         // 80 % of 5 is 4.
//!         4 => vec![(Threshold::Percent(80), 4)],
//!         // The sixth is refused: it commits nothing, and nothing fires twice.
//!         _ => vec![(Threshold::Percent(80), 4), (Threshold::Percent(100), 5)],
//!     };
//!     wait_for(want).await.expect("the alerts were handled in time");
//!     let expected = if task <= 5 { StatusCode::CREATED } else { StatusCode::FORBIDDEN };
//!     assert_eq!(status, expected);
//! }
//!
//! let last = seen.lock().unwrap()[1].clone();
//! assert_eq!(
//!     serde_json::to_string(&last)?,
//!     r#"{"user":"john","plan":"pro","resource":"tasks","action":"create","threshold":100,"used":5,"max":5,"period":"2026-11"}"#
//! );
//! # Ok(())
//! # }
//! ```

//! # Metrics and tracing
//!
//! ## Tracing
//!
//! Tracing needs no feature. Each governed request runs in an info-level span `plan_limit` with
//! its `resource` and `action`, then the `plan` and the `outcome` once known; each store call is
//! a debug-level child span `store_call` with its `store` and `call`. Failures are logged at warn
//! level (a store that failed, a catalog refresh that failed, a commit that did not go through)
//! without the user id, which appears only in debug-level events. Without a subscriber, none of
//! this allocates, and while no subscriber enables the info level the `plan_limit` span is not
//! made at all (`tracing`'s `log` fallback, which axum's default features turn on, does not see
//! it either; the events still reach it).
//!
//! ## Metrics
//!
//! With the `metrics` feature (off by default; it brings in the [`metrics`](https://docs.rs/metrics)
//! facade only) the layer records counters and a histogram, and the application chooses the
//! exporter (Prometheus, StatsD, ...) by installing a recorder; without a recorder the calls do
//! nothing and allocate nothing (each metric's key is made once, a route's when the catalog is
//! loaded), and without the feature nothing is compiled in. Every name starts with
//! `tower_plans_`. Labels are bounded: `resource` and `action` come from the catalog's routes,
//! and no label carries a user id or a plan name.
//!
//! | name | type | labels | counts |
//! |---|---|---|---|
//! | `tower_plans_decisions_total` | counter | `outcome`, `reason`, `resource`, `action` | governed requests, one each: `outcome` is `allow`, `deny`, `unauthenticated` (401), `store_unavailable` (503) or `pass_open` (a store failure with `fail_open`); `reason` is `none` (allowed), `limit`, `credits`, `rate` (a `429`), `expired` or `no_plan` (refused), `no_user` (401) or `store_error`; `resource` and `action` are `unknown` when no catalog could be loaded |
//! | `tower_plans_store_calls_total` | counter | `store` (`plan`, `usage`, `rate`), `call` (`plans`, `user`; `reserve`, `commit`, `release`, `adjust`, `get`, `mark`; `acquire`, `refund`), `result` (`ok`, `error`, `timeout`) | calls to the plan store, the usage store and the [rate store](super::cycles#rates); a refused reservation or rate is `ok`, since the store answered |
//! | `tower_plans_store_call_seconds` | histogram | `store`, `call` | how long those calls took, in seconds, timeouts included |
//! | `tower_plans_cache_total` | counter | `cache` (`catalog`, `user`), `result` (`hit`, `miss`) | the catalog cache, once for each request that needs the catalog (a miss waits for a load, or runs a refresh itself); the user cache, when there is one |
//! | `tower_plans_reservations_total` | counter | `result` (`committed`, `released`, `failed`) | reservations of [counted usage](super::counting) settled by their response; `failed` when the store did not take the settlement and the lease frees the unit (a lease that runs out inside the store is not seen by the layer) |
//! | `tower_plans_alerts_total` | counter | `outcome` (`fired`, `failed`) | [usage alerts](super::cycles#usage-alerts): `fired` for each alert the handler took, `failed` when reading a count, setting a marker or the handler failed |
//! | `tower_plans_webhook_events_total` | counter | `outcome` (`applied`, `duplicate`, `anonymous`, `unhandled`, `unauthorized`, `malformed`, `too_large`, `method_not_allowed`, `hook_failed`) | deliveries to the signed webhook receiver (feature `webhook`) |
//! | `tower_plans_stripe_events_total` | counter | `outcome` (those of the webhook receiver, and `outdated`, `unknown_user`, `unmapped`) | deliveries to the Stripe receiver (feature `stripe`) |
//!
//! `cargo run --example quickstart --features metrics` serves them as Prometheus text at
//! `GET /metrics`, outside the plan layer, through `metrics-exporter-prometheus`.
//!
//! ## Example
//!
//! ```
//! # #[cfg(feature = "metrics")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use axum::routing::post;
//! use axum::Router;
//! use metrics_exporter_prometheus::PrometheusBuilder;
//! use tower::ServiceExt;
//! use tower_plans::{MemoryStore, PlanLimitLayer, UserId};
//!
//! // An application would call `install_recorder()` once at start instead.
//! let recorder = PrometheusBuilder::new().build_recorder();
//! let prometheus = recorder.handle();
//! let _recording = metrics::set_default_local_recorder(&recorder);
//!
//! let store = MemoryStore::from_json(
//!     r#"[{"name": "free", "clients": 3}]"#,
//!     r#"{"john": {"plan": "free", "usage": {"clients": 3}}}"#,
//! )?;
//! let app = Router::new()
//!     .route("/clients", post(|| async { StatusCode::CREATED }))
//!     .route_layer(PlanLimitLayer::builder(store).build()?);
//! let mut request = Request::post("/clients").body(Body::empty())?;
//! request.extensions_mut().insert(UserId::from("john"));
//! assert_eq!(app.oneshot(request).await?.status(), StatusCode::FORBIDDEN);
//!
//! let text = prometheus.render();
//! let refused = text
//!     .lines()
//!     .find(|line| line.starts_with("tower_plans_decisions_total{"))
//!     .expect("one decision was recorded");
//! assert!(refused.contains(r#"outcome="deny""#) && refused.contains(r#"reason="limit""#));
//! assert!(refused.contains(r#"resource="clients""#) && refused.ends_with(" 1"));
//! assert!(!text.contains("john"), "no label names the user");
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "metrics"))]
//! # fn main() {}
//! ```

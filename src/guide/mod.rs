//! A guide to `tower-plans`, one chapter a module.
//!
//! The [crate docs](crate) show the layer refusing a request in a few lines. These chapters say
//! what each part does and how to use it, with examples that run as the crate's tests. Read the
//! first four in order; the others when you need them.
//!
//! 1. [Plans and subscribers](catalog): the JSON form of the catalog and of a user's record, and
//!    how a request is decided: trials, fallbacks, expiry, default plans.
//! 2. [Add-ons](addons): packs and promotions that raise a plan's limits for a while.
//! 3. [Paths and actions](routes): which requests are governed, as which resource and action,
//!    and why no spelling of a path gets past the layer; where the layer goes in an axum app.
//! 4. [Configuration](configuration): the builder's options, how fresh the catalog is, the user
//!    cache, invalidation, and what happens when the store fails.
//! 5. [Counting usage](counting): the layer keeps the counts itself, so that concurrent requests
//!    never pass a limit.
//! 6. [Quotas that reset](quotas): "20 exports a day", "1000 calls a month".
//! 7. [Metered plans](metering): costs, credit pools, reported consumption and top-ups: "1000 AI
//!    credits a month; an image costs 5, a chat costs its tokens".
//! 8. [Billing cycles, rate limits, soft limits and usage alerts](cycles): quotas that renew
//!    on the subscription's billing day, requests per minute, overage past a limit, and alerts
//!    at 80 % of it.
//! 9. [RateLimit headers](rate_limit_headers): `RateLimit-Policy` and `RateLimit` on the
//!    responses of limited actions.
//! 10. [Entitlements](entitlements): what a user may do, as data for a front end.
//! 11. [Your own database](own_database): implementing [`PlanStore`](crate::PlanStore) and
//!     [`UsageStore`](crate::UsageStore), and what the layer expects of them.
//! 12. [Several instances: Redis](redis): shared counters, plans in Redis, invalidation sent to
//!     every instance, on one Redis or a Redis Cluster (features `redis`, `redis-cluster`).
//! 13. [Billing webhooks](webhooks): signed entitlement events (feature `webhook`) and Stripe's
//!     subscription events (feature `stripe`) that change plans while the app serves.
//! 14. [Metrics and tracing](metrics): the spans, and the metrics of the `metrics` feature.
//! 15. [Examples](examples): the runnable programs and what each shows.
//! 16. [Fuzzing](fuzzing): the fuzz targets and how to run them.
//!
//! The chapters hold no code of their own: each is a module with documentation only.

pub mod addons;
pub mod catalog;
pub mod configuration;
pub mod counting;
pub mod cycles;
pub mod entitlements;
pub mod examples;
pub mod fuzzing;
pub mod metering;
pub mod metrics;
pub mod own_database;
pub mod quotas;
pub mod rate_limit_headers;
pub mod redis;
pub mod routes;
pub mod webhooks;

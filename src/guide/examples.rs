//! # Examples
//!
//! The crate's repository has runnable programs beside the library; each prints what it does.
//!
//! | command | what it shows |
//! |---|---|
//! | `cargo run --example quickstart` | an axum REST server on `127.0.0.1:3000` driven by a JSON fixture (`examples/quickstart.json`; `--fixture PATH` for another, `--addr` to move it), the layer counting usage in a `MemoryStore`, and a tour of curl commands: a create allowed then refused at the limit, a delete that gives one back, a trial that fell back to free, an expired plan, a monthly report quota with its `RateLimit` fields and `Retry-After`, `GET /entitlements`, a 401, a "10 more clients" add-on, AI credits drawn by images and a streamed chat, and on a plan billed from the subscription's day a quota that resets on that day, usage alerts listed at `GET /alerts`, a soft limit's `Plan-Overage` and a rate's `429`; with `--features metrics`, Prometheus text at `GET /metrics`; with `--features stripe`, Stripe's events at `POST /webhooks/stripe` |
//! | `cargo run --example hyper` | the layer around a plain hyper 1 service, on loopback |
//! | `cargo run --example tower` | a `tower::ServiceBuilder` stack without a server: requests run and their outcomes print |
//! | `cargo run --example custom_store` | a [`PlanStore`](crate::PlanStore) over the application's own data, a catalog built in Rust, an API-key extractor and `application/problem+json` refusals |
//! | `cargo run --example sqlite` | the quickstart's app with plans, subscribers and counted usage in SQLite (sqlx); `-- --check` runs its tour (see [Your own database](super::own_database)) |
//! | `cargo run --example webhook --features webhook` | signed billing webhooks that change plans while the app serves (see [Billing webhooks](super::webhooks)) |
//! | `cargo run --example stripe --features stripe` | plans that follow Stripe subscriptions, with a tour of signed events; `-- --check` runs it |
//! | `cargo run --example redis --features redis` | two instances sharing one Redis: counts and plan changes seen by both; needs `redis-server` (see [Several instances](super::redis)) |
//! | `cargo bench --bench load` | a loopback load test: the same axum app with and without the layer |
//!
//! The quickstart's tour is the quickest way to see every part at work:
//!
//! ```sh
//! cargo run --example quickstart
//! # in another terminal, for example:
//! curl -i -X POST -H 'x-user: alice' http://127.0.0.1:3000/api/clients
//! ```
//!
//! Its user comes from the `x-user` header, a stand-in for real authentication that runs before
//! the plan layer, as yours would.

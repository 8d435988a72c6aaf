//! # Counting usage
//!
//! Without a usage store, usage is what the subscriber records say, and the application keeps it
//! up to date: several concurrent creates by a user one below the limit all read the same usage,
//! and all pass. With [`count_usage`](crate::PlanLimitLayerBuilder::count_usage) the layer keeps
//! the counts itself, atomically, in a [`UsageStore`](crate::UsageStore), and handlers leave
//! usage alone (counting there too would count twice).
//!
//! [`MemoryStore`](crate::MemoryStore) is both a [`PlanStore`](crate::PlanStore) and a
//! `UsageStore`, and its records are the counters: give the layer two clones of it. Over Redis,
//! use `redis::RedisUsageStore` (feature `redis`, see [Several instances](super::redis)); over
//! your own database, see [Your own database](super::own_database).
//!
//! ## What is counted
//!
//! For a request that the user's plan allows:
//!
//! - a `create` raises the resource's item count by one when it succeeds, on every plan, limited
//!   or not, so that the count is right when the user changes plans;
//! - a `delete` lowers it by one when it succeeds, never below 0; under a finite `delete` limit
//!   the deletes are also counted against that limit;
//! - any other action with a finite limit counts its successful calls, as a quota for the
//!   lifetime of the counter (a `PATCH` limited by the `update` limit counts on the count it is
//!   compared with); any other action without a finite limit is not counted;
//! - under a [quota](super::quotas), the action counts in the current period's counter instead.
//!
//! A request that the catalog [meters](super::metering) takes its cost in place of one unit: from
//! its action's count, or from a credit pool (its action then still counts one).
//!
//! A counter that does not exist yet starts from the subscriber record's usage, read as the
//! decision reads it, so an application that kept its own counts moves over without moving
//! data; from then on the usage store is the truth for counted limits. (This start is the
//! [`Seed`](crate::store::Seed) the layer gives the store.)
//!
//! ## Reservations
//!
//! Before calling your service, a counted request *reserves* one unit, which succeeds only if
//! `used + held + 1 <= limit`, atomically; otherwise the request is refused, with
//! `usage` = `used + held` in the 403. So 200 concurrent creates at `limit - 1` let exactly one
//! through. The response then *settles* the reservation before it is handed on: a success
//! status (`2xx`, or what [`commit_when`](crate::PlanLimitLayerBuilder::commit_when) says)
//! commits it, any other status or an error of your service releases it. A failed create costs
//! nothing, a failed delete gives nothing back, and a client that has seen its `201` finds it
//! counted. For a request that reserved, [`Allowed::usage`](crate::Allowed::usage) is the count
//! it was checked against (`used + held` before it).
//!
//! A reservation that is never settled (its instance crashed, or its commit or release failed)
//! holds its unit for at most the [`lease`](crate::PlanLimitLayerBuilder::lease) (5 minutes by
//! default). A commit after the lease counts nothing, so the lease should be longer than your
//! slowest counted request. Reserving, committing and releasing are idempotent by reservation
//! id, so a store call can be retried.
//!
//! ## Dropped requests
//!
//! When the response future is dropped after your service was called (the client went away, a
//! timeout layer gave up), the handler may already have written. By default the reservation is
//! released, so the count can be one lower than what exists: the counter never passes the limit,
//! but the user may then get one item more than the plan allows until the count is corrected.
//! [`commit_dropped(true)`](crate::PlanLimitLayerBuilder::commit_dropped) commits instead, so the
//! count can be one higher (the user is refused one early) when the handler had not written.
//! Once your service has answered, its answer settles the reservation even if the response
//! future is dropped meanwhile. The settlement of a dropped request runs at once with a store
//! that answers at once, else in the background on the current Tokio runtime; without a
//! runtime, the lease frees the unit.
//!
//! ## Changing counts yourself
//!
//! Imports, admin tools, or items removed outside the governed routes change counts through the
//! usage store, never behind its back: [`UsageStore::adjust`](crate::UsageStore::adjust) and
//! [`UsageStore::set`](crate::UsageStore::set) on a [`Counter`](crate::store::Counter)
//! (`Counter::items(user, resource)` for an item count, `Counter::action(user, resource, action)`
//! for an action's), or on a `MemoryStore` its [`set_usage`](crate::MemoryStore::set_usage),
//! [`add_usage`](crate::MemoryStore::add_usage) and
//! [`add_action_usage`](crate::MemoryStore::add_action_usage), which change the same counters.
//! With any other usage store, a count written into a subscriber record is only where a counter
//! starts: it changes nothing once the counter exists.
//!
//! ## When the usage store fails
//!
//! Usage store calls have the same [`store_timeout`](crate::PlanLimitLayerBuilder::store_timeout)
//! as plan store calls. A reservation that fails or times out follows the
//! [failure policy](super::configuration#when-a-store-fails): `503` by default, or with
//! `fail_open(true)` the request passes unchecked and uncounted (a limit can then be overshot);
//! the layer also releases the reservation, in case the store applied it. A commit or release
//! that fails is logged at warn level and the response goes out unchanged: an unreleased unit is
//! freed by its lease, and a failed commit leaves the count one low (a failed give-back, one
//! high) until it is corrected.
//!
//! ## Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::{Method, Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_plans::{store::Counter, MemoryStore, PlanLimitLayer, UsageStore, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_plans::BoxError> {
//! let store = MemoryStore::from_json(
//!     r#"[{"name": "free", "clients": 3}]"#,
//!     r#"{"john": {"plan": "free", "usage": {"clients": 2}}}"#,
//! )?;
//! let layer = PlanLimitLayer::builder(store.clone())
//!     .count_usage(store.clone()) // the records are the counters
//!     .lease(Duration::from_secs(60))
//!     .build()?;
//!
//! // The handler creates and deletes; it never touches usage.
//! let service = ServiceBuilder::new()
//!     .layer(layer)
//!     .service(service_fn(|request: Request<Full<Bytes>>| async move {
//!         let mut response = Response::new(Full::<Bytes>::default());
//!         if request.method() == Method::POST {
//!             *response.status_mut() = StatusCode::CREATED;
//!         }
//!         Ok::<_, Infallible>(response)
//!     }));
//! let request = |method: Method, uri: &str| {
//!     let mut request = Request::builder().method(method).uri(uri).body(Full::default()).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     request
//! };
//! let clients = || store.subscriber("john").and_then(|john| john.usage.count("clients"));
//!
//! // A create that succeeds is counted: 2, then 3.
//! let response = service.clone().oneshot(request(Method::POST, "/clients")).await?;
//! assert_eq!(response.status(), StatusCode::CREATED);
//! assert_eq!(clients(), Some(3));
//!
//! // At the limit: 403, and nothing counted.
//! let response = service.clone().oneshot(request(Method::POST, "/clients")).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! assert_eq!(clients(), Some(3));
//!
//! // A delete that succeeds gives one back, and a create passes again.
//! let response = service.clone().oneshot(request(Method::DELETE, "/clients/7")).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(clients(), Some(2));
//! let response = service.clone().oneshot(request(Method::POST, "/clients")).await?;
//! assert_eq!(response.status(), StatusCode::CREATED);
//!
//! // An admin tool removes john's clients: through the usage store.
//! store.set(&Counter::items("john", "clients"), 0).await?;
//! assert_eq!(clients(), Some(0));
//! # Ok(())
//! # }
//! ```

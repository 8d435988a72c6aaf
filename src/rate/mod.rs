//! Rates: how often a user's requests may come, as the generic cell rate algorithm (GCRA) keeps
//! them.
//!
//! A plan may limit how fast its users call (`{"max": 60, "per": "minute"}`: 60 requests a
//! minute, a burst of 60 at once unless `"burst"` says less), for every governed request or for
//! one action of one resource. This module holds the parts of such a rate:
//!
//! - [`Gcra`]: the rate itself, and [`Gcra::step`], the pure decision of one request from one
//!   stored number, the key's *theoretical arrival time* (TAT), in microseconds;
//! - [`RateKey`] and [`RateScope`]: whose rate, over which requests;
//! - [`RateDecision`]: let through (with how many more could follow at once and when the bucket
//!   is full again), or refused (with when to retry);
//! - [`RateStore`]: where the TATs are kept, and [`MemoryRates`], the store of one process.
//!
//! The layer takes a request's rates (its action's, then the plan-wide one) before it reserves
//! the request's usage, refuses it with `429` when one of them does not let it through, and
//! keeps them in [`MemoryRates`] unless
//! [`rate_store`](crate::PlanLimitLayerBuilder::rate_store) gives it another store, one that
//! every instance shares. The catalog side is [`Rate`](crate::catalog::Rate); the guide's
//! [rates](crate::guide::cycles#rates) show it through a layer.
//!
//! # The algorithm
//!
//! A rate of `max` per `per` lets one request through every *emission interval*
//! `T = per / max`, and up to `burst` at once after a quiet spell: the *tolerance* is
//! `tau = T * (burst - 1)`. For each key the store keeps the TAT, the time at which the key's
//! bucket would be full again; a request at `now` passes when `max(tat, now) - now <= tau` and
//! sets the TAT to `max(tat, now) + T`; a refused request changes nothing. This is the GCRA of
//! the `governor` crate: one number per key, changed atomically, and no timer.
//!
//! A request refused by a quota after its rate let it through gives its request back
//! ([`RateStore::refund`]): the TAT moves back by `T`, and later requests are decided as if it
//! had never come.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use tower_plans::rate::{Gcra, MemoryRates, RateDecision, RateKey, RateStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_plans::BoxError> {
//! // 60 a minute, at most 10 at once.
//! let rate = Gcra::new(60, Duration::from_secs(60), 10).expect("a valid rate");
//! let rates = MemoryRates::new();
//! let john = RateKey::plan("john");
//! let now_ms = 1_780_000_000_000;
//!
//! // Ten at once pass ...
//! for left in (0..10).rev() {
//!     let decision = rates.acquire(&john, rate, now_ms).await?;
//!     assert!(matches!(decision, RateDecision::Allowed { remaining, .. } if remaining == left));
//! }
//! // ... the eleventh is told to come back in a second ...
//! let refused = rates.acquire(&john, rate, now_ms).await?;
//! assert_eq!(refused, RateDecision::Limited { retry_after_ms: 1000 });
//!
//! // ... and then passes; the bucket is full again ten seconds later.
//! let later = rates.acquire(&john, rate, now_ms + 1000).await?;
//! assert_eq!(later, RateDecision::Allowed { remaining: 0, reset_ms: 10_000 });
//!
//! // A request the quota then refuses gives its request back.
//! rates.refund(&john, rate).await?;
//! let again = rates.acquire(&john, rate, now_ms + 1000).await?;
//! assert_eq!(again, RateDecision::Allowed { remaining: 0, reset_ms: 10_000 });
//! # Ok(())
//! # }
//! ```

mod gcra;
mod key;
mod memory;
mod store;

pub use gcra::{Gcra, RateDecision};
pub use key::{RateKey, RateScope};
pub use memory::MemoryRates;
pub use store::RateStore;

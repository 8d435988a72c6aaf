//! The [`RateStore`] trait: where the rates' state is kept.

use std::sync::Arc;

use super::gcra::{Gcra, RateDecision};
use super::key::RateKey;
use crate::store::StoreFuture;

/// Where rates are kept: one number per [`RateKey`], set with
/// [`rate_store`](crate::PlanLimitLayerBuilder::rate_store).
///
/// A store keeps one number per key, the theoretical arrival time in microseconds, and
/// changes it atomically with [`Gcra::step`] (a missing key is `0`, never used). Each method is
/// one store operation and returns a [`StoreFuture`], as the usage store's do:
/// [`StoreFuture::ready`] when the answer is known at once, as in
/// [`MemoryRates`](super::MemoryRates), or [`StoreFuture::new`] for a database or a network
/// call (see the [store module](crate::store#implementing-a-store)). A store shared by several
/// instances does the step where the number is kept (in one statement or one script), so
/// that two instances never both take the last request.
///
/// A store may forget a key whose TAT is at or before now: a forgotten key and an idle one decide
/// alike.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Mutex, PoisonError};
/// use std::time::Duration;
///
/// use tower_plans::rate::{Gcra, RateDecision, RateKey, RateStore};
/// use tower_plans::store::StoreFuture;
/// use tower_plans::{MemoryStore, PlanLimitLayer};
///
/// /// Every key's TAT in one map behind one lock.
/// #[derive(Default)]
/// struct LockedRates {
///     tats: Mutex<HashMap<RateKey, u64>>,
/// }
///
/// impl RateStore for LockedRates {
///     fn acquire<'a>(
///         &'a self,
///         key: &'a RateKey,
///         gcra: Gcra,
///         now_ms: u64,
///     ) -> StoreFuture<'a, RateDecision> {
///         let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
///         let tat = tats.get(key).copied().unwrap_or(0);
///         let (decision, next) = gcra.step(tat, now_ms.saturating_mul(1000));
///         if let Some(next) = next {
///             tats.insert(key.clone(), next);
///         }
///         StoreFuture::ready(Ok(decision))
///     }
///
///     fn refund<'a>(&'a self, key: &'a RateKey, gcra: Gcra) -> StoreFuture<'a, ()> {
///         let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
///         if let Some(tat) = tats.get_mut(key) {
///             *tat = gcra.refund(*tat);
///         }
///         StoreFuture::ready(Ok(()))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_plans::BoxError> {
/// // One a minute.
/// let rate = Gcra::new(1, Duration::from_secs(60), 1).expect("a valid rate");
/// let rates = LockedRates::default();
/// let john = RateKey::plan("john");
/// assert!(rates.acquire(&john, rate, 1_000).await?.is_allowed());
/// // The quota then refuses that request: it gives its rate back.
/// rates.refund(&john, rate).await?;
/// assert!(rates.acquire(&john, rate, 1_000).await?.is_allowed());
/// let refused = rates.acquire(&john, rate, 1_000).await?;
/// assert_eq!(refused, RateDecision::Limited { retry_after_ms: 60_000 });
///
/// let plans = MemoryStore::from_json(r#"[{"name": "free"}]"#, "{}")?;
/// let layer = PlanLimitLayer::builder(plans)
///     .rate_store(rates)
///     .build()?;
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
pub trait RateStore: Send + Sync + 'static {
    /// Takes one request of `gcra` for `key` at `now_ms`, or refuses it (taking nothing).
    ///
    /// `now_ms` is the wall clock in milliseconds since the Unix epoch, as the layer reads it;
    /// the store works in `now_ms * 1000` microseconds (saturating).
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly.
    fn acquire<'a>(
        &'a self,
        key: &'a RateKey,
        gcra: Gcra,
        now_ms: u64,
    ) -> StoreFuture<'a, RateDecision>;

    /// Gives back one request that `acquire` took (the request was then refused by a quota): exact
    /// as GCRA's state is additive.
    ///
    /// The key's TAT moves back by one emission interval ([`Gcra::refund`]). Right after the
    /// acquire that took it, every later decision (at that time or after) is exactly the one had
    /// the request never been taken. Requests decided in between keep that true when they came
    /// no later than the TAT the acquire started from (for a key at rest, the acquire's own
    /// time); one that came later found part of the request already come back on its own, and
    /// the refund then gives the key less than one emission interval more than exact, never more
    /// than a full bucket. A refund for a key the store does not keep does nothing.
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly.
    fn refund<'a>(&'a self, key: &'a RateKey, gcra: Gcra) -> StoreFuture<'a, ()>;
}

/// Forwards [`RateStore`] through a smart pointer.
macro_rules! forward_rate_store {
    ($($pointer:ident),+) => {$(
        impl<T: RateStore + ?Sized> RateStore for $pointer<T> {
            fn acquire<'a>(
                &'a self,
                key: &'a RateKey,
                gcra: Gcra,
                now_ms: u64,
            ) -> StoreFuture<'a, RateDecision> {
                (**self).acquire(key, gcra, now_ms)
            }

            fn refund<'a>(&'a self, key: &'a RateKey, gcra: Gcra) -> StoreFuture<'a, ()> {
                (**self).refund(key, gcra)
            }
        }
    )+};
}

forward_rate_store!(Arc, Box);

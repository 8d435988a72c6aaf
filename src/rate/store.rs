//! The [`RateStore`] trait: where the rates' state is kept.

use std::sync::Arc;

use super::gcra::{Gcra, RateDecision};
use super::key::RateKey;
use crate::store::StoreFuture;

/// Where rates are kept (StoreFuture-based, like the usage store).
///
/// A store keeps one number per [`RateKey`], the theoretical arrival time in microseconds, and
/// changes it atomically with [`Gcra::step`] (a missing key is `0`, never used). Each method is
/// one store operation and returns a [`StoreFuture`]: [`StoreFuture::ready`] when the answer is
/// known at once, as in [`MemoryRates`](super::MemoryRates), or [`StoreFuture::new`] for a
/// database or a network call (see the [store module](crate::store#implementing-a-store)).
///
/// A store may forget a key whose TAT is at or before now: a forgotten key and an idle one decide
/// alike.
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

//! Where plans, subscribers and counted usage come from: the [`PlanStore`] and [`UsageStore`]
//! traits, and the in-memory store that implements both.

use std::sync::Arc;

use async_trait::async_trait;

use crate::catalog::Catalog;
use crate::subscriber::Subscriber;

mod memory;
mod timed;
mod usage;

#[cfg(feature = "redis")]
pub(crate) use memory::json_kind;
pub use memory::{LoadError, MemoryStore, UnknownAddon};
pub(crate) use timed::{timed, StoreError};
pub use usage::{Count, Counted, Counter, ReservationId, Reserve, UsageStore};

/// A boxed error, as a store returns it. Its text is logged, never sent to the client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The pluggable, asynchronous source of the plan catalog and of subscriber records.
///
/// The layer caches the catalog for its `plans_ttl` and, optionally, subscribers in a user cache.
/// Returning [`Arc`]s lets a store hand out what it holds without copying it.
#[async_trait]
pub trait PlanStore: Send + Sync + 'static {
    /// All plans plus the trial policy.
    async fn plans(&self) -> Result<Arc<Catalog>, BoxError>;

    /// The record of the user with this id, or `None` for an unknown user.
    async fn user(&self, id: &str) -> Result<Option<Arc<Subscriber>>, BoxError>;

    /// [`user`](Self::user) answered without waiting, for a store that keeps its records in
    /// this process; `None` (the default) when the store has to be awaited.
    ///
    /// A layer without a user cache asks this first, and calls [`user`](Self::user) only when
    /// it returns `None`: an answer here costs no future, no box and no timer. It must agree
    /// with what `user` would return.
    fn user_now(&self, id: &str) -> Option<Result<Option<Arc<Subscriber>>, BoxError>> {
        let _ = id;
        None
    }

    /// [`user_now`](Self::user_now) with the record lent to `lend` rather than returned: a
    /// store that keeps its records behind a lock can lend one under the lock, and nothing
    /// writes the record's reference count. `None` when the store has to be awaited (and
    /// `lend` is not called); `Some(Ok(()))` once `lend` was called, exactly once, with the
    /// record or `None` for an unknown user; `Some(Err(_))`, without calling `lend`, when the
    /// store failed.
    ///
    /// The default asks [`user_now`](Self::user_now). A layer without a user cache or counted
    /// usage asks this first. `lend` decides the request and never calls the store.
    fn with_user_now(
        &self,
        id: &str,
        lend: &mut dyn FnMut(Option<&Subscriber>),
    ) -> Option<Result<(), BoxError>> {
        let answer = self.user_now(id)?;
        Some(answer.map(|subscriber| lend(subscriber.as_deref())))
    }
}

#[async_trait]
impl<T: PlanStore + ?Sized> PlanStore for Arc<T> {
    async fn plans(&self) -> Result<Arc<Catalog>, BoxError> {
        (**self).plans().await
    }

    async fn user(&self, id: &str) -> Result<Option<Arc<Subscriber>>, BoxError> {
        (**self).user(id).await
    }

    fn user_now(&self, id: &str) -> Option<Result<Option<Arc<Subscriber>>, BoxError>> {
        (**self).user_now(id)
    }

    fn with_user_now(
        &self,
        id: &str,
        lend: &mut dyn FnMut(Option<&Subscriber>),
    ) -> Option<Result<(), BoxError>> {
        (**self).with_user_now(id, lend)
    }
}

#[async_trait]
impl<T: PlanStore + ?Sized> PlanStore for Box<T> {
    async fn plans(&self) -> Result<Arc<Catalog>, BoxError> {
        (**self).plans().await
    }

    async fn user(&self, id: &str) -> Result<Option<Arc<Subscriber>>, BoxError> {
        (**self).user(id).await
    }

    fn user_now(&self, id: &str) -> Option<Result<Option<Arc<Subscriber>>, BoxError>> {
        (**self).user_now(id)
    }

    fn with_user_now(
        &self,
        id: &str,
        lend: &mut dyn FnMut(Option<&Subscriber>),
    ) -> Option<Result<(), BoxError>> {
        (**self).with_user_now(id, lend)
    }
}

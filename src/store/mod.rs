//! Where plans, subscribers and counted usage come from: the [`PlanStore`] and [`UsageStore`]
//! traits, the [`StoreFuture`] their methods return, and the in-memory store that implements
//! both.
//!
//! # Implementing a store
//!
//! Each method of the traits is one store operation and returns a [`StoreFuture`]: an answer
//! that is known at once ([`StoreFuture::ready`], what an in-memory store gives) or a future
//! ([`StoreFuture::new`], a database or a network call). The layer decides a request without
//! waiting, and without boxing anything, when every store it asks answers at once.
//!
//! A future must do nothing until it is first polled, as an `async` block does: the layer may
//! drop a future that is not ready without polling it, and ask again from a task of its own.
//!
//! ```
//! use std::sync::Arc;
//!
//! use tower_plans::store::{PlanStore, StoreFuture};
//! use tower_plans::{Catalog, Subscriber};
//!
//! /// Plans in memory, subscribers from the application's database.
//! struct Accounts {
//!     catalog: Arc<Catalog>,
//! }
//!
//! impl Accounts {
//!     async fn load(&self, id: &str) -> Result<Option<Subscriber>, tower_plans::BoxError> {
//!         // A query would go here.
//!         Ok((id == "john").then(|| Subscriber::new().with_name("john")))
//!     }
//! }
//!
//! impl PlanStore for Accounts {
//!     fn plans(&self) -> StoreFuture<'_, Arc<Catalog>> {
//!         StoreFuture::ready(Ok(Arc::clone(&self.catalog)))
//!     }
//!
//!     fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
//!         StoreFuture::new(async move { Ok(self.load(id).await?.map(Arc::new)) })
//!     }
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::catalog::Catalog;
use crate::subscriber::Subscriber;

mod hold;
mod memory;
mod usage;

pub use hold::{Held, Hold, Line, Spill, UsageStoreExt};
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) use memory::json_kind;
pub use memory::{LoadError, MemoryStore, UnknownAddon};
pub use usage::{Count, Counted, Counter, ReservationId, Reserve, Seed, UsageStore};

/// A boxed error, as a store returns it. Its text is logged, never sent to the client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The answer of one store call: ready at once, or a boxed future.
///
/// A store that keeps what it is asked in this process answers with [`StoreFuture::ready`]: the
/// layer then decides without waiting, allocating nothing. A store that has to wait (a database,
/// a network service) answers with [`StoreFuture::new`]. Either way the value is a [`Future`]:
/// `store.user("john").await` works on both.
///
/// A future given to [`StoreFuture::new`] must do nothing until it is first polled (an `async`
/// block does nothing before): the layer may drop one that is not ready without polling it, and
/// make the same call again from a task of its own.
#[must_use = "a store future does nothing unless awaited"]
pub struct StoreFuture<'a, T>(Answer<'a, T>);

enum Answer<'a, T> {
    Ready(Option<Result<T, BoxError>>),
    Waiting(Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send + 'a>>),
}

impl<'a, T> StoreFuture<'a, T> {
    /// An answer known at once.
    pub fn ready(result: Result<T, BoxError>) -> Self {
        Self(Answer::Ready(Some(result)))
    }

    /// An answer that has to be waited for.
    pub fn new<F>(future: F) -> Self
    where
        F: Future<Output = Result<T, BoxError>> + Send + 'a,
    {
        Self(Answer::Waiting(Box::pin(future)))
    }

    /// Whether the answer is known at once.
    pub fn is_ready(&self) -> bool {
        matches!(self.0, Answer::Ready(Some(_)))
    }

    /// The answer when it is known at once, else the future back.
    ///
    /// # Errors
    /// The future, when the answer has to be waited for (or was taken already).
    pub fn into_ready(self) -> Result<Result<T, BoxError>, Self> {
        match self.0 {
            Answer::Ready(Some(result)) => Ok(result),
            other => Err(Self(other)),
        }
    }
}

/// The value is only ever moved out, never pinned: the future is `Unpin` whatever `T` is.
impl<T> Unpin for StoreFuture<'_, T> {}

impl<T> Future for StoreFuture<'_, T> {
    type Output = Result<T, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Answer::Ready(result) => match result.take() {
                Some(result) => Poll::Ready(result),
                // Polled again after it answered: it never answers twice.
                None => Poll::Pending,
            },
            Answer::Waiting(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for StoreFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.0 {
            Answer::Ready(Some(_)) => "ready",
            Answer::Ready(None) => "taken",
            Answer::Waiting(_) => "waiting",
        };
        f.debug_tuple("StoreFuture").field(&state).finish()
    }
}

/// The pluggable source of the plan catalog and of subscriber records.
///
/// The layer caches the catalog for its `plans_ttl` and, optionally, subscribers in a user cache.
/// Returning [`Arc`]s lets a store hand out what it holds without copying it. See the
/// [module docs](self#implementing-a-store) for an example.
pub trait PlanStore: Send + Sync + 'static {
    /// All plans plus the trial policy.
    fn plans(&self) -> StoreFuture<'_, Arc<Catalog>>;

    /// The record of the user with this id, or `None` for an unknown user.
    fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>>;
}

/// Forwards [`PlanStore`] through a smart pointer.
macro_rules! forward_plan_store {
    ($($pointer:ident),+) => {$(
        impl<T: PlanStore + ?Sized> PlanStore for $pointer<T> {
            fn plans(&self) -> StoreFuture<'_, Arc<Catalog>> {
                (**self).plans()
            }

            fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
                (**self).user(id)
            }
        }
    )+};
}

forward_plan_store!(Arc, Box);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_answer_is_taken_at_once_and_awaits_too() {
        let answer: StoreFuture<'_, u8> = StoreFuture::ready(Ok(7));
        assert!(answer.is_ready());
        assert_eq!(answer.into_ready().ok().map(Result::ok), Some(Some(7)));

        let mut answer: StoreFuture<'_, u8> = StoreFuture::ready(Ok(7));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(
            Pin::new(&mut answer).poll(&mut cx),
            Poll::Ready(Ok(7))
        ));
        assert!(Pin::new(&mut answer).poll(&mut cx).is_pending());
        assert_eq!(format!("{answer:?}"), "StoreFuture(\"taken\")");
    }

    #[tokio::test]
    async fn a_waiting_answer_gives_its_future_back() {
        let answer = StoreFuture::new(async { Ok::<_, BoxError>(7) });
        assert!(!answer.is_ready());
        assert_eq!(format!("{answer:?}"), "StoreFuture(\"waiting\")");
        let answer = answer.into_ready().expect_err("it has to be waited for");
        assert_eq!(answer.await.ok(), Some(7));
    }

    #[test]
    fn plan_store_is_object_safe_and_wraps() {
        fn assert_store<T: PlanStore>() {}
        assert_store::<Box<dyn PlanStore>>();
        assert_store::<Arc<dyn PlanStore>>();
        assert_store::<Arc<MemoryStore>>();
    }
}

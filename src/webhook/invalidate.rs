//! [`Invalidate`]: how the receiver tells the layers that a user's rights changed.

use async_trait::async_trait;

use crate::invalidator::Invalidator;
use crate::store::BoxError;

/// Drops a user's cached record once their event is applied: in this instance's layer
/// ([`Invalidator`]), or in every instance's
/// (`redis::RedisInvalidator`, with the `redis` feature).
///
/// Set with [`WebhookConfigBuilder::invalidator`](super::WebhookConfigBuilder::invalidator).
/// The receiver answers `200` only after `invalidate_user` returned `Ok`; an error answers
/// `500`, so that the sender retries (the event is applied again, then invalidated again).
/// The error's text is logged, never sent.
#[async_trait]
pub trait Invalidate: Send + Sync + 'static {
    /// Drops (everywhere it reaches) the cached record of user `id`.
    async fn invalidate_user(&self, id: &str) -> Result<(), BoxError>;
}

#[async_trait]
impl Invalidate for Invalidator {
    async fn invalidate_user(&self, id: &str) -> Result<(), BoxError> {
        self.user(id);
        Ok(())
    }
}

#[async_trait]
impl<T: Invalidate + ?Sized> Invalidate for std::sync::Arc<T> {
    async fn invalidate_user(&self, id: &str) -> Result<(), BoxError> {
        (**self).invalidate_user(id).await
    }
}

#[async_trait]
impl<T: Invalidate + ?Sized> Invalidate for Box<T> {
    async fn invalidate_user(&self, id: &str) -> Result<(), BoxError> {
        (**self).invalidate_user(id).await
    }
}

//! The application hook that applies events.

use std::sync::Arc;

use async_trait::async_trait;

use super::EntitlementEvent;
use crate::store::BoxError;

/// Applies an entitlement event to the application's records.
///
/// The [`WebhookReceiver`](super::WebhookReceiver) calls it for `ACTIVATE`, `DEACTIVATE`,
/// `ADDON_ACTIVATE` and `ADDON_DEACTIVATE` events about a logged-in user, after the signature
/// was verified; [`EntitlementEvent::effect`] says whether to grant or revoke a plan or an
/// add-on. A hook that does not keep add-ons should return an error for
/// [`Effect::GrantAddon`](super::Effect::GrantAddon) and
/// [`Effect::RevokeAddon`](super::Effect::RevokeAddon) if the sender may send them: an event the
/// hook accepts is acknowledged as applied. The event is acknowledged (`200`) only when `apply` returns
/// `Ok`; an error (or a panic) answers `500`, the sender retries later, and the retry calls
/// `apply` again. A redelivery of an event already applied is not passed on again while its id is
/// remembered, but `apply` should still be idempotent: remembered ids are bounded and local to
/// the process.
///
/// The error's text is logged, never sent.
#[async_trait]
pub trait EntitlementHook: Send + Sync + 'static {
    /// Applies one event.
    async fn apply(&self, event: &EntitlementEvent) -> Result<(), BoxError>;
}

#[async_trait]
impl<T: EntitlementHook + ?Sized> EntitlementHook for Arc<T> {
    async fn apply(&self, event: &EntitlementEvent) -> Result<(), BoxError> {
        (**self).apply(event).await
    }
}

#[async_trait]
impl<T: EntitlementHook + ?Sized> EntitlementHook for Box<T> {
    async fn apply(&self, event: &EntitlementEvent) -> Result<(), BoxError> {
        (**self).apply(event).await
    }
}

//! The application hook that applies events.

use std::sync::Arc;

use async_trait::async_trait;

use super::{EntitlementEvent, Replacement};
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
/// Receivers that learn a user's whole rights from a billing provider (the `stripe` feature's)
/// call [`replace`](Self::replace) instead, with the same acknowledgement rules.
///
/// The error's text is logged, never sent.
#[async_trait]
pub trait EntitlementHook: Send + Sync + 'static {
    /// Applies one event.
    async fn apply(&self, event: &EntitlementEvent) -> Result<(), BoxError>;

    /// Replaces the rights the [`Replacement`]'s source granted its user: the plan assignment,
    /// that source's add-on grants and the billing cycle's anchor, as
    /// [`Replacement::apply_to`] does on a record. It should be idempotent (a redelivery may
    /// call it again with the same rights), and it is called for one subscription at a time,
    /// oldest event first, within one receiver.
    ///
    /// The default returns an error, so that a hook written before this method existed makes
    /// the provider retry rather than lose the event; [`MemoryStoreHook`](super::MemoryStoreHook)
    /// implements it.
    async fn replace(&self, rights: &Replacement) -> Result<(), BoxError> {
        Err(format!(
            "this hook does not replace rights from `{}` (EntitlementHook::replace is not \
             implemented)",
            rights.source
        )
        .into())
    }
}

#[async_trait]
impl<T: EntitlementHook + ?Sized> EntitlementHook for Arc<T> {
    async fn apply(&self, event: &EntitlementEvent) -> Result<(), BoxError> {
        (**self).apply(event).await
    }

    async fn replace(&self, rights: &Replacement) -> Result<(), BoxError> {
        (**self).replace(rights).await
    }
}

#[async_trait]
impl<T: EntitlementHook + ?Sized> EntitlementHook for Box<T> {
    async fn apply(&self, event: &EntitlementEvent) -> Result<(), BoxError> {
        (**self).apply(event).await
    }

    async fn replace(&self, rights: &Replacement) -> Result<(), BoxError> {
        (**self).replace(rights).await
    }
}

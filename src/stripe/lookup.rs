//! [`CustomerLookup`]: the application's map from a Stripe customer to its user.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use crate::store::BoxError;

/// Finds the application's user of a Stripe customer, for subscriptions without
/// `metadata.user_id`.
///
/// Set with [`StripeConfigBuilder::customer_lookup`](super::StripeConfigBuilder::customer_lookup),
/// or as a closure with
/// [`customer_lookup_fn`](super::StripeConfigBuilder::customer_lookup_fn). `Ok(None)`: the
/// customer has no user, and the event is acknowledged without being applied
/// ([`WebhookOutcome::UnknownUser`](crate::webhook::WebhookOutcome::UnknownUser)). An error
/// answers `500`, so that Stripe retries: return one when the mapping may not be written yet.
/// The error's text is logged, never sent.
#[async_trait]
pub trait CustomerLookup: Send + Sync + 'static {
    /// The user of customer `customer` (`cus_...`), if any.
    async fn user_of(&self, customer: &str) -> Result<Option<String>, BoxError>;
}

#[async_trait]
impl<T: CustomerLookup + ?Sized> CustomerLookup for Arc<T> {
    async fn user_of(&self, customer: &str) -> Result<Option<String>, BoxError> {
        (**self).user_of(customer).await
    }
}

/// A [`CustomerLookup`] from an async closure; see
/// [`customer_lookup_fn`](super::StripeConfigBuilder::customer_lookup_fn).
pub(crate) struct LookupFn<F>(F);

impl<F> LookupFn<F> {
    pub(crate) fn new(lookup: F) -> Self {
        Self(lookup)
    }
}

impl<F> fmt::Debug for LookupFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LookupFn").finish_non_exhaustive()
    }
}

#[async_trait]
impl<F, Fut> CustomerLookup for LookupFn<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<String>, BoxError>> + Send + 'static,
{
    async fn user_of(&self, customer: &str) -> Result<Option<String>, BoxError> {
        (self.0)(customer.to_owned()).await
    }
}

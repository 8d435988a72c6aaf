//! [`StripeReceiver`]: the tower service that receives Stripe's subscription events.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower_service::Service;

use super::order::{Mark, Order};
use super::signature::SIGNATURE_HEADER;
use super::{SignatureHeader, StripeConfig, StripeEvent};
use crate::store::BoxError;
use crate::webhook::dedup::Dedup;
use crate::webhook::service::{hook_then_invalidate, read_body};
use crate::webhook::{EntitlementHook, ResponseFuture, VerifyError, WebhookOutcome};

/// Receives Stripe's signed subscription events and replaces the user's Stripe rights through
/// an [`EntitlementHook`].
///
/// A `tower` service over `http::Request<B>` for any body `B`; with axum, mount it with
/// `post_service`. Every response carries its [`WebhookOutcome`] in its extensions. Cloning is
/// a pointer copy; clones share the remembered event ids and subscriptions. See the
/// [module docs](super) for the whole flow and the answers.
pub struct StripeReceiver<H> {
    shared: Arc<Shared<H>>,
}

struct Shared<H> {
    config: StripeConfig,
    hook: H,
    /// Ids of events applied recently.
    applied: Dedup,
    /// The last event applied per subscription.
    order: Order,
}

impl<H: EntitlementHook> StripeReceiver<H> {
    /// A receiver that authenticates and maps with `config` and applies with `hook`.
    pub fn new(config: StripeConfig, hook: H) -> Self {
        let applied = Dedup::new("tower-plans stripe event ids", config.dedup_capacity());
        let order = Order::new(config.order_capacity());
        Self {
            shared: Arc::new(Shared {
                config,
                hook,
                applied,
                order,
            }),
        }
    }
}

impl<H> StripeReceiver<H> {
    /// The receiver's configuration.
    pub fn config(&self) -> &StripeConfig {
        &self.shared.config
    }

    /// The hook rights are applied with.
    pub fn hook(&self) -> &H {
        &self.shared.hook
    }
}

impl<H> Clone for StripeReceiver<H> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<H> fmt::Debug for StripeReceiver<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeReceiver")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<H, B> Service<Request<B>> for StripeReceiver<H>
where
    H: EntitlementHook,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        ResponseFuture::new(async move {
            let outcome = receive(&shared, request).await;
            crate::metrics::stripe(&WebhookOutcome::LABELS, outcome.slot());
            outcome
        })
    }
}

async fn receive<H, B>(shared: &Shared<H>, request: Request<B>) -> WebhookOutcome
where
    H: EntitlementHook,
    B: Body,
    B::Error: Into<BoxError>,
{
    let config = &shared.config;
    if request.method() != Method::POST {
        return WebhookOutcome::MethodNotAllowed;
    }
    let (parts, body) = request.into_parts();
    // The header is checked before the body is read.
    let Some(header) = parts.headers.get(SIGNATURE_HEADER) else {
        return unauthorized(VerifyError::MissingSignature);
    };
    let Ok(header) = header.to_str() else {
        return unauthorized(VerifyError::MalformedHeader);
    };
    let header = match SignatureHeader::parse(header) {
        Ok(header) => header,
        Err(error) => return unauthorized(error),
    };
    let body = match read_body(body, config.body_limit()).await {
        Ok(body) => body,
        Err(outcome) => return outcome,
    };
    if let Err(error) = config.verify_parsed(&header, &body) {
        return unauthorized(error);
    }

    let event = match StripeEvent::from_slice(&body) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%error, "malformed Stripe event");
            return WebhookOutcome::Malformed;
        }
    };
    let kind = event.kind();
    let Some(subscription) = event.subscription.as_ref() else {
        tracing::debug!(event_type = %event.event_type, "Stripe event acknowledged, not applied");
        return WebhookOutcome::Unhandled;
    };

    let user = match &subscription.user_id {
        Some(user) => user.clone(),
        None => match (&subscription.customer, &config.inner.lookup) {
            (Some(customer), Some(lookup)) => match lookup.user_of(customer).await {
                Ok(Some(user)) if !user.is_empty() => user,
                Ok(_) => return unknown_user(&event),
                Err(error) => {
                    tracing::error!(
                        event_id = %event.id,
                        customer = %customer,
                        %error,
                        "the Stripe customer lookup failed; Stripe will retry"
                    );
                    return WebhookOutcome::HookFailed;
                }
            },
            _ => return unknown_user(&event),
        },
    };
    let Some(rights) = config.replacement(&event, user.as_str()) else {
        tracing::warn!(
            event_id = %event.id,
            subscription = %subscription.id,
            "no item of the Stripe subscription is mapped to a plan or an add-on; ignored"
        );
        return WebhookOutcome::Unmapped;
    };

    let mark = Mark {
        created: event.created,
        rank: kind.rank(),
    };
    let mut outdated = false;
    let apply = async {
        let slot = shared.order.slot(&subscription.id).await;
        let mut last = slot.lock().await;
        if Order::is_outdated(*last, mark) {
            outdated = true;
            return Ok(());
        }
        hook_then_invalidate(
            shared.hook.replace(&rights),
            config.invalidator(),
            &rights.user,
        )
        .await?;
        *last = Some(mark);
        Ok(())
    };
    match shared.applied.once(&event.id, apply).await {
        Ok(true) if outdated => {
            tracing::info!(
                event_id = %event.id,
                event_type = %event.event_type,
                subscription = %subscription.id,
                "Stripe event older than the last one applied for its subscription; ignored"
            );
            WebhookOutcome::Outdated
        }
        Ok(true) => {
            tracing::info!(
                user = %rights.user,
                event_id = %event.id,
                event_type = %event.event_type,
                subscription = %subscription.id,
                status = subscription.status.as_str(),
                plan = rights.plan.as_ref().map(|plan| &*plan.plan),
                addons = rights.addons.len(),
                "Stripe event applied"
            );
            WebhookOutcome::Applied
        }
        Ok(false) => {
            tracing::debug!(event_id = %event.id, "Stripe event already applied");
            WebhookOutcome::Duplicate
        }
        Err(error) => {
            tracing::error!(
                user = %rights.user,
                event_id = %event.id,
                event_type = %event.event_type,
                %error,
                "the hook failed on a Stripe event; Stripe will retry"
            );
            WebhookOutcome::HookFailed
        }
    }
}

fn unknown_user(event: &StripeEvent) -> WebhookOutcome {
    tracing::warn!(
        event_id = %event.id,
        event_type = %event.event_type,
        "Stripe event about a subscription without metadata.user_id whose customer has no \
         user; ignored"
    );
    WebhookOutcome::UnknownUser
}

fn unauthorized(error: VerifyError) -> WebhookOutcome {
    tracing::warn!(%error, "Stripe webhook request rejected");
    WebhookOutcome::Unauthorized(error)
}

//! [`WebhookReceiver`]: the tower service that receives entitlement events.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tower_service::Service;

use super::dedup::Dedup;
use super::{
    Effect, EntitlementEvent, EntitlementHook, Invalidate, VerifyError, WebhookConfig,
    WebhookOutcome,
};
use crate::store::BoxError;

/// Receives signed entitlement events and applies them through an [`EntitlementHook`].
///
/// A `tower` service over `http::Request<B>` for any body `B`; with axum, mount it with
/// `post_service`. Cloning is a pointer copy, and clones share the remembered event ids. See the
/// [module docs](super) for the whole flow and the responses.
pub struct WebhookReceiver<H> {
    shared: Arc<Shared<H>>,
}

struct Shared<H> {
    config: WebhookConfig,
    hook: H,
    /// Ids of events applied recently; also makes concurrent deliveries of one id apply once.
    applied: Dedup,
}

impl<H: EntitlementHook> WebhookReceiver<H> {
    /// A receiver that authenticates with `config` and applies events with `hook`.
    pub fn new(config: WebhookConfig, hook: H) -> Self {
        let applied = Dedup::new("tower-plans webhook event ids", config.dedup_capacity());
        Self {
            shared: Arc::new(Shared {
                config,
                hook,
                applied,
            }),
        }
    }
}

impl<H> WebhookReceiver<H> {
    /// The receiver's configuration.
    pub fn config(&self) -> &WebhookConfig {
        &self.shared.config
    }

    /// The hook events are applied with.
    pub fn hook(&self) -> &H {
        &self.shared.hook
    }
}

impl<H> Clone for WebhookReceiver<H> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<H> fmt::Debug for WebhookReceiver<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<H, B> Service<Request<B>> for WebhookReceiver<H>
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
            crate::metrics::webhook(&WebhookOutcome::LABELS, outcome.slot());
            outcome
        })
    }
}

/// The response future of [`WebhookReceiver`] (and of the `stripe` feature's receiver).
pub struct ResponseFuture {
    inner: BoxFuture<'static, Result<Response<Full<Bytes>>, Infallible>>,
}

impl ResponseFuture {
    /// The response of the outcome `receive` comes to.
    pub(crate) fn new<F>(receive: F) -> Self
    where
        F: Future<Output = WebhookOutcome> + Send + 'static,
    {
        Self {
            inner: Box::pin(async move { Ok(receive.await.into_response()) }),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Full<Bytes>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
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
    // Check that the headers are there before reading the body.
    let Some(signature) = parts.headers.get(config.signature_header()) else {
        return unauthorized(VerifyError::MissingSignature);
    };
    let Some(timestamp) = parts.headers.get(config.timestamp_header()) else {
        return unauthorized(VerifyError::MissingTimestamp);
    };
    let Ok(signature) = signature.to_str() else {
        return unauthorized(VerifyError::BadSignature);
    };
    let Ok(timestamp) = timestamp.to_str() else {
        return unauthorized(VerifyError::InvalidTimestamp);
    };

    let body = match read_body(body, config.body_limit()).await {
        Ok(body) => body,
        Err(outcome) => return outcome,
    };

    if let Err(error) = config.verify(timestamp, &body, signature) {
        return unauthorized(error);
    }

    let mut event = match EntitlementEvent::from_slice(&body) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%error, "malformed webhook event");
            return WebhookOutcome::Malformed;
        }
    };
    event.classify(|status| config.is_active_status(status));

    if event.effect() == Effect::None {
        tracing::debug!(event_name = %event.event_name, "webhook event acknowledged, not applied");
        return WebhookOutcome::Unhandled;
    }
    let Some(user) = event.user() else {
        tracing::debug!(
            event_name = %event.event_name,
            anonymous_user_id = event.anonymous_user_id.as_deref(),
            "webhook event for an anonymous user acknowledged, not applied"
        );
        return WebhookOutcome::Anonymous;
    };

    let result = match event.event_id.as_deref() {
        Some(id) => shared.applied.once(id, apply(shared, &event, user)).await,
        None => apply(shared, &event, user).await.map(|()| true),
    };
    match result {
        Ok(true) => {
            tracing::info!(
                user,
                event_name = %event.event_name,
                event_id = event.event_id.as_deref(),
                plan = event.plan.as_deref(),
                addon = event.addon.as_deref(),
                "webhook event applied"
            );
            WebhookOutcome::Applied
        }
        Ok(false) => {
            tracing::debug!(
                user,
                event_id = event.event_id.as_deref(),
                "webhook event already applied"
            );
            WebhookOutcome::Duplicate
        }
        Err(error) => {
            tracing::error!(
                user,
                event_name = %event.event_name,
                event_id = event.event_id.as_deref(),
                %error,
                "webhook hook failed; the sender will retry"
            );
            WebhookOutcome::HookFailed
        }
    }
}

/// Applies the event with the hook, then invalidates the user.
async fn apply<H: EntitlementHook>(
    shared: &Shared<H>,
    event: &EntitlementEvent,
    user: &str,
) -> Result<(), String> {
    hook_then_invalidate(shared.hook.apply(event), shared.config.invalidator(), user).await
}

/// Reads the raw body, up to `limit` bytes: [`WebhookOutcome::TooLarge`] beyond, or
/// [`WebhookOutcome::Malformed`] when it cannot be read.
pub(crate) async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, WebhookOutcome>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            tracing::warn!(limit, "webhook body too large");
            Err(WebhookOutcome::TooLarge)
        }
        Err(error) => {
            tracing::warn!(%error, "webhook body could not be read");
            Err(WebhookOutcome::Malformed)
        }
    }
}

/// Runs the hook's future (a panic counts as a failure), then invalidates the user through
/// `invalidator`, if any; a failure of either is the event's failure.
pub(crate) async fn hook_then_invalidate<F>(
    hook: F,
    invalidator: Option<&dyn Invalidate>,
    user: &str,
) -> Result<(), String>
where
    F: Future<Output = Result<(), BoxError>>,
{
    match AssertUnwindSafe(hook).catch_unwind().await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(error.to_string()),
        Err(_) => return Err("the hook panicked".to_owned()),
    }
    if let Some(invalidator) = invalidator {
        if let Err(error) = invalidator.invalidate_user(user).await {
            return Err(format!(
                "the hook applied the event, but invalidating the user failed: {error}"
            ));
        }
    }
    Ok(())
}

fn unauthorized(error: VerifyError) -> WebhookOutcome {
    tracing::warn!(%error, "webhook request rejected");
    WebhookOutcome::Unauthorized(error)
}

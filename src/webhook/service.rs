//! [`WebhookReceiver`]: the tower service that receives entitlement events.

use std::borrow::Cow;
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
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tower_service::Service;

use super::{Effect, EntitlementEvent, EntitlementHook, VerifyError, WebhookConfig};
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
    applied: moka::future::Cache<String, ()>,
}

/// What the receiver did with a request, put in the response extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookOutcome {
    /// `200`: the hook applied the event and the user was invalidated.
    Applied,
    /// `200`: an event with this id was applied already (or concurrently); not applied again.
    Duplicate,
    /// `200`: an event about an anonymous user; acknowledged, not applied.
    Anonymous,
    /// `200`: an event other than `ACTIVATE`, `DEACTIVATE`, `ADDON_ACTIVATE` and
    /// `ADDON_DEACTIVATE`; acknowledged, not applied.
    Unhandled,
    /// `401`: the request failed authentication.
    Unauthorized(VerifyError),
    /// `400`: the body could not be read or is not an event.
    Malformed,
    /// `413`: the body is larger than the configured limit.
    TooLarge,
    /// `405`: not a `POST`.
    MethodNotAllowed,
    /// `500`: the hook, or the invalidation after it, failed; the sender retries.
    HookFailed,
}

impl WebhookOutcome {
    /// The `outcome` label of `tower_plans_webhook_events_total`.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn label(&self) -> &'static str {
        match self {
            WebhookOutcome::Applied => "applied",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::Anonymous => "anonymous",
            WebhookOutcome::Unhandled => "unhandled",
            WebhookOutcome::Unauthorized(_) => "unauthorized",
            WebhookOutcome::Malformed => "malformed",
            WebhookOutcome::TooLarge => "too_large",
            WebhookOutcome::MethodNotAllowed => "method_not_allowed",
            WebhookOutcome::HookFailed => "hook_failed",
        }
    }

    /// The status code the outcome is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            WebhookOutcome::Applied
            | WebhookOutcome::Duplicate
            | WebhookOutcome::Anonymous
            | WebhookOutcome::Unhandled => StatusCode::OK,
            WebhookOutcome::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebhookOutcome::Malformed => StatusCode::BAD_REQUEST,
            WebhookOutcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookOutcome::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            WebhookOutcome::HookFailed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body the outcome is answered with; a `401` names the [`VerifyError::code`], as
    /// in `{"error":"bad_signature"}`.
    pub fn body(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            WebhookOutcome::Applied => r#"{"status":"applied"}"#,
            WebhookOutcome::Duplicate => r#"{"status":"duplicate"}"#,
            WebhookOutcome::Anonymous => r#"{"status":"ignored","reason":"anonymous_user"}"#,
            WebhookOutcome::Unhandled => r#"{"status":"ignored","reason":"unhandled_event"}"#,
            WebhookOutcome::Unauthorized(error) => {
                return Cow::Owned(format!(r#"{{"error":"{}"}}"#, error.code()))
            }
            WebhookOutcome::Malformed => r#"{"error":"malformed_event"}"#,
            WebhookOutcome::TooLarge => r#"{"error":"body_too_large"}"#,
            WebhookOutcome::MethodNotAllowed => r#"{"error":"method_not_allowed"}"#,
            WebhookOutcome::HookFailed => r#"{"error":"hook_failed"}"#,
        })
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let body = match self.body() {
            Cow::Borrowed(body) => Bytes::from_static(body.as_bytes()),
            Cow::Owned(body) => Bytes::from(body),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = self.status();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self == WebhookOutcome::MethodNotAllowed {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
        }
        response.extensions_mut().insert(self);
        response
    }
}

impl<H: EntitlementHook> WebhookReceiver<H> {
    /// A receiver that authenticates with `config` and applies events with `hook`.
    pub fn new(config: WebhookConfig, hook: H) -> Self {
        let applied = moka::future::Cache::builder()
            .name("tower-plans webhook event ids")
            .max_capacity(config.dedup_capacity())
            .build();
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
        ResponseFuture {
            inner: Box::pin(async move {
                let outcome = receive(&shared, request).await;
                crate::metrics::webhook(outcome.label());
                Ok(outcome.into_response())
            }),
        }
    }
}

/// The response future of [`WebhookReceiver`].
pub struct ResponseFuture {
    inner: BoxFuture<'static, Result<Response<Full<Bytes>>, Infallible>>,
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

    let body = match Limited::new(body, config.body_limit()).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            tracing::warn!(limit = config.body_limit(), "webhook body too large");
            return WebhookOutcome::TooLarge;
        }
        Err(error) => {
            tracing::warn!(%error, "webhook body could not be read");
            return WebhookOutcome::Malformed;
        }
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
        Some(id) => shared
            .applied
            .entry(id.to_owned())
            .or_try_insert_with(apply(shared, &event, user))
            .await
            .map(|entry| entry.is_fresh())
            .map_err(|error| error.to_string()),
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

/// Runs the hook (a panic counts as a failure), then invalidates the user (a failure of either
/// is the event's failure).
async fn apply<H: EntitlementHook>(
    shared: &Shared<H>,
    event: &EntitlementEvent,
    user: &str,
) -> Result<(), String> {
    match AssertUnwindSafe(shared.hook.apply(event))
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(error.to_string()),
        Err(_) => return Err("the hook panicked".to_owned()),
    }
    if let Some(invalidator) = shared.config.invalidator() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_bodies_carry_the_error_code() {
        assert_eq!(
            WebhookOutcome::Unauthorized(VerifyError::InvalidTimestamp).body(),
            r#"{"error":"invalid_timestamp"}"#
        );
        assert_eq!(
            WebhookOutcome::Unauthorized(VerifyError::BadSignature).body(),
            r#"{"error":"bad_signature"}"#
        );
        assert_eq!(WebhookOutcome::Applied.body(), r#"{"status":"applied"}"#);
    }
}

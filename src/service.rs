//! [`PlanLimit`], the service that checks each request against the user's plan.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::body::ResponseBody;
use crate::check::{Check, Checked, Shared};
use crate::future::ResponseFuture;

/// Middleware that enforces subscription-plan limits; made by
/// [`PlanLimitLayer`](crate::PlanLimitLayer).
///
/// For each request it resolves the method and path to a governed resource and action. An
/// ungoverned request goes straight to the inner service, without asking who the user is and
/// without touching the store; a request that no catalog could govern does so even before the
/// catalog is loaded (see [`PlanLimitLayer`](crate::PlanLimitLayer#what-could-be-governed)).
/// A governed request without a user is answered `401`; otherwise the user's plan decides: an
/// allowed request reaches the inner service with the [`Allowed`](crate::Allowed) decision in
/// its extensions, a denied one is answered `403`. Store failures answer `503` (or pass, when
/// failing open). Every refusal carries a [`Rejection`](crate::Rejection) in the response
/// extensions, and a denial also its [`Denial`](crate::Denial).
///
/// `Error` is the inner service's error: a refusal is a response, not an error.
#[derive(Clone)]
pub struct PlanLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> PlanLimit<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the middleware, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for PlanLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanLimit")
            .field("inner", &self.inner)
            .field("config", &*self.shared)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for PlanLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ReqBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match self.shared.check(request) {
            Check::Ready(request, Checked::Pass) => {
                ResponseFuture::called(self.inner.call(request))
            }
            Check::Ready(request, Checked::Allow(reservation, headers)) => {
                ResponseFuture::allowed(self.inner.call(request), reservation, headers)
            }
            Check::Ready(_, Checked::Reject(response)) => ResponseFuture::rejected(response),
            Check::Waiting(check) => {
                // The service that was made ready goes with the request; a clone takes its
                // place here (it will be made ready before its own call).
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::checking(check, ready)
            }
        }
    }
}

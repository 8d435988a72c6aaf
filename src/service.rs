//! [`PlanLimit`], the service that checks each request against the user's plan.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tokio::time::Instant;
use tower_service::Service;
use tracing::Instrument;

use crate::body::ResponseBody;
use crate::cache::View;
use crate::catalog::Action;
use crate::future::ResponseFuture;
use crate::handle::Handle;
use crate::inner::{CheckFuture, Judgement, Source};
use crate::metrics::{self, Cache, Decided};
use crate::response::Rejection;
use crate::user::{extract_user, UserId};

/// Middleware that enforces subscription-plan limits; made by
/// [`PlanLimitLayer`](crate::PlanLimitLayer).
///
/// For each request it resolves the method and path to a governed resource and action. An
/// ungoverned request goes straight to the inner service, without asking who the user is and
/// without touching the store; a request that no catalog could govern does so even before the
/// catalog is loaded (see [`PlanLimitLayer`](crate::PlanLimitLayer#what-could-be-governed)).
/// A governed request without a user is answered `401`; otherwise the user's plan decides: an
/// allowed request reaches the inner service with the [`Allowed`](crate::Allowed) decision in its extensions, a
/// denied one is answered `403`. Store failures answer `503` (or pass, when failing open). Every
/// refusal carries a [`Rejection`] in the response extensions, and a denial also its
/// [`Denial`](crate::Denial).
///
/// `Error` is the inner service's error: a refusal is a response, not an error.
#[derive(Clone)]
pub struct PlanLimit<S> {
    inner: S,
    /// Cloned into this thread's handle (see `crate::handle`): a router that clones the
    /// service for every request writes no reference count that other threads write.
    state: Handle,
}

impl<S> PlanLimit<S> {
    pub(crate) fn new(inner: S, state: Handle) -> Self {
        Self { inner, state }
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
            .field("config", &*self.state)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for PlanLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let now = Instant::now();
        let current = self.state.catalog.read();
        let (loaded, stale) = match self.state.catalog.view(&current, now) {
            View::Usable { loaded, stale } => (loaded, stale),
            View::Load => {
                if !self.state.could_be_governed(&request) {
                    return ResponseFuture::inner(self.inner.call(request));
                }
                metrics::cache(Cache::Catalog, false);
                return self.resolving(Source::Load, request);
            }
        };

        let index = loaded
            .table
            .resolve_index(request.method(), request.uri().path());
        if stale && (index.is_some() || self.state.could_be_governed(&request)) {
            if let Some(refresh) = self.state.shared().refresh_in_background(now) {
                metrics::cache(Cache::Catalog, false);
                let stale = Arc::clone(loaded);
                return self.resolving(Source::Refresh(refresh, stale), request);
            }
        }
        let Some(index) = index else {
            return ResponseFuture::inner(self.inner.call(request));
        };
        metrics::cache(Cache::Catalog, true);
        let route = loaded.table.route(index);
        let action = route.action.normalised();
        let span = metrics::request_span(route.resource, &action);
        let _entered = span.enter();

        // The user is borrowed from the request: only the store path needs an id of its own.
        let extracted;
        let user = match self.state.extractor.as_deref() {
            None => request.extensions().get::<UserId>(),
            Some(extract) => {
                extracted = extract_user(Some(extract), &mut request);
                extracted.as_ref()
            }
        };
        let Some(user) = user else {
            metrics::decision(Decided::Unauthenticated, Some((route.resource, &action)));
            return ResponseFuture::rejected(self.state.reject(Rejection::Unauthenticated));
        };
        tracing::debug!(user = %user, "governed request");

        if let Some(judgement) = self.state.judge_cached(loaded, index, user) {
            return self.respond(judgement, request, route.resource, &action);
        }
        if let Some(judgement) = self.state.judge_now(loaded, index, user) {
            return self.respond(judgement, request, route.resource, &action);
        }

        // Only the store path owns a copy of the user id and references to the catalog and the
        // configuration: a decision from the caches borrows them.
        let user = user.clone();
        let loaded = Arc::clone(loaded);
        let state = Arc::clone(self.state.shared());
        let check = async move { state.check_routed(&loaded, index, &user).await };
        let check = Box::pin(check.instrument(span.clone()));
        self.checking(check, request)
    }
}

impl<S> PlanLimit<S> {
    /// The response future of a request to `action` of `resource` judged without waiting (from
    /// the caches, or a store that answers at once).
    fn respond<ReqBody>(
        &mut self,
        judgement: Judgement,
        mut request: Request<ReqBody>,
        resource: &Arc<str>,
        action: &Action,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>> + Clone,
    {
        match judgement {
            Judgement::Pass => ResponseFuture::inner(self.inner.call(request)),
            Judgement::Allow(grant, reservation, headers) => {
                if let Some(grant) = grant {
                    // This thread's copy of the resource's name (see `crate::local`).
                    let allowed = grant.allowed(crate::local::name(resource), action.clone());
                    request.extensions_mut().insert(allowed);
                }
                ResponseFuture::allowed(self.inner.call(request), reservation, headers)
            }
            Judgement::Reject(response) => ResponseFuture::rejected(response),
            Judgement::Count(pending) => {
                let check = self.state.shared().reserving(pending);
                self.checking(check, request)
            }
        }
    }

    /// A check for a request that no usable catalog has resolved: get a catalog from `source`,
    /// then resolve the request with it.
    fn resolving<ReqBody>(
        &mut self,
        source: Source,
        request: Request<ReqBody>,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>> + Clone,
    {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let check = Box::pin(Arc::clone(self.state.shared()).resolve(source, method, path));
        self.checking(check, request)
    }

    /// Runs `check` before the inner service. The service that was made ready goes with the
    /// request; a clone takes its place here (it will be made ready before its own call).
    fn checking<ReqBody>(
        &mut self,
        check: CheckFuture,
        request: Request<ReqBody>,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>> + Clone,
    {
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::checking(check, request, ready, Arc::clone(self.state.shared()))
    }
}

//! [`PlanLimit`], the service that checks each request against the user's plan.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use tokio::time::Instant;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::cache::{timed, CatalogCache, Loaded, Refresh, View};
use crate::catalog::{Action, Catalog};
use crate::decision::{evaluate, Allowed, Decision, Verdict};
use crate::future::ResponseFuture;
use crate::layer::Shared;
use crate::response::Rejection;
use crate::routes::RouteIndex;
use crate::subscriber::Subscriber;
use crate::user::{extract_user, UserId};

/// Middleware that enforces subscription-plan limits; made by
/// [`PlanLimitLayer`](crate::PlanLimitLayer).
///
/// For each request it resolves the method and path to a governed resource and action. An
/// ungoverned request goes straight to the inner service, without asking who the user is and
/// without touching the store; a request that no catalog could govern does so even before the
/// catalog is loaded (see [`PlanLimitLayer`](crate::PlanLimitLayer#what-could-be-governed)).
/// A governed request without a user is answered `401`; otherwise the user's plan decides: an
/// allowed request reaches the inner service with the [`Allowed`] decision in its extensions, a
/// denied one is answered `403`. Store failures answer `503` (or pass, when failing open). Every
/// refusal carries a [`Rejection`] in the response extensions, and a denial also its
/// [`Denial`](crate::Denial).
///
/// `Error` is the inner service's error: a refusal is a response, not an error.
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

impl<S: Clone> Clone for PlanLimit<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
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

/// The store calls of one request, boxed.
pub(crate) type CheckFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// What a check decided.
pub(crate) enum Outcome {
    /// Call the inner service as is (ungoverned after all, or failing open).
    Pass,
    /// Call the inner service, with the decision in the request extensions when there is one
    /// (the [`Allowed`] extension is on).
    Allow(Option<Allowed>),
    /// Answer with this response.
    Reject(Response<Full<Bytes>>),
    /// The request turned out to be governed once a catalog was loaded: find its user (from the
    /// request, which the response future holds), then check the user.
    Identify(Governed),
}

/// A governed request's route, and the catalog whose table resolved it.
pub(crate) struct Governed {
    loaded: Arc<Loaded>,
    index: RouteIndex,
}

/// Where the catalog of a request that no usable catalog resolved comes from.
enum Source {
    /// A load, shared with the concurrent requests that need one.
    Load,
    /// The refresh of this stale catalog, run by the request itself for want of a runtime to run
    /// it in the background; the stale catalog serves if it fails.
    Refresh(Refresh, Arc<Loaded>),
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
        let current = self.shared.catalog.read();
        let (loaded, stale) = match self.shared.catalog.view(&current, now) {
            View::Usable { loaded, stale } => (loaded, stale),
            View::Load => {
                if !self.could_be_governed(&request) {
                    return ResponseFuture::inner(self.inner.call(request));
                }
                return self.resolving(Source::Load, request);
            }
        };

        let index = loaded
            .table
            .resolve_index(request.method(), request.uri().path());
        if stale && (index.is_some() || self.could_be_governed(&request)) {
            if let Some(refresh) = CatalogCache::begin_refresh(&self.shared, now) {
                if let Err(refresh) = refresh.spawn() {
                    let stale = Arc::clone(loaded);
                    return self.resolving(Source::Refresh(refresh, stale), request);
                }
            }
        }
        let Some(index) = index else {
            return ResponseFuture::inner(self.inner.call(request));
        };
        let route = loaded.table.route(index);

        // The user is borrowed from the request: only the store path needs an id of its own.
        let extracted;
        let user = match self.shared.extractor.as_deref() {
            None => request.extensions().get::<UserId>(),
            Some(extract) => {
                extracted = extract_user(Some(extract), &mut request);
                extracted.as_ref()
            }
        };
        let Some(user) = user else {
            return ResponseFuture::rejected(self.shared.reject(Rejection::Unauthenticated));
        };

        if let Some(users) = &self.shared.users {
            if let Some(subscriber) = users.peek(user) {
                let outcome = self.shared.judge(
                    &loaded.catalog,
                    subscriber.as_deref(),
                    route.resource,
                    route.action,
                    user,
                );
                return match outcome {
                    Outcome::Allow(allowed) => {
                        if let Some(allowed) = allowed {
                            request.extensions_mut().insert(allowed);
                        }
                        ResponseFuture::inner(self.inner.call(request))
                    }
                    Outcome::Reject(response) => ResponseFuture::rejected(response),
                    Outcome::Pass | Outcome::Identify(_) => {
                        ResponseFuture::inner(self.inner.call(request))
                    }
                };
            }
        }

        // Only the store path owns a copy of the user id and references to the catalog and the
        // configuration: a decision from the caches borrows them.
        let user = user.clone();
        let loaded = Arc::clone(loaded);
        let shared = Arc::clone(&self.shared);
        let check = Box::pin(async move {
            let route = loaded.table.route(index);
            shared
                .check_user(&loaded.catalog, route.resource, route.action, &user)
                .await
        });
        self.checking(check, request)
    }
}

impl<S> PlanLimit<S> {
    /// Whether some catalog could govern `request` (see [`Scope`](crate::routes::Scope)).
    fn could_be_governed<B>(&self, request: &Request<B>) -> bool {
        self.shared
            .scope
            .covers(request.method(), request.uri().path())
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
        let check = Box::pin(Arc::clone(&self.shared).resolve(source, method, path));
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
        ResponseFuture::checking(check, request, ready, Arc::clone(&self.shared))
    }
}

impl Shared {
    /// Gets a catalog from `source` and resolves the request with it.
    async fn resolve(self: Arc<Self>, source: Source, method: Method, path: String) -> Outcome {
        let loaded = match source {
            Source::Load => match self.catalog.load(&self).await {
                Some(loaded) => loaded,
                None => return self.store_unavailable(),
            },
            Source::Refresh(refresh, stale) => refresh.run().await.unwrap_or(stale),
        };
        let Some(index) = loaded.table.resolve_index(&method, &path) else {
            return Outcome::Pass;
        };
        Outcome::Identify(Governed { loaded, index })
    }

    /// The check of the user of a request [`resolve`](Self::resolve) found governed (a `401`
    /// when there is no user). Only requests that no usable catalog resolved come here.
    pub(crate) fn identify<B>(
        self: &Arc<Self>,
        governed: Governed,
        request: &mut Request<B>,
    ) -> CheckFuture {
        let user = extract_user(self.extractor.as_deref(), request);
        let shared = Arc::clone(self);
        Box::pin(async move {
            let Some(user) = user else {
                return Outcome::Reject(shared.reject(Rejection::Unauthenticated));
            };
            let Governed { loaded, index } = governed;
            let route = loaded.table.route(index);
            shared
                .check_user(&loaded.catalog, route.resource, route.action, &user)
                .await
        })
    }

    /// Fetches the user's record (through the user cache when there is one) and decides.
    async fn check_user(
        &self,
        catalog: &Catalog,
        resource: &Arc<str>,
        action: &Action,
        user: &UserId,
    ) -> Outcome {
        let subscriber = match &self.users {
            Some(users) => users.get(self, user).await.ok(),
            None => match timed(self.store_timeout, self.store.user(user.as_str())).await {
                Ok(subscriber) => Some(subscriber),
                Err(error) => {
                    tracing::warn!(user = %user, %error, "plan store failed to return a user");
                    None
                }
            },
        };
        match subscriber {
            Some(subscriber) => self.judge(catalog, subscriber.as_deref(), resource, action, user),
            None => self.store_unavailable(),
        }
    }

    /// Decides, and logs the decision.
    fn judge(
        &self,
        catalog: &Catalog,
        subscriber: Option<&Subscriber>,
        resource: &Arc<str>,
        action: &Action,
        user: &UserId,
    ) -> Outcome {
        let normalised = action.normalised();
        let action = &*normalised;
        let verdict = evaluate(
            catalog,
            subscriber,
            || self.now_ms(),
            resource,
            action,
            &self.policy,
        );
        if let Verdict::Allow { plan, usage, .. } = verdict {
            tracing::debug!(
                user = %user,
                plan = %plan,
                resource = %resource,
                action = %action,
                usage,
                "plan allows the request"
            );
            if !self.allowed_extension {
                return Outcome::Allow(None);
            }
        }
        match verdict.into_decision(resource, action) {
            Decision::Allow(allowed) => Outcome::Allow(Some(allowed)),
            Decision::Deny(denial) => {
                tracing::info!(
                    user = %user,
                    resource = %resource,
                    action = %action,
                    ?denial,
                    "plan denies the request"
                );
                Outcome::Reject(self.reject(Rejection::Denied(denial)))
            }
        }
    }

    /// The outcome when the store failed (the failure itself is logged where it happened).
    fn store_unavailable(&self) -> Outcome {
        if self.fail_open {
            tracing::warn!("plan store unavailable; failing open, the request passes unchecked");
            Outcome::Pass
        } else {
            tracing::debug!("plan store unavailable; failing closed");
            Outcome::Reject(self.reject(Rejection::StoreUnavailable))
        }
    }

    /// Renders `rejection` and attaches it (and a denial's [`Denial`](crate::Denial)) to the
    /// response extensions.
    pub(crate) fn reject(&self, rejection: Rejection) -> Response<Full<Bytes>> {
        let mut response = self.renderer.render(&rejection);
        if let Rejection::Denied(denial) = &rejection {
            response.extensions_mut().insert(denial.clone());
        }
        response.extensions_mut().insert(rejection);
        response
    }
}

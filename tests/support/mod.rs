//! Helpers shared by the layer's integration tests: a plan store that counts its calls and can be
//! slowed down or made to fail, a catalog and users, requests and an echo service, a future
//! started and left pending, and an axum authentication middleware.
//!
//! Each test binary that needs them includes this file with
//! `#[path = "../support/mod.rs"] mod support;`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use tower_plans::store::StoreFuture;
use tower_plans::{
    Allowed, Catalog, PlanLimitLayer, PlanLimitLayerBuilder, PlanStore, Subscriber, UserId,
};

/// The decision clock of every test: 2023-11-14T22:13:20Z.
pub const NOW: u64 = 1_700_000_000_000;

/// The text of the store's errors; it must never reach a client.
pub const SECRET: &str = "connection to db-7.internal refused (password=hunter2)";

/// Free keeps 3 clients and 1 project; pro keeps 30 clients and unlimited projects.
pub const CATALOG: &str = r#"{
    "trial": {"duration": 14, "fallback": "free"},
    "plans": [
        {"name": "free", "limits": {"clients": 3, "projects": {"index": null, "show": null, "create": 1}}},
        {"name": "pro", "limits": {"clients": 30, "projects": null}}
    ]
}"#;

/// The same plans, with free down to 1 client.
pub const STRICTER_CATALOG: &str = r#"{
    "plans": [
        {"name": "free", "limits": {"clients": 1, "projects": {"create": 1}}},
        {"name": "pro", "limits": {"clients": 30, "projects": null}}
    ]
}"#;

/// The plans of [`CATALOG`] with a new resource: invoices, which free may not touch.
pub const INVOICES_CATALOG: &str = r#"{
    "plans": [
        {"name": "free", "limits": {"clients": 3, "projects": {"index": null, "show": null, "create": 1}, "invoices": 0}},
        {"name": "pro", "limits": {"clients": 30, "projects": null, "invoices": null}}
    ]
}"#;

/// What ann gets for creating an invoice under [`INVOICES_CATALOG`].
pub const NO_INVOICES: &str = r#"{"reason":"subscription","plan":"free","item":"invoices","action":"create","maximum":0,"usage":0}"#;

/// ann (free, 1 client), bob (free, 3 clients: at the limit), cid (no plan), dee (pro, expired).
pub const USERS: &[(&str, &str)] = &[
    (
        "ann",
        r#"{"name": "ann", "plan": "free", "usage": {"clients": 1}}"#,
    ),
    (
        "bob",
        r#"{"name": "bob", "plan": "free", "usage": {"clients": 3}}"#,
    ),
    ("cid", r#"{"name": "cid"}"#),
    (
        "dee",
        r#"{"name": "dee", "plan": {"name": "pro", "expire": 1600000000000}, "usage": {"clients": 5}}"#,
    ),
];

pub fn catalog(json: &str) -> Arc<Catalog> {
    Arc::new(Catalog::from_json(json).expect("test catalog parses"))
}

pub fn subscriber(json: &str) -> Arc<Subscriber> {
    Arc::new(Subscriber::from_json(json).expect("test subscriber parses"))
}

/// A plan store that counts its calls, can wait before answering and can fail.
pub struct CountingStore {
    catalog: Mutex<Arc<Catalog>>,
    users: Mutex<HashMap<String, Arc<Subscriber>>>,
    plans_calls: AtomicUsize,
    user_calls: AtomicUsize,
    delay: Mutex<Duration>,
    fail_plans: AtomicBool,
    fail_users: AtomicBool,
}

impl CountingStore {
    pub fn new() -> Arc<Self> {
        let users = USERS
            .iter()
            .map(|(id, json)| ((*id).to_owned(), subscriber(json)))
            .collect();
        Arc::new(Self {
            catalog: Mutex::new(catalog(CATALOG)),
            users: Mutex::new(users),
            plans_calls: AtomicUsize::new(0),
            user_calls: AtomicUsize::new(0),
            delay: Mutex::new(Duration::ZERO),
            fail_plans: AtomicBool::new(false),
            fail_users: AtomicBool::new(false),
        })
    }

    pub fn plans_calls(&self) -> usize {
        self.plans_calls.load(Ordering::SeqCst)
    }

    pub fn user_calls(&self) -> usize {
        self.user_calls.load(Ordering::SeqCst)
    }

    /// Every call waits this long (on Tokio's clock) before answering.
    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    pub fn fail_plans(&self, fail: bool) {
        self.fail_plans.store(fail, Ordering::SeqCst);
    }

    pub fn fail_users(&self, fail: bool) {
        self.fail_users.store(fail, Ordering::SeqCst);
    }

    pub fn set_catalog(&self, json: &str) {
        *self.catalog.lock().unwrap() = catalog(json);
    }

    pub fn set_user(&self, id: &str, json: &str) {
        self.users
            .lock()
            .unwrap()
            .insert(id.to_owned(), subscriber(json));
    }

    async fn wait(&self) {
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

impl PlanStore for CountingStore {
    fn plans<'a>(&'a self) -> StoreFuture<'a, Arc<Catalog>> {
        StoreFuture::new(async move {
            self.plans_calls.fetch_add(1, Ordering::SeqCst);
            self.wait().await;
            if self.fail_plans.load(Ordering::SeqCst) {
                return Err(SECRET.into());
            }
            Ok(Arc::clone(&self.catalog.lock().unwrap()))
        })
    }

    fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
        StoreFuture::new(async move {
            self.user_calls.fetch_add(1, Ordering::SeqCst);
            self.wait().await;
            if self.fail_users.load(Ordering::SeqCst) {
                return Err(SECRET.into());
            }
            Ok(self.users.lock().unwrap().get(id).cloned())
        })
    }
}

/// A builder over `store` with the test clock.
pub fn builder(store: &Arc<CountingStore>) -> PlanLimitLayerBuilder {
    PlanLimitLayer::builder(Arc::clone(store)).clock(|| NOW)
}

/// A request with an empty body, carrying `user` as the `UserId` extension.
pub fn request(method: Method, uri: &str, user: Option<&str>) -> Request<Full<Bytes>> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .unwrap();
    if let Some(user) = user {
        request.extensions_mut().insert(UserId::from(user));
    }
    request
}

/// What the echo service answers: the decision it found in the request extensions.
pub fn describe<B>(request: &Request<B>) -> String {
    match request.extensions().get::<Allowed>() {
        Some(allowed) => format!(
            "{} {} {} usage={} remaining={:?}",
            allowed.plan,
            allowed.resource,
            allowed.action,
            allowed.usage,
            allowed.remaining()
        ),
        None => "unchecked".to_owned(),
    }
}

/// An inner service that answers 200 with [`describe`].
pub async fn echo(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from(describe(&request)))))
}

/// The whole body as text.
pub async fn text<B>(response: Response<B>) -> String
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Sends `request` through `layer` around the [`echo`] service.
pub async fn send(
    layer: &PlanLimitLayer,
    request: Request<Full<Bytes>>,
) -> Response<tower_plans::ResponseBody<Full<Bytes>>> {
    use tower::{ServiceBuilder, ServiceExt};
    ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(echo)
        .oneshot(request)
        .await
        .unwrap()
}

/// Starts `future` (it gets as far as its first wait) and returns it, still pending.
pub fn started<F: Future + Unpin>(mut future: F) -> F {
    assert!((&mut future).now_or_never().is_none(), "it waits");
    future
}

/// Authentication for an axum router (`axum::middleware::from_fn(authenticate)`): the user
/// named by the `x-user` header.
pub async fn authenticate(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let user = request
        .headers()
        .get("x-user")
        .and_then(|value| value.to_str().ok())
        .map(UserId::from);
    if let Some(user) = user {
        request.extensions_mut().insert(user);
    }
    next.run(request).await
}

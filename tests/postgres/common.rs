//! What the Postgres tests share: a server, stores, layers over Postgres, requests.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceExt};
use tower_plans::postgres::driver::postgres::PgPoolOptions;
use tower_plans::postgres::{PostgresInvalidator, PostgresStore};
use tower_plans::{Allowed, PlanLimitLayer, PlanLimitLayerBuilder, UserCache, UserId};

pub use crate::postgres_server::PostgresServer;

/// Free keeps 5 clients and shows 3 tasks, and draws images from 20 credits; pro keeps 50
/// clients and unlimited tasks. An image costs 5 credits.
pub const CATALOG: &str = r#"{
    "meters": {"images": {"create": {"cost": 5, "credits": "ai"}}},
    "plans": [
        {"name": "free", "limits": {"clients": 5, "tasks": {"index": null, "show": 3}},
         "credits": {"ai": 20}},
        {"name": "pro", "limits": {"clients": 50, "tasks": null}, "credits": {"ai": 1000}}
    ]
}"#;

/// A store on a fresh database of the shared server.
pub async fn fresh() -> PostgresStore {
    connect(&PostgresServer::shared().database()).await
}

/// A store on `url`, with a pool of its own (10 connections).
pub async fn connect(url: &str) -> PostgresStore {
    PostgresStore::connect(url)
        .await
        .expect("connect to the test postgres")
}

/// A store on `url` with a pool of `connections`, a short acquire timeout and no test before
/// acquiring, as an instance of the tests runs.
pub async fn pooled(url: &str, connections: u32) -> PostgresStore {
    let pool = PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(2))
        .test_before_acquire(false)
        .connect(url)
        .await
        .expect("connect to the test postgres");
    PostgresStore::with_pool(pool).await.expect("migrate")
}

/// A layer builder over `store`, counting usage, with a short store timeout.
pub fn builder(store: &PostgresStore) -> PlanLimitLayerBuilder {
    PlanLimitLayer::builder(store.clone())
        .count_usage(store.clone())
        .store_timeout(Duration::from_millis(500))
}

/// One instance: its own pool, its own layer (its own caches), its own invalidator.
pub struct Instance {
    pub store: PostgresStore,
    pub layer: PlanLimitLayer,
    pub invalidator: PostgresInvalidator,
}

impl Instance {
    /// An instance with a one-hour user cache, listening to invalidations.
    pub async fn cached(url: &str) -> Instance {
        Instance::new(url, |b| {
            b.user_cache(UserCache::time_to_live(Duration::from_secs(3600), 1000))
        })
        .await
    }

    pub async fn new(
        url: &str,
        configure: impl FnOnce(PlanLimitLayerBuilder) -> PlanLimitLayerBuilder,
    ) -> Instance {
        Instance::on(pooled(url, 10).await, configure).await
    }

    pub async fn on(
        store: PostgresStore,
        configure: impl FnOnce(PlanLimitLayerBuilder) -> PlanLimitLayerBuilder,
    ) -> Instance {
        let layer = configure(builder(&store)).build().expect("valid layer");
        let invalidator = PostgresInvalidator::builder(&store)
            .backoff(Duration::from_millis(20), Duration::from_millis(200))
            .timeout(Duration::from_millis(500))
            .start(layer.invalidator())
            .expect("inside a runtime");
        within(Duration::from_secs(5), invalidator.listening()).await;
        Instance {
            store,
            layer,
            invalidator,
        }
    }

    pub async fn send(&self, method: Method, uri: &str, user: &str) -> (StatusCode, String) {
        send(&self.layer, method, uri, user).await
    }
}

/// Awaits `future`, failing the test after `limit`.
pub async fn within<F: std::future::Future>(limit: Duration, future: F) -> F::Output {
    tokio::time::timeout(limit, future)
        .await
        .expect("finished in time")
}

/// The application behind the layer: `201` for a POST, `200` otherwise; the body tells the plan
/// and usage the layer decided with.
pub async fn app(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.extensions().get::<Allowed>() {
        Some(allowed) => format!("{} usage={}", allowed.plan, allowed.usage),
        None => "unchecked".to_owned(),
    };
    let mut response = Response::new(Full::from(body));
    if request.method() == Method::POST {
        *response.status_mut() = StatusCode::CREATED;
    }
    Ok(response)
}

pub fn request(method: Method, uri: &str, user: &str) -> Request<Full<Bytes>> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::default())
        .expect("valid request");
    request.extensions_mut().insert(UserId::from(user));
    request
}

/// Sends one request through `layer` to [`app`].
pub async fn send(
    layer: &PlanLimitLayer,
    method: Method,
    uri: &str,
    user: &str,
) -> (StatusCode, String) {
    let service = layer.layer(service_fn(app));
    let response = service
        .oneshot(request(method, uri, user))
        .await
        .expect("infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a full body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Retries `check` every 10 ms until it returns true; returns how long it took, or `None` after
/// `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

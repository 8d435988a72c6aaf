//! What the Redis tests share: a server, connections, layers over Redis, requests.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceExt};
use tower_plans::redis::{RedisConnection, RedisInvalidator};
use tower_plans::{Allowed, PlanLimitLayer, PlanLimitLayerBuilder, UserCache, UserId};

pub use crate::redis_server::RedisServer;

/// Free keeps 5 clients and shows 3 tasks; pro keeps 50 clients and unlimited tasks.
pub const CATALOG: &str = r#"{"plans": [
    {"name": "free", "limits": {"clients": 5, "tasks": {"index": null, "show": 3}}},
    {"name": "pro", "limits": {"clients": 50, "tasks": null}}
]}"#;

/// A connection to `server` under the tests' prefix.
pub async fn connect(server: &RedisServer) -> RedisConnection {
    RedisConnection::open(&server.url())
        .await
        .expect("connect to the test redis-server")
        .key_prefix("test")
}

/// A layer builder over `conn`'s stores, counting usage, with a short store timeout.
pub fn builder(conn: &RedisConnection) -> PlanLimitLayerBuilder {
    PlanLimitLayer::builder(conn.plan_store())
        .count_usage(conn.usage_store())
        .store_timeout(Duration::from_millis(500))
}

/// One instance: its own connection, its own layer (its own caches), its own invalidator.
pub struct Instance {
    pub conn: RedisConnection,
    pub layer: PlanLimitLayer,
    pub invalidator: RedisInvalidator,
}

impl Instance {
    /// An instance with a one-hour user cache, subscribed to invalidations.
    pub async fn cached(server: &RedisServer) -> Instance {
        Instance::new(server, |b| {
            b.user_cache(UserCache::time_to_live(Duration::from_secs(3600), 1000))
        })
        .await
    }

    pub async fn new(
        server: &RedisServer,
        configure: impl FnOnce(PlanLimitLayerBuilder) -> PlanLimitLayerBuilder,
    ) -> Instance {
        Instance::on(connect(server).await, configure).await
    }

    /// An instance over `conn`, one Redis or a cluster.
    pub async fn on(
        conn: RedisConnection,
        configure: impl FnOnce(PlanLimitLayerBuilder) -> PlanLimitLayerBuilder,
    ) -> Instance {
        let layer = configure(builder(&conn)).build().expect("valid layer");
        let invalidator = RedisInvalidator::builder(&conn)
            .backoff(Duration::from_millis(20), Duration::from_millis(200))
            .start(layer.invalidator())
            .expect("inside a runtime");
        within(Duration::from_secs(5), invalidator.subscribed()).await;
        Instance {
            conn,
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

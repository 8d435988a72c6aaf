//! The load test's counted-over-Redis servers (feature `redis`), started only when named with
//! `--servers`: a `redis-server` of their own (`tests/support/redis_server.rs`), the
//! subscribers in memory on a plan whose limit no run reaches, and every create counted in
//! Redis:
//!
//! - `redis+count`: one layer, a reservation and a commit on Redis per create;
//! - `redis+lease`: one layer whose usage store has block leases (`lease::Leased`);
//! - `redis+lease4`: four layers (four instances' worth: each its own connection and its own
//!   leased store, estimating four instances), the requests dealt to them in turn, so that
//!   every counter is shared by the four.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::Request;
use axum::Router;
use tower::{service_fn, ServiceExt};
use tower_plans::lease::Leased;
use tower_plans::redis::RedisConnection;
use tower_plans::{MemoryStore, PlanLimitLayer, UsageStore};

pub use crate::redis_server::RedisServer;

/// The names of the servers this module makes.
pub const NAMES: [&str; 3] = ["redis+count", "redis+lease", "redis+lease4"];

/// The servers among `wanted`, over a `redis-server` they share (returned, to keep it running);
/// `app` puts the application behind a plan layer, `plans` is the subscribers' store.
pub async fn servers(
    wanted: &[String],
    app: impl Fn(PlanLimitLayer) -> Router,
    plans: &MemoryStore,
) -> Result<(Vec<(&'static str, Router)>, Option<RedisServer>), String> {
    let named: Vec<&'static str> = NAMES
        .into_iter()
        .filter(|name| wanted.iter().any(|w| w == name))
        .collect();
    if named.is_empty() {
        return Ok((Vec::new(), None));
    }
    let server = RedisServer::start();
    let mut routers = Vec::new();
    for name in named {
        let router = match name {
            "redis+count" => {
                let conn = connect(&server, name).await?;
                app(layer(plans, conn.usage_store())?)
            }
            "redis+lease" => {
                let conn = connect(&server, name).await?;
                app(layer(plans, Leased::new(conn.usage_store()))?)
            }
            _ => {
                let mut instances = Vec::new();
                for _ in 0..4 {
                    let conn = connect(&server, name).await?;
                    let leased = Leased::builder(conn.usage_store()).instances(4).build();
                    instances.push(app(layer(plans, leased)?));
                }
                in_turn(instances)
            }
        };
        routers.push((name, router));
    }
    Ok((routers, Some(server)))
}

/// A connection under a key prefix of the server's own.
async fn connect(server: &RedisServer, name: &str) -> Result<RedisConnection, String> {
    let prefix = name.replace('+', "-");
    RedisConnection::open(&server.url())
        .await
        .map(|conn| conn.key_prefix(&prefix))
        .map_err(|e| format!("{name}: connect to redis-server: {e}"))
}

/// The plan layer over `plans`, counting in `usage`.
fn layer(plans: &MemoryStore, usage: impl UsageStore) -> Result<PlanLimitLayer, String> {
    PlanLimitLayer::builder(plans.clone())
        .base("/api")
        .count_usage(usage)
        .build()
        .map_err(|e| format!("layer: {e}"))
}

/// One router that deals its requests to `instances` in turn.
fn in_turn(instances: Vec<Router>) -> Router {
    let instances = Arc::new(instances);
    let next = Arc::new(AtomicUsize::new(0));
    Router::new().fallback_service(service_fn(move |request: Request| {
        let index = next.fetch_add(1, Ordering::Relaxed) % instances.len();
        let router = instances[index].clone();
        async move { Ok::<_, Infallible>(router.oneshot(request).await.into_response_infallible()) }
    }))
}

/// `Router`'s answer, whose error cannot happen.
trait IntoResponseInfallible {
    fn into_response_infallible(self) -> axum::response::Response;
}

impl IntoResponseInfallible for Result<axum::response::Response, Infallible> {
    fn into_response_infallible(self) -> axum::response::Response {
        match self {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

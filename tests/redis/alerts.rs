//! Usage alerts across instances: four layers, each with its own Redis connection, serve one
//! axum app on loopback and raise alerts at 80 and 100 percent through one shared handler. 200
//! concurrent creates spread over them cross both thresholds of a lifetime limit and of a monthly
//! quota: each threshold fires exactly once in all; in the quota's next month each fires once
//! more. On one Redis, and on a cluster.
//!
//! The layers' clock stays near the real time: Redis expires a period's counts and markers on
//! its own clock. Every wait is bounded, so that a regression fails instead of hanging.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tower_plans::alerts::{AlertFuture, AlertHandler, Subject, Threshold, UsageAlert};
use tower_plans::catalog::{Period, Window};
use tower_plans::redis::RedisConnection;
use tower_plans::store::{Count, Counter};
use tower_plans::{Action, PlanLimitLayer, UsageStore, UserId};

use crate::common::*;

/// Longer than anything below should take.
const PATIENCE: Duration = Duration::from_secs(60);

/// How many creates each burst sends, spread over the instances.
const REQUESTS: usize = 200;

/// pro: 250 tasks for good; 200 reports a month.
const CATALOG: &str = r#"{"plans": [{"name": "pro", "limits": {
    "tasks": {"create": 250},
    "reports": {"create": {"max": 200, "per": "month"}}
}}]}"#;

/// john has 100 tasks already: the burst's 150th task reaches the limit, its 100th 80 percent.
const JOHN: &str = r#"{"plan": "pro", "usage": {"tasks": 100}}"#;

/// The alert handler every instance shares: it records what it receives.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<UsageAlert>>>);

impl AlertHandler for Recorder {
    fn alert(&self, alert: UsageAlert) -> AlertFuture {
        self.0.lock().unwrap().push(alert);
        Box::pin(async { Ok(()) })
    }
}

impl Recorder {
    /// What fired, by threshold, and emptied.
    fn take(&self) -> Vec<UsageAlert> {
        let mut alerts = std::mem::take(&mut *self.0.lock().unwrap());
        alerts.sort_by_key(|alert| match alert.threshold {
            Threshold::Percent(percent) => percent,
            Threshold::Remaining(_) => u64::MAX,
        });
        alerts
    }
}

/// The user named by the `x-user` header.
async fn authenticate(
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

/// An instance: the app behind its own layer over its own connection, on a loopback port.
async fn serve(conn: &RedisConnection, clock: &Arc<AtomicU64>, alerts: &Recorder) -> SocketAddr {
    let clock = Arc::clone(clock);
    let layer = PlanLimitLayer::builder(conn.plan_store())
        .count_usage(conn.usage_store())
        .store_timeout(Duration::from_secs(5))
        .clock(move || clock.load(Ordering::SeqCst))
        .alerts(
            [Threshold::Percent(80), Threshold::Percent(100)],
            alerts.clone(),
        )
        .build()
        .expect("a valid layer");
    let app = Router::new()
        .route("/tasks", post(|| async { StatusCode::CREATED }))
        .route("/reports", post(|| async { StatusCode::CREATED }))
        .layer(layer)
        .layer(axum::middleware::from_fn(authenticate));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    address
}

/// The tasks alive on the runtime.
fn alive() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// `REQUESTS` concurrent creates of `path` by john, spread over `instances` in turn, each on
/// a connection of its own that closes after it; then waits until the runtime is back to the
/// tasks it had before, so that every alert check the creates spawned has finished. Returns
/// how many were created; the others were refused.
async fn burst(instances: &[SocketAddr], path: &str) -> usize {
    let before = alive();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let start = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let sends: Vec<_> = (0..REQUESTS)
        .map(|n| {
            let request = Request::builder()
                .method(Method::POST)
                .uri(format!("http://{}{path}", instances[n % instances.len()]))
                .header("x-user", "john")
                .header("connection", "close")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let (client, start) = (client.clone(), Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                let response = client.request(request).await.expect("a response");
                let status = response.status();
                let body = response.into_body().collect().await.expect("a body");
                (status, body.to_bytes())
            })
        })
        .collect();
    let mut created = 0;
    for send in sends {
        let (status, body) = within(PATIENCE, send).await.expect("no panic");
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::FORBIDDEN => {}
            other => panic!("{path}: {other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    drop(client);
    let settled = eventually(PATIENCE, || async { alive() <= before }).await;
    assert!(
        settled.is_some(),
        "{path}: {} tasks alive, {before} before the burst",
        alive()
    );
    created
}

/// The wall clock, in milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// What an alert says, in short: its subject's resource, its threshold, its limit, its period.
fn summary(alert: &UsageAlert) -> (String, Threshold, u64, Option<Window>) {
    let resource = match &alert.subject {
        Subject::Action { resource, action } => {
            assert_eq!(*action, Action::Create, "{alert:?}");
            resource.to_string()
        }
        Subject::Pool(pool) => panic!("an alert about pool {pool}"),
    };
    assert_eq!(
        (alert.user.as_str(), &*alert.plan),
        ("john", "pro"),
        "{alert:?}"
    );
    (resource, alert.threshold, alert.max, alert.period)
}

/// Four instances over `conns` (one connection each, to one Redis or a cluster): each threshold
/// of john's tasks fires once when 200 concurrent creates cross both; each of his monthly
/// reports fires once in this month and once more in the next.
async fn alerts_fire_once_across_four_instances(conns: Vec<RedisConnection>) {
    let plans = conns[0].plan_store();
    plans.set_catalog_json(CATALOG).await.unwrap();
    plans.set_user_json("john", JOHN).await.unwrap();
    let clock = Arc::new(AtomicU64::new(now_ms()));
    let this_month = Period::Month.window(clock.load(Ordering::SeqCst));
    let alerts = Recorder::default();
    let mut instances = Vec::new();
    for conn in &conns {
        instances.push(serve(conn, &clock, &alerts).await);
    }
    let usage = conns[1].usage_store();
    let expected = |resource: &str, max, period| {
        [80, 100].map(|percent| {
            (
                resource.to_owned(),
                Threshold::Percent(percent),
                max,
                period,
            )
        })
    };

    // Tasks: 100 of 250, then 150 of the 200 creates pass, crossing 200 (80 %) and 250.
    assert_eq!(burst(&instances, "/tasks").await, 150);
    let fired = alerts.take();
    assert_eq!(
        fired.iter().map(summary).collect::<Vec<_>>(),
        expected("tasks", 250, None),
        "{fired:#?}"
    );
    assert!(fired[0].used >= 200 && fired[1].used == 250, "{fired:#?}");
    let tasks = Counter::items("john", "tasks");
    assert_eq!(
        usage.get(&tasks).await.unwrap(),
        Some(Count { used: 250, held: 0 })
    );

    // Reports: all 200 of the month's quota, crossing 160 and 200.
    assert_eq!(burst(&instances, "/reports").await, 200);
    let fired = alerts.take();
    assert_eq!(
        fired.iter().map(summary).collect::<Vec<_>>(),
        expected("reports", 200, Some(this_month)),
        "{fired:#?}"
    );
    // Another burst in the same month is refused whole, and fires nothing.
    assert_eq!(burst(&instances, "/reports").await, 0);
    assert_eq!(alerts.take(), []);

    // The next month: the quota starts again, and so do its alerts.
    let next_month = Period::Month.window(this_month.end());
    clock.store(next_month.start() + 3_600_000, Ordering::SeqCst);
    assert_eq!(burst(&instances, "/reports").await, 200);
    let fired = alerts.take();
    assert_eq!(
        fired.iter().map(summary).collect::<Vec<_>>(),
        expected("reports", 200, Some(next_month)),
        "{fired:#?}"
    );
    for (month, window) in [("this", this_month), ("next", next_month)] {
        let reports = Counter::action("john", "reports", Action::Create).in_period(window);
        assert_eq!(
            usage.get(&reports).await.unwrap(),
            Some(Count { used: 200, held: 0 }),
            "{month} month"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_alerts_fire_once_per_threshold_across_four_instances_and_again_next_month() {
    let server = RedisServer::start();
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(connect(&server).await);
    }
    alerts_fire_once_across_four_instances(conns).await;
}

#[cfg(feature = "redis-cluster")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_alerts_fire_once_per_threshold_across_four_instances_and_again_next_month() {
    use crate::cluster::{connect_cluster, RedisCluster};

    let cluster = RedisCluster::start();
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(connect_cluster(&cluster).await);
    }
    alerts_fire_once_across_four_instances(conns).await;
}

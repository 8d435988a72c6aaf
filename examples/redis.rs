//! Two instances of one API sharing one Redis: a create on one is counted on the other, and a
//! plan change made on one is seen by the other at once.
//!
//! Start a Redis (`redis-server --port 6379`), then run
//! `cargo run --example redis --features redis`, and follow the printed `curl` tour.
//!
//! Options: `--redis URL` (default `redis://127.0.0.1:6379/`), `--ports A,B` (default
//! `3001,3002`; `0` picks a free port), and `--check`, which runs the tour itself against
//! 127.0.0.1 and exits 0 when every step answered as printed.
//!
//! The user is whoever the `x-user` header names: a stand-in for real authentication. Keys live
//! under the prefix `tower-plans-example`; alice's record and counter are reset at start.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tower_plans::redis::{RedisConnection, RedisInvalidator, RedisPlanStore};
use tower_plans::store::Counter;
use tower_plans::{Allowed, PlanLimitLayer, RequestHead, UserCache, UserId};

const PREFIX: &str = "tower-plans-example";
const PLANS: &str = r#"[
    {"name": "free", "limits": {"clients": 2}},
    {"name": "pro", "limits": {"clients": 10}}
]"#;
const USERS: &str = r#"{"alice": {"plan": "free", "usage": {"clients": 1}}}"#;

struct Options {
    redis: String,
    ports: [u16; 2],
    check: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        redis: "redis://127.0.0.1:6379/".to_owned(),
        ports: [3001, 3002],
        check: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--redis" => options.redis = args.next().ok_or("--redis needs a URL")?,
            "--ports" => {
                let ports = args.next().ok_or("--ports needs A,B")?;
                let parsed: Vec<u16> =
                    ports
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .map_err(|_| format!("--ports: `{ports}` is not two port numbers"))?;
                options.ports = parsed
                    .try_into()
                    .map_err(|_| format!("--ports: `{ports}` is not two port numbers"))?;
            }
            "--check" => options.check = true,
            other => {
                return Err(format!(
                    "unknown argument `{other}` (options: --redis URL, --ports A,B, --check)"
                ))
            }
        }
    }
    Ok(options)
}

/// What one instance's handlers need.
#[derive(Clone)]
struct Instance {
    name: &'static str,
    plans: RedisPlanStore,
    invalidator: RedisInvalidator,
}

/// `POST /api/clients`: the layer counted the create; answer what it decided.
async fn create(
    State(instance): State<Instance>,
    Extension(allowed): Extension<Allowed>,
) -> (StatusCode, Json<serde_json::Value>) {
    let body = json!({
        "instance": instance.name,
        "plan": &*allowed.plan,
        "clients": allowed.usage + 1,
    });
    (StatusCode::CREATED, Json(body))
}

/// `GET /api/clients`: the plan this instance applies.
async fn list(
    State(instance): State<Instance>,
    Extension(allowed): Extension<Allowed>,
) -> Json<serde_json::Value> {
    Json(json!({"instance": instance.name, "plan": &*allowed.plan}))
}

/// `PUT /admin/users/{id}/plan` with the plan's name as the body: an admin action. It writes the
/// record to Redis and publishes the change to every instance. DEMO ONLY: no authorisation.
async fn change_plan(
    State(instance): State<Instance>,
    Path(user): Path<String>,
    plan: String,
) -> (StatusCode, Json<serde_json::Value>) {
    let plan = plan.trim().to_owned();
    let record = json!({ "plan": plan }).to_string();
    if let Err(error) = instance.plans.set_user_json(&user, &record).await {
        let body = json!({"error": error.to_string()});
        return (StatusCode::BAD_REQUEST, Json(body));
    }
    // Applied here at once, and on every other instance through Redis.
    if let Err(error) = instance.invalidator.user(&user).await {
        eprintln!("could not publish the change: {error}");
    }
    (StatusCode::OK, Json(json!({"user": user, "plan": plan})))
}

/// One instance: its own connection, layer, caches and subscription.
async fn instance(
    name: &'static str,
    url: &str,
) -> Result<(Router, RedisInvalidator), Box<dyn std::error::Error>> {
    let redis = RedisConnection::open(url).await?.key_prefix(PREFIX);
    let layer = PlanLimitLayer::builder(redis.plan_store())
        .base("/api")
        .count_usage(redis.usage_store())
        // Users are cached for 10 minutes: only the broadcast makes a change visible sooner.
        .user_cache(UserCache::time_to_live(Duration::from_secs(600), 10_000))
        .store_timeout(Duration::from_millis(500))
        // DEMO ONLY: the user is whoever the `x-user` header names.
        .extract_user(|head: &RequestHead<'_>| {
            let user = head.headers().get("x-user")?.to_str().ok()?;
            Some(UserId::from(user))
        })
        .build()?;
    let invalidator = redis.invalidator(layer.invalidator())?;
    let state = Instance {
        name,
        plans: redis.plan_store(),
        invalidator: invalidator.clone(),
    };
    let app = Router::new()
        .route("/api/clients", get(list).post(create))
        .route_layer(layer)
        .route("/admin/users/{id}/plan", put(change_plan))
        .with_state(state);
    Ok((app, invalidator))
}

/// One step of the tour.
struct Step {
    what: &'static str,
    method: &'static str,
    /// 0 for A, 1 for B.
    instance: usize,
    path: &'static str,
    user: Option<&'static str>,
    body: Option<&'static str>,
    status: u16,
    expected: &'static str,
    /// Whether it waits for a broadcast to arrive (`--check` retries it for up to a second).
    eventually: bool,
}

const TOUR: &[Step] = &[
    Step {
        what: "alice (free: 2 clients, has 1) creates a client on A",
        method: "POST",
        instance: 0,
        path: "/api/clients",
        user: Some("alice"),
        body: None,
        status: 201,
        expected: r#"{"clients":2,"instance":"A","plan":"free"}"#,
        eventually: false,
    },
    Step {
        what: "the create on A is counted on B: alice is at her limit",
        method: "POST",
        instance: 1,
        path: "/api/clients",
        user: Some("alice"),
        body: None,
        status: 403,
        expected: r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":2,"usage":2}"#,
        eventually: false,
    },
    Step {
        what: "an admin moves alice to pro on A, which publishes the change",
        method: "PUT",
        instance: 0,
        path: "/admin/users/alice/plan",
        user: None,
        body: Some("pro"),
        status: 200,
        expected: r#"{"plan":"pro","user":"alice"}"#,
        eventually: false,
    },
    Step {
        what: "B dropped its cached record of alice (cached for 10 minutes otherwise): pro",
        method: "POST",
        instance: 1,
        path: "/api/clients",
        user: Some("alice"),
        body: None,
        status: 201,
        expected: r#"{"clients":3,"instance":"B","plan":"pro"}"#,
        eventually: true,
    },
    Step {
        what: "and the create on B is counted on A",
        method: "POST",
        instance: 0,
        path: "/api/clients",
        user: Some("alice"),
        body: None,
        status: 201,
        expected: r#"{"clients":4,"instance":"A","plan":"pro"}"#,
        eventually: false,
    },
];

fn curl(step: &Step, addrs: &[SocketAddr; 2]) -> String {
    let mut cmd = format!("curl -s -w ' %{{http_code}}\\n' -X {}", step.method);
    if let Some(user) = step.user {
        cmd.push_str(&format!(" -H 'x-user: {user}'"));
    }
    if let Some(body) = step.body {
        cmd.push_str(&format!(" -d '{body}'"));
    }
    cmd.push_str(&format!(" http://{}{}", addrs[step.instance], step.path));
    cmd
}

fn print_tour(url: &str, addrs: &[SocketAddr; 2]) {
    println!("Two instances share the Redis at {url} (keys under `{PREFIX}:`):");
    println!("  A: http://{}    B: http://{}", addrs[0], addrs[1]);
    println!("alice is on \"free\" (2 clients) and has 1 client.\n");
    for (n, step) in TOUR.iter().enumerate() {
        let instance = ["A", "B"][step.instance];
        println!("# {}. {} ({instance})", n + 1, step.what);
        println!("{}", curl(step, addrs));
        println!("# expect {} {}\n", step.expected, step.status);
    }
}

/// Runs the tour against the instances; true when every step answered as printed.
async fn check(addrs: &[SocketAddr; 2]) -> bool {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut passed = true;
    for (n, step) in TOUR.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(1);
        let answer = loop {
            let mut request = http::Request::builder()
                .method(step.method)
                .uri(format!("http://{}{}", addrs[step.instance], step.path));
            if let Some(user) = step.user {
                request = request.header("x-user", user);
            }
            let request = request
                .body(Full::from(step.body.unwrap_or_default()))
                .expect("a valid request");
            let answer = match client.request(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match response.into_body().collect().await {
                        Ok(body) => Ok((
                            status,
                            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
                        )),
                        Err(error) => Err(error.to_string()),
                    }
                }
                Err(error) => Err(error.to_string()),
            };
            let matched = matches!(&answer, Ok((status, body)) if *status == step.status && body == step.expected);
            if matched || !step.eventually || Instant::now() >= deadline {
                break answer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        match answer {
            Ok((status, body)) if status == step.status && body == step.expected => {
                println!("ok   {}. {status} {body}", n + 1);
            }
            Ok((status, body)) => {
                println!(
                    "FAIL {}. expected {} {}, got {status} {body}",
                    n + 1,
                    step.status,
                    step.expected
                );
                passed = false;
            }
            Err(error) => {
                println!("FAIL {}. no answer: {error}", n + 1);
                passed = false;
            }
        }
    }
    passed
}

async fn run(options: Options) -> Result<bool, Box<dyn std::error::Error>> {
    // Reset the example's data: the catalog, alice's record and her counter.
    let redis = RedisConnection::open(&options.redis)
        .await
        .map_err(|error| format!("cannot reach redis at {}: {error}", options.redis))?
        .key_prefix(PREFIX);
    redis.plan_store().load_json(PLANS, USERS).await?;
    redis
        .usage_store()
        .reset(&Counter::items("alice", "clients"))
        .await?;

    let mut addrs = Vec::new();
    let mut invalidators = Vec::new();
    for (name, port) in ["A", "B"].into_iter().zip(options.ports) {
        let (app, invalidator) = instance(name, &options.redis).await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|error| format!("cannot listen on 127.0.0.1:{port}: {error}"))?;
        addrs.push(listener.local_addr()?);
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("instance {name} stopped: {error}");
            }
        });
        invalidators.push(invalidator);
    }
    for invalidator in &invalidators {
        tokio::time::timeout(Duration::from_secs(5), invalidator.subscribed())
            .await
            .map_err(|_| "the instances could not subscribe to invalidations")?;
    }
    let addrs: [SocketAddr; 2] = [addrs[0], addrs[1]];
    print_tour(&options.redis, &addrs);
    if options.check {
        return Ok(check(&addrs).await);
    }
    println!("Serving; Ctrl-C stops.");
    tokio::signal::ctrl_c().await?;
    Ok(true)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("the tour did not answer as printed");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

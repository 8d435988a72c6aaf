//! The quickstart's REST app over Postgres, as two instances sharing one database:
//!
//! ```sh
//! cargo run --example postgres --features postgres                 # starts a Postgres of its own
//! cargo run --example postgres --features postgres -- --check      # runs the tour itself; exit 0 when it answers as printed
//! cargo run --example postgres --features postgres -- --url postgres://app@localhost/app
//! ```
//!
//! Without `--url` it starts a throwaway Postgres (Debian's `postgresql` package: `initdb` and
//! `postgres` in a temporary directory, on a Unix socket, as the `postgres` user when run as
//! root), removed on exit. The plans and users of the quickstart's fixture are loaded into the
//! database when it has no plans yet. Each instance runs the quickstart's layer over one
//! `PostgresStore` (plans, records and counted usage) with a user cache, and listens to
//! invalidations: the admin route `PUT /admin/users/{id}/plan` on either instance changes the
//! row, and the schema's trigger notifies both, which drop their cached record.

#[path = "quickstart/app.rs"]
mod app;
#[path = "../tests/support/postgres_server.rs"]
mod postgres_server;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tower_plans::postgres::{PostgresInvalidator, PostgresStore};
use tower_plans::store::{Count, Counter};
use tower_plans::subscriber::Assignment;
use tower_plans::{BoxError, PlanLimitLayer, PlanStore, UsageStore, UserCache};

/// The quickstart's fixture: the layer's configuration, the plans and the users.
const FIXTURE: &str = include_str!("quickstart.json");

const USAGE: &str = "usage: postgres [--url URL] [--check]";

struct Args {
    url: Option<String>,
    check: bool,
}

impl Args {
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            url: None,
            check: false,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--url" => parsed.url = Some(args.next().ok_or(USAGE)?),
                "--check" => parsed.check = true,
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
            }
        }
        Ok(parsed)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// One instance: its server task, its address, and the invalidator it keeps listening.
struct Instance {
    addr: SocketAddr,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _invalidator: PostgresInvalidator,
}

/// Starts an instance of the quickstart's app over `url`'s database on a free loopback port.
async fn instance(
    url: &str,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(Instance, PostgresStore), BoxError> {
    let store = PostgresStore::connect(url).await?;
    let fixture = app::Fixture::parse(FIXTURE)?;
    let layer = fixture
        .configure(PlanLimitLayer::builder(store.clone()))
        .count_usage(store.clone())
        .user_cache(UserCache::time_to_live(Duration::from_secs(60), 10_000))
        .store_timeout(Duration::from_secs(2))
        .build()?;
    let invalidator = store.invalidator(layer.invalidator())?;
    tokio::time::timeout(Duration::from_secs(10), invalidator.listening())
        .await
        .map_err(|_| "the instance did not listen to invalidations within 10 s")?;
    let router = app::app(layer).merge(
        Router::new()
            .route("/admin/users/{id}/plan", put(set_plan))
            .with_state(store.clone()),
    );
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let mut stop = stop;
    let server = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            })
            .into_future(),
    );
    Ok((
        Instance {
            addr,
            server,
            _invalidator: invalidator,
        },
        store,
    ))
}

async fn run(args: Args) -> Result<ExitCode, BoxError> {
    // A Postgres of its own unless one is named; dropped (stopped, removed) on return.
    let mut own = None;
    let url = match &args.url {
        Some(url) => url.clone(),
        None => {
            let server =
                tokio::task::spawn_blocking(postgres_server::PostgresServer::start).await?;
            let url = server.url();
            own = Some(server);
            url
        }
    };
    let store = PostgresStore::connect(&url)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let fresh = store.plans().await?.plans().count() == 0;
    if fresh {
        let fixture: Value = serde_json::from_str(FIXTURE)?;
        store
            .load_json(&fixture["plans"].to_string(), &fixture["users"].to_string())
            .await?;
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (a, store_a) = instance(&url, stopped.clone()).await?;
    let (b, store_b) = instance(&url, stopped).await?;
    // Expired holds are ignored anyway; the sweep keeps the table small.
    let sweeper = tokio::spawn({
        let store = store.clone();
        async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(60));
            loop {
                ticks.tick().await;
                if let Err(error) = store.sweep().await {
                    eprintln!("warning: sweeping expired holds failed: {error}");
                }
            }
        }
    });

    let code = if args.check {
        check(&a, &b, &store, fresh).await
    } else {
        println!("{}", banner(&a, &b, &url));
        tokio::signal::ctrl_c().await?;
        ExitCode::SUCCESS
    };
    let _ = stop.send(true);
    sweeper.abort();
    for instance in [a, b] {
        let _ = tokio::time::timeout(Duration::from_secs(5), instance.server).await;
    }
    for store in [store, store_a, store_b] {
        store.close().await;
    }
    if let Some(server) = own {
        tokio::task::spawn_blocking(move || drop(server)).await?;
    }
    Ok(code)
}

/// `PUT /admin/users/{id}/plan` with `{"plan": "pro"}` (or `null`): an admin tool changes a
/// plan. DEMO ONLY: no authentication. The row changes; the schema's trigger notifies every
/// instance, which drops its cached record of the user. A database error is logged, never sent.
async fn set_plan(
    State(store): State<PostgresStore>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let plan = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|body| body.get("plan").cloned());
    let assignment = match plan {
        Some(Value::String(plan)) => Some(Assignment::new(plan)),
        Some(Value::Null) => None,
        _ => {
            let reason = r#"expected {"plan": "<name>"} or {"plan": null}"#;
            return (StatusCode::BAD_REQUEST, Json(json!({ "reason": reason }))).into_response();
        }
    };
    let result = async {
        let Some(record) = store.user(&id).await? else {
            return Ok::<_, BoxError>(false);
        };
        let mut record = (*record).clone();
        record.assignment = assignment.clone();
        store.put_user(&id, &record).await?;
        Ok(true)
    }
    .await;
    match result {
        Ok(true) => {
            let plan = assignment.map(|assignment| assignment.plan.to_string());
            Json(json!({ "user": id, "plan": plan })).into_response()
        }
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "reason": "no such user" })),
        )
            .into_response(),
        Err(error) => {
            eprintln!("error: cannot set the plan of {id}: {error}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "reason": "internal_error" })),
            )
                .into_response()
        }
    }
}

/// Which instance a step goes to.
#[derive(Clone, Copy)]
enum On {
    A,
    B,
}

/// The quickstart's tour on instance A, then what two instances add: a plan change made on B is
/// seen by A (within a second), and A's and B's creates count on one counter.
fn tour() -> Vec<(On, app::TourStep)> {
    let mut steps: Vec<(On, app::TourStep)> =
        app::tour().into_iter().map(|step| (On::A, step)).collect();
    steps.push((
        On::B,
        app::TourStep {
            what: "instance B: alice (free, 3 clients counted in Postgres) creates a fourth: 403",
            method: Method::POST,
            path: "/api/clients",
            user: Some("alice"),
            body: Some(r#"{"name":"Hooli"}"#),
            status: StatusCode::FORBIDDEN,
        },
    ));
    steps.push((
        On::B,
        app::TourStep {
            what: "instance B: an admin moves alice to pro; the trigger notifies both instances",
            method: Method::PUT,
            path: "/admin/users/alice/plan",
            user: None,
            body: Some(r#"{"plan":"pro"}"#),
            status: StatusCode::OK,
        },
    ));
    steps.push((
        On::A,
        app::TourStep {
            what: "instance A (which had alice cached on free): allowed on pro, counted: 4",
            method: Method::POST,
            path: "/api/clients",
            user: Some("alice"),
            body: Some(r#"{"name":"Hooli"}"#),
            status: StatusCode::CREATED,
        },
    ));
    steps.push((
        On::B,
        app::TourStep {
            what: "instance B: alice creates one more, on the same counter: 5",
            method: Method::POST,
            path: "/api/clients",
            user: Some("alice"),
            body: Some(r#"{"name":"Vandelay"}"#),
            status: StatusCode::CREATED,
        },
    ));
    steps
}

fn banner(a: &Instance, b: &Instance, url: &str) -> String {
    let mut out = format!(
        "tower-plans postgres example: instance A on http://{}, instance B on http://{}\n\
         database: {url} (the counts: SELECT * FROM tower_plans.counters)\n\n\
         A short tour (run the commands in order; each says what to expect):\n",
        a.addr, b.addr
    );
    for (i, (on, step)) in tour().iter().enumerate() {
        let addr = match on {
            On::A => a.addr,
            On::B => b.addr,
        };
        out.push_str(&format!(
            "\n{}. {} (expect {})\n   {}\n",
            i + 1,
            step.what,
            step.status,
            step.curl(addr)
        ));
    }
    out
}

/// Runs the tour over loopback HTTP, then checks what Postgres holds. A step that expects a
/// success after a plan change made on the other instance is tried again for up to a second:
/// the notification travels asynchronously.
async fn check(a: &Instance, b: &Instance, store: &PostgresStore, fresh: bool) -> ExitCode {
    let started = Instant::now();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let steps = tour();
    let mut failures = 0;
    for (i, (on, step)) in steps.iter().enumerate() {
        let number = i + 1;
        let addr = match on {
            On::A => a.addr,
            On::B => b.addr,
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        let answer = loop {
            let answer = send(&client, addr, step).await;
            match &answer {
                Ok((StatusCode::FORBIDDEN, _))
                    if step.status != StatusCode::FORBIDDEN
                        && Instant::now() < deadline
                        && number > app::tour().len() =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => break answer,
            }
        };
        match answer {
            Ok((status, _)) if status == step.status => {
                println!("ok   {number}. {} {} -> {status}", step.method, step.path);
            }
            Ok((status, body)) => {
                failures += 1;
                println!(
                    "FAIL {number}. {}: expected {}, got {status}: {body}\n     {}",
                    step.what,
                    step.status,
                    step.curl(addr)
                );
            }
            Err(error) => {
                failures += 1;
                println!("FAIL {number}. {}: no answer: {error}", step.what);
            }
        }
    }
    // alice's clients: 2 + 1 - 1 + 1 on free, then 1 on A and 1 on B on pro; nothing held.
    let expected = Count { used: 5, held: 0 };
    match store.get(&Counter::items("alice", "clients")).await {
        Ok(Some(count)) if count == expected => {
            println!("ok   counters: alice has {} clients", count.used)
        }
        other => {
            failures += 1;
            println!("FAIL counters: alice's clients are {other:?}, expected {expected:?}");
        }
    }
    match store.sweep().await {
        Ok(swept) if swept.holds == 0 => println!("ok   holds: none left"),
        other => {
            failures += 1;
            println!("FAIL holds: {other:?}, expected none expired");
        }
    }
    if failures == 0 {
        println!(
            "postgres example check passed: {} steps in {} ms",
            steps.len(),
            started.elapsed().as_millis()
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("postgres example check FAILED: {failures} check(s) did not answer as printed");
        if !fresh {
            eprintln!("note: the database already held data; the tour expects a fresh one");
        }
        ExitCode::FAILURE
    }
}

/// Sends one step over HTTP; the status and the body as text.
async fn send(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    step: &app::TourStep,
) -> Result<(StatusCode, String), BoxError> {
    let mut request = axum::http::Request::builder()
        .method(step.method.clone())
        .uri(format!("http://{addr}{}", step.path));
    if let Some(user) = step.user {
        request = request.header("x-user", user);
    }
    if step.body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request.body(Full::new(Bytes::from(step.body.unwrap_or_default())))?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| "no response within 10 s")??;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

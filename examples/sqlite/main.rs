//! The quickstart's REST app, with plans, subscribers and usage counts in an SQLite database,
//! metered plans included (meters, credit pools, add-ons that raise them, top-up grants):
//!
//! ```sh
//! cargo run --example sqlite                      # a free loopback port, a temporary database
//! cargo run --example sqlite -- --check           # runs the tour itself; exit 0 when it answers as printed
//! cargo run --example sqlite -- --addr 127.0.0.1:3000 --db plans.db
//! ```
//!
//! `store.rs` is the `PlanStore` and the `UsageStore` over SQLite (sqlx); `migrations/` is its
//! schema, applied when the store opens; `seed.sql` fills a database without plans with the
//! quickstart's data: its plans with their limits and `ai` credit pools, its add-ons, the
//! meters of images (5 credits) and chats (reported, 200 reserved), and its users (grace with a
//! top-up grant of 100 credits, ivan with the "more-ai" add-on). `--check` runs the tour, then
//! checks what SQLite counted: the clients, the credits each metered step drew from this
//! month's pools and from grace's top-up, and that nothing is left held. The layer is configured as in the quickstart (same fixture, same routes),
//! counts usage in SQLite, and caches users for a minute: the admin route
//! `PUT /admin/users/{id}/plan` changes a plan in the database and then tells the layer with its
//! `Invalidator`. The database is a file in a temporary folder, removed on exit, unless `--db`
//! names one (the tour expects a fresh database).

#[path = "../quickstart/app.rs"]
mod app;
mod store;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
use tower_plans::catalog::Period;
use tower_plans::store::{Count, Counter};
use tower_plans::subscriber::Assignment;
use tower_plans::{BoxError, Invalidator, PlanLimitLayer, PlanStore, UsageStore, UserCache};

use store::SqliteStore;

/// The quickstart's fixture: the layer's configuration (base, paths, catalog time-to-live).
const FIXTURE: &str = include_str!("../quickstart.json");
/// The quickstart's plans and users, as rows.
const SEED: &str = include_str!("seed.sql");

const USAGE: &str = "usage: sqlite [--addr 127.0.0.1:0] [--db PATH] [--check]";

/// Command-line options.
struct Args {
    addr: SocketAddr,
    db: Option<PathBuf>,
    check: bool,
}

impl Args {
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: None,
            check: false,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg.clone(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
            };
            match flag.as_str() {
                "--addr" => {
                    let addr = value("--addr")?;
                    parsed.addr = addr
                        .parse()
                        .map_err(|e| format!("--addr `{addr}` is not a socket address: {e}"))?;
                }
                "--db" => parsed.db = Some(PathBuf::from(value("--db")?)),
                "--check" => parsed.check = true,
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
            }
        }
        Ok(parsed)
    }
}

/// A temporary folder, removed with what it holds when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let name = format!("tower-plans-sqlite-{}-{nanos}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // The layer logs store failures at warn level (never into responses); RUST_LOG=debug shows
    // every decision.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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

async fn run(args: Args) -> Result<ExitCode, BoxError> {
    let temp;
    let path = match &args.db {
        Some(path) => path.clone(),
        None => {
            temp = TempDir::new()?;
            temp.0.join("plans.db")
        }
    };
    let store = SqliteStore::open(&path)
        .await
        .map_err(|e| format!("cannot open the database {}: {e}", path.display()))?;
    let fresh = store.has_no_plans().await?;
    if fresh {
        store.execute_script(SEED).await?;
    }

    // The quickstart's layer, over SQLite: plans and users from the database, usage counted in
    // it, users cached for a minute (the admin route invalidates what it changes).
    let fixture = app::Fixture::parse(FIXTURE)?;
    let layer = fixture
        .configure(PlanLimitLayer::builder(store.clone()))
        .count_usage(store.clone())
        .user_cache(UserCache::time_to_live(Duration::from_secs(60), 10_000))
        .build()?;
    let admin = Admin {
        store: store.clone(),
        invalidator: layer.invalidator(),
    };
    let router = app::app(layer).merge(
        Router::new()
            .route("/admin/users/{id}/plan", put(set_plan))
            .with_state(admin),
    );

    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );
    let purger = tokio::spawn(purge_expired_every(store.clone(), Duration::from_secs(60)));

    let code = if args.check {
        check(addr, &store, fresh).await
    } else {
        println!("{}", banner(addr, &path));
        tokio::signal::ctrl_c().await?;
        ExitCode::SUCCESS
    };

    let _ = stop.send(());
    purger.abort();
    if tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .is_err()
    {
        eprintln!("warning: the server did not stop within 5 s");
    }
    store.close().await;
    Ok(code)
}

/// Deletes expired reservations now and then (queries ignore them in between).
async fn purge_expired_every(store: SqliteStore, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        if let Err(error) = store.purge_expired().await {
            eprintln!("warning: purging expired reservations failed: {error}");
        }
    }
}

/// What the admin route needs: the database, and the layer's handle to its caches.
#[derive(Clone)]
struct Admin {
    store: SqliteStore,
    invalidator: Invalidator,
}

/// `PUT /admin/users/{id}/plan` with `{"plan": "pro"}` (or `null`): an admin tool, or a billing
/// webhook, changes a plan. DEMO ONLY: no authentication; a real application guards it.
///
/// The database changes first; then the layer drops its cached record of the user, so that the
/// next request is decided on the new plan. A database error is logged, never sent.
async fn set_plan(State(admin): State<Admin>, Path(id): Path<String>, body: Bytes) -> Response {
    let plan = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|body| body.get("plan").cloned());
    let assignment = match plan {
        Some(Value::String(plan)) => Some(Assignment::new(plan).joined_at(now_ms())),
        Some(Value::Null) => None,
        _ => {
            let reason = r#"expected {"plan": "<name>"} or {"plan": null}"#;
            return (StatusCode::BAD_REQUEST, Json(json!({ "reason": reason }))).into_response();
        }
    };
    match admin.store.set_plan(&id, assignment.as_ref()).await {
        Ok(true) => {
            admin.invalidator.user(&id);
            let plan = assignment.map(|assignment| assignment.plan.to_string());
            Json(json!({ "user": id, "plan": plan })).into_response()
        }
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "reason": "no such user or plan" })),
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The quickstart's tour, then an admin action that the layer's cache must not hide.
fn tour() -> Vec<app::TourStep> {
    let mut steps = app::tour();
    steps.push(app::TourStep {
        what: "an admin moves alice to pro: the row changes, then the layer's Invalidator \
               drops her cached record",
        method: Method::PUT,
        path: "/admin/users/alice/plan",
        user: None,
        body: Some(r#"{"plan":"pro"}"#),
        status: StatusCode::OK,
    });
    steps.push(app::TourStep {
        what: "alice creates a fourth client: allowed on pro, counted in SQLite: 4",
        method: Method::POST,
        path: "/api/clients",
        user: Some("alice"),
        body: Some(r#"{"name":"Hooli"}"#),
        status: StatusCode::CREATED,
    });
    steps
}

/// The text printed on start.
fn banner(addr: SocketAddr, db: &std::path::Path) -> String {
    let mut out = format!(
        "tower-plans sqlite example listening on http://{addr}\n\
         database: {db} (see the counts: sqlite3 {db} 'SELECT * FROM usage_counters')\n\n\
         A short tour (run the commands in order; each says what to expect):\n",
        db = db.display()
    );
    for (i, step) in tour().iter().enumerate() {
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

/// Runs the tour against the server at `addr` over loopback HTTP, then checks what SQLite holds.
/// `fresh`: whether the database was seeded for this run (the tour expects it).
async fn check(addr: SocketAddr, store: &SqliteStore, fresh: bool) -> ExitCode {
    let started = Instant::now();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let steps = tour();
    let mut failures = 0;
    for (i, step) in steps.iter().enumerate() {
        let number = i + 1;
        match send(&client, addr, step).await {
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
    // The counts the layer kept are in the database: alice's clients (2 + 1 - 1 + 1 + 1), and
    // nothing left held once every response was sent.
    let alice = store.get(&Counter::items("alice", "clients")).await;
    let expected = Count { used: 4, held: 0 };
    match alice {
        Ok(Some(count)) if count == expected => {
            println!("ok   usage_counters: alice has {} clients", count.used);
        }
        other => {
            failures += 1;
            println!("FAIL usage_counters: alice's clients are {other:?}, expected {expected:?}");
        }
    }
    // alice's clients are a plain count (a `*` row): the usage of every action on clients.
    match store.user("alice").await {
        Ok(Some(alice)) if alice.usage.count("clients") == Some(4) => {
            println!("ok   alice's record: a plain count of 4 clients");
        }
        other => {
            failures += 1;
            let usage = other.map(|alice| alice.map(|alice| alice.usage.clone()));
            println!("FAIL alice's record: {usage:?}, expected a plain count of 4 clients");
        }
    }
    // What the metered steps drew, on this month's counters of the `ai` pools and on grace's
    // top-up: dave an image (5) and a chat that reported 120; alice one image (her second was
    // refused); grace two images, 8 from her allowance and 2 from `topup-1`; ivan a chat that
    // reported 30, which his add-on's credits let through.
    let month = Period::Month.window(now_ms());
    let pool = |user: &str| Counter::credits(user, "ai").in_period(month);
    let drawn = [
        ("dave's ai credits this month", pool("dave"), 125),
        ("alice's ai credits this month", pool("alice"), 5),
        ("grace's ai credits this month", pool("grace"), 8),
        (
            "grace's top-up topup-1",
            Counter::grant("grace", "ai", "topup-1"),
            2,
        ),
        ("ivan's ai credits this month", pool("ivan"), 30),
    ];
    for (what, counter, used) in drawn {
        let expected = Count { used, held: 0 };
        match store.get(&counter).await {
            Ok(Some(count)) if count == expected => println!("ok   {what}: {used} spent"),
            other => {
                failures += 1;
                println!("FAIL {what}: {other:?}, expected {expected:?}");
            }
        }
    }
    // grace's record holds her grant as the seed wrote it; what it spent is a counter apart.
    match store.user("grace").await {
        Ok(Some(grace)) if grace.grants.len() == 1 && grace.grants[0].amount == 100 => {
            println!("ok   grace's record: the top-up topup-1 of 100 ai credits");
        }
        other => {
            failures += 1;
            let grants = other.map(|grace| grace.map(|grace| grace.grants.clone()));
            println!("FAIL grace's record: grants {grants:?}, expected topup-1 of 100");
        }
    }
    match store.stored_reservations().await {
        Ok(0) => println!("ok   reservations: none left"),
        other => {
            failures += 1;
            println!("FAIL reservations: {other:?} left, expected 0");
        }
    }
    let elapsed = started.elapsed();
    if failures == 0 {
        println!(
            "sqlite example check passed: {} steps in {} ms",
            steps.len(),
            elapsed.as_millis()
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("sqlite example check FAILED: {failures} check(s) did not answer as printed");
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

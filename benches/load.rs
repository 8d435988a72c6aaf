//! Loopback load test: the same axum application with and without `PlanLimitLayer`.
//!
//! ```sh
//! cargo bench --bench load
//! cargo bench --bench load -- --connections 32 --seconds 5 --rounds 9
//! ```
//!
//! A `harness = false` bench target with `bench = false`: a plain `cargo bench` leaves it out,
//! naming it runs it (in the `bench` profile). Cargo passes `--bench` after the arguments given
//! after `--`; it is accepted and means nothing here.
//!
//! It starts five servers in this process, each on its own `127.0.0.1` port: the application
//! alone (`bare`), the application behind a tower layer that does nothing (`noop-layer`: what
//! wrapping the routes in any layer costs), the application behind the least a plan check can do
//! (`floor`: `benches/common/floor.rs`, a `matchit` route, a record read under a lock, one count
//! against one limit; not the plan layer), the application behind the plan layer with a
//! `MemoryStore` (`layer`: the subscriber is read from the store on every request), the same
//! with a user cache (`layer+cache`), and the same counting usage in its store (`layer+count`:
//! every create reserves a unit before the handler and commits it after; its subscribers are on
//! a plan whose limit no run reaches).
//! Every server runs the same demo authentication (the user is the `x-user` header), and the same
//! handler answers `201` with a small JSON body. The store holds a catalog and 1000 subscribers on
//! the `pro` plan (30 clients) with 1 client each, so every `POST /api/clients` is governed and
//! allowed.
//!
//! The load generator opens `--connections` keep-alive HTTP/1.1 connections to one server at a
//! time and sends requests back to back on each (each connection cycles through the
//! subscribers), for `--seconds` per server or until `--max-requests` have been answered. The
//! servers take turns for `--rounds` rounds, each round starting with the next server; it prints
//! each run, then the request rate of each server over all rounds, its ratio to the bare server,
//! and the median of the ratios of the rounds (less sensitive to a noisy run). Only loopback
//! addresses are used. `--servers layer` runs only the named servers (and `bare`, the baseline).
//!
//! With the `redis` feature, three more servers count every create in a `redis-server` that the
//! test starts for them (`benches/common/counted_redis.rs`), only when `--servers` names them:
//! `redis+count` (a reservation and a commit on Redis per create), `redis+lease` (the same
//! store with block leases, `lease::Leased`) and `redis+lease4` (four layers with leases, each
//! its own connection, taking the requests in turn):
//! `cargo bench --features redis --bench load -- --servers redis+count,redis+lease,redis+lease4`.
//!
//! `--serve` starts the servers, prints one line per server (`serving <name> http://<addr>`),
//! then `ready`, and answers until the process is stopped, for an external load generator
//! (`scripts/load-wrk.sh` drives them with `wrk`).

#[cfg(feature = "redis")]
#[path = "common/counted_redis.rs"]
mod counted_redis;
#[path = "common/floor.rs"]
mod floor;
#[cfg(feature = "redis")]
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::util::MapRequestLayer;
use tower_plans::{
    subscriber::Assignment, Allowed, Catalog, MemoryStore, PlanLimitLayer, Subscriber, UserCache,
    UserId,
};

const USAGE: &str = "usage: cargo bench --bench load -- [--connections 16] [--seconds 3] \
                     [--rounds 5] [--max-requests 5000000] [--users 1000] \
                     [--servers bare,noop-layer,floor,layer,layer+cache,layer+count\
                     (,redis+count,redis+lease,redis+lease4 with --features redis)] [--serve]";

#[derive(Debug)]
struct Options {
    connections: usize,
    seconds: f64,
    rounds: usize,
    max_requests: u64,
    users: usize,
    /// The servers to run (all when empty); `bare` always runs, as the baseline.
    servers: Vec<String>,
    /// Only serve, for an external load generator.
    serve: bool,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut options = Options {
            connections: 16,
            seconds: 3.0,
            rounds: 5,
            max_requests: 5_000_000,
            users: 1_000,
            servers: Vec::new(),
            serve: false,
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            let bad = |e: &dyn std::fmt::Display| format!("{flag}: {e}\n{USAGE}");
            match flag.as_str() {
                "--connections" => options.connections = value()?.parse().map_err(|e| bad(&e))?,
                "--seconds" => options.seconds = value()?.parse().map_err(|e| bad(&e))?,
                "--rounds" => options.rounds = value()?.parse().map_err(|e| bad(&e))?,
                "--max-requests" => options.max_requests = value()?.parse().map_err(|e| bad(&e))?,
                "--users" => options.users = value()?.parse().map_err(|e| bad(&e))?,
                "--servers" => options.servers = value()?.split(',').map(str::to_owned).collect(),
                // What `cargo bench` adds to the arguments of every bench target it runs.
                "--bench" => {}
                "--serve" => options.serve = true,
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
            }
        }
        if options.connections == 0 || options.rounds == 0 || options.users == 0 {
            return Err(format!("counts must be at least 1\n{USAGE}"));
        }
        if !(options.seconds > 0.0 && options.seconds <= 600.0) {
            return Err(format!("--seconds must be in (0, 600]\n{USAGE}"));
        }
        Ok(options)
    }
}

/// DEMO ONLY: the user is whoever the `x-user` header names.
async fn demo_auth(mut request: Request, next: Next) -> Response {
    let user = request
        .headers()
        .get("x-user")
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty())
        .map(UserId::from);
    if let Some(user) = user {
        request.extensions_mut().insert(user);
    }
    next.run(request).await
}

/// Creates nothing, but answers like a handler that did; reads the decision when there is one.
async fn create_client(allowed: Option<Extension<Allowed>>) -> impl IntoResponse {
    let remaining = allowed.and_then(|Extension(allowed)| allowed.remaining());
    (
        StatusCode::CREATED,
        Json(json!({"id": 1, "remaining": remaining})),
    )
}

fn app() -> Router {
    Router::new()
        .route("/api/clients", post(create_client))
        .route("/api/health", get(|| async { "ok" }))
}

/// The subscribers' store: `u0`, `u1`, ... on `plan` with 1 client each, and `full` at free's
/// limit.
fn subscribers(users: usize, plan: &str) -> Result<MemoryStore, String> {
    let catalog = Catalog::from_json(
        r#"{
            "trial": {"duration": 14, "fallback": "free"},
            "plans": [
                {"name": "free", "limits": {"clients": 3, "projects": {"create": 1, "delete": 0}}},
                {"name": "regular", "limits": {"clients": 10, "projects": 5}},
                {"name": "pro", "limits": {"clients": 30, "projects": null}},
                {"name": "metered", "limits": {"clients": 1000000000000, "projects": null}}
            ]
        }"#,
    )
    .map_err(|e| format!("catalog: {e}"))?;
    let store = MemoryStore::new(catalog);
    for i in 0..users {
        let subscriber = Subscriber::new()
            .with_name(format!("u{i}"))
            .with_plan(Assignment::new(plan))
            .with_usage("clients", 1);
        store.insert_user(format!("u{i}"), subscriber);
    }
    // One subscriber at the limit, to check that the layer is really there.
    store.insert_user(
        "full",
        Subscriber::new()
            .with_plan(Assignment::new("free"))
            .with_usage("clients", 3),
    );
    Ok(store)
}

fn servers(users: usize) -> Result<Vec<(&'static str, Router)>, String> {
    let store = subscribers(users, "pro")?;
    let auth = middleware::from_fn(demo_auth);
    let layer = PlanLimitLayer::builder(store.clone())
        .base("/api")
        .build()
        .map_err(|e| format!("layer: {e}"))?;
    let cached = PlanLimitLayer::builder(store.clone())
        .base("/api")
        .user_cache(UserCache::time_to_live(
            Duration::from_secs(60),
            users as u64 + 16,
        ))
        .build()
        .map_err(|e| format!("layer: {e}"))?;
    let counted_store = subscribers(users, "metered")?;
    let counted = PlanLimitLayer::builder(counted_store.clone())
        .base("/api")
        .count_usage(counted_store)
        .build()
        .map_err(|e| format!("layer: {e}"))?;
    // A layer that does nothing but wrap the routes, as any tower layer does: what is left between
    // it and the plan layer is the plan check itself.
    let noop = MapRequestLayer::new(|request: Request| request);
    // The least a plan check can do, on the same subscribers and limits.
    let plans = floor::Plans::new(
        "/api",
        &["clients", "projects"],
        &[
            ("free", &[("clients", 3), ("projects", 1)]),
            ("regular", &[("clients", 10), ("projects", 5)]),
            ("pro", &[("clients", 30)]),
        ],
    );
    for i in 0..users {
        plans.insert(&format!("u{i}"), "pro", &[("clients", 1)]);
    }
    plans.insert("full", "free", &[("clients", 3)]);
    Ok(vec![
        ("bare", app().layer(auth.clone())),
        ("noop-layer", app().layer(noop).layer(auth.clone())),
        (
            "floor",
            app()
                .layer(floor::FloorLayer::new(plans))
                .layer(auth.clone()),
        ),
        ("layer", app().layer(layer).layer(auth.clone())),
        ("layer+cache", app().layer(cached).layer(auth.clone())),
        ("layer+count", app().layer(counted).layer(auth)),
    ])
}

async fn serve(router: Router) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            eprintln!("server on {addr} failed: {error}");
        }
    });
    Ok(addr)
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Sends `request` and reads one response; returns its status code.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.stream.write_all(request).await?;
        loop {
            if let Some((status, length)) = parse_response(&self.buffer)? {
                self.buffer.drain(..length);
                return Ok(status);
            }
            let mut chunk = [0u8; 4096];
            let read = self.stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

/// The status and total length of the first complete response in `buffer`, if there is one.
fn parse_response(buffer: &[u8]) -> std::io::Result<Option<(u16, usize)>> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buffer[..end]).map_err(|_| invalid("a non-UTF-8 head"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no status line"))?;
    let mut body = 0usize;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                body = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("a bad content-length"))?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(invalid("chunked responses are not expected"));
            }
        }
    }
    let total = end + 4 + body;
    Ok((buffer.len() >= total).then_some((status, total)))
}

fn create_request(user: &str) -> Vec<u8> {
    format!(
        "POST /api/clients HTTP/1.1\r\nhost: 127.0.0.1\r\nx-user: {user}\r\ncontent-length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// What one run against one server did.
struct Run {
    answered: u64,
    unexpected: u64,
    elapsed: Duration,
}

async fn drive(addr: SocketAddr, options: &Options) -> Result<Run, String> {
    let answered = Arc::new(AtomicU64::new(0));
    let unexpected = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Duration::from_secs_f64(options.seconds);
    let mut connections = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        connections.push(
            Connection::open(addr)
                .await
                .map_err(|e| format!("connect to {addr}: {e}"))?,
        );
    }
    let start = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(c, mut connection)| {
            let requests: Vec<Vec<u8>> = (c..options.users)
                .step_by(options.connections)
                .chain(std::iter::once(c % options.users))
                .map(|i| create_request(&format!("u{i}")))
                .collect();
            let (answered, unexpected, stop) = (
                Arc::clone(&answered),
                Arc::clone(&unexpected),
                Arc::clone(&stop),
            );
            let max = options.max_requests;
            tokio::spawn(async move {
                let mut next = 0;
                while !stop.load(Ordering::Relaxed) {
                    let status = connection.exchange(&requests[next]).await?;
                    next = (next + 1) % requests.len();
                    if status != 201 {
                        unexpected.fetch_add(1, Ordering::Relaxed);
                    }
                    if answered.fetch_add(1, Ordering::Relaxed) + 1 >= max
                        || start.elapsed() >= deadline
                    {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                Ok::<(), std::io::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(|e| format!("a load task failed: {e}"))?
            .map_err(|e| format!("a connection to {addr} failed: {e}"))?;
    }
    Ok(Run {
        answered: answered.load(Ordering::Relaxed),
        unexpected: unexpected.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    })
}

/// One request by the subscriber at the limit: `403` behind the layer (and the floor), `201`
/// without it.
async fn check(name: &str, addr: SocketAddr) -> Result<(), String> {
    let mut connection = Connection::open(addr)
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let status = connection
        .exchange(&create_request("full"))
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let expected = if name.starts_with("layer") || name.starts_with("redis") || name == "floor" {
        403
    } else {
        201
    };
    if status != expected {
        return Err(format!(
            "{name}: a subscriber at the limit got {status}, expected {expected}"
        ));
    }
    Ok(())
}

async fn run(options: Options) -> Result<(), String> {
    let mut targets = Vec::new();
    for (name, router) in servers(options.users)? {
        let wanted = options.servers.is_empty() || options.servers.iter().any(|s| s == name);
        if name != "bare" && !wanted {
            continue;
        }
        let addr = serve(router).await?;
        check(name, addr).await?;
        targets.push((name, addr));
    }
    // Kept running until the end of the run.
    let _redis = redis_servers(&options, &mut targets).await?;
    if options.serve {
        for (name, addr) in &targets {
            println!("serving {name} http://{addr}");
        }
        println!("ready");
        // Until the process is stopped.
        std::future::pending::<()>().await;
    }
    println!(
        "{} connections, {} s per run, {} rounds, {} subscribers, POST /api/clients (governed, allowed)",
        options.connections, options.seconds, options.rounds, options.users
    );
    // rates[server][round], in requests per second.
    let mut rates = vec![Vec::with_capacity(options.rounds); targets.len()];
    let mut totals = vec![(0u64, Duration::ZERO); targets.len()];
    for round in 0..options.rounds {
        // Each round starts with another server, so that no server always runs first.
        for k in 0..targets.len() {
            let index = (round + k) % targets.len();
            let (name, addr) = targets[index];
            let run = drive(addr, &options).await?;
            if run.unexpected > 0 {
                return Err(format!(
                    "{name}: {} of {} responses were not 201",
                    run.unexpected, run.answered
                ));
            }
            let rate = run.answered as f64 / run.elapsed.as_secs_f64();
            println!(
                "round {} {name:<12} {:>9} requests in {:>6.2} s: {rate:>9.0} req/s",
                round + 1,
                run.answered,
                run.elapsed.as_secs_f64(),
            );
            rates[index].push(rate);
            totals[index].0 += run.answered;
            totals[index].1 += run.elapsed;
        }
    }
    let bare = totals[0].0 as f64 / totals[0].1.as_secs_f64();
    println!("\nserver         req/s   ratio to bare   median of the rounds' ratios");
    for (index, (name, _)) in targets.iter().enumerate() {
        let rate = totals[index].0 as f64 / totals[index].1.as_secs_f64();
        let mut ratios: Vec<f64> = rates[index]
            .iter()
            .zip(&rates[0])
            .map(|(rate, bare)| rate / bare)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        println!(
            "{name:<12} {rate:>9.0}   {:>13.3}   {median:.3}",
            rate / bare
        );
    }
    Ok(())
}

/// The counted-over-Redis servers that `--servers` names, added to `targets`; the
/// `redis-server` they count in.
#[cfg(feature = "redis")]
async fn redis_servers(
    options: &Options,
    targets: &mut Vec<(&'static str, SocketAddr)>,
) -> Result<Option<counted_redis::RedisServer>, String> {
    let plans = subscribers(options.users, "metered")?;
    let app = |layer: PlanLimitLayer| app().layer(layer).layer(middleware::from_fn(demo_auth));
    let (routers, server) = counted_redis::servers(&options.servers, app, &plans).await?;
    for (name, router) in routers {
        let addr = serve(router).await?;
        check(name, addr).await?;
        targets.push((name, addr));
    }
    Ok(server)
}

/// Without the `redis` feature: an error when `--servers` names a counted-over-Redis server.
#[cfg(not(feature = "redis"))]
async fn redis_servers(
    options: &Options,
    _targets: &mut Vec<(&'static str, SocketAddr)>,
) -> Result<(), String> {
    match options
        .servers
        .iter()
        .find(|name| name.starts_with("redis"))
    {
        Some(name) => Err(format!("{name} needs `--features redis`")),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: no runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

//! A plan-enforcing REST server in one command:
//!
//! ```sh
//! cargo run --example quickstart
//! cargo run --example quickstart -- --addr 127.0.0.1:8080 --fixture my-fixture.json
//! cargo run --example quickstart --features metrics   # and `curl localhost:3000/metrics`
//! ```
//!
//! It loads a fixture (`examples/quickstart.json` by default) into a `MemoryStore`, serves every
//! path the fixture governs with a generic in-memory REST handler behind `PlanLimitLayer`, which
//! counts usage in that store (a successful create counts one, a successful delete gives one
//! back), and prints a tour of curl commands. The user is taken from the `x-user` header by a
//! demo-only authentication layer.

mod app;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match app::Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let router = match app::Fixture::load(&args.fixture).and_then(|f| app::router(&f)) {
        Ok(router) => router,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    // With the `metrics` feature, the layer's metrics are served at `GET /metrics`.
    #[cfg(feature = "metrics")]
    let router = match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(handle) => app::with_metrics(router, handle),
        Err(error) => {
            eprintln!("error: cannot install the metrics recorder: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(args.addr);
    println!("{}", app::banner(addr));
    if let Err(error) = axum::serve(listener, router).await {
        eprintln!("error: server failed: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

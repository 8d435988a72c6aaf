//! A plan-enforcing REST server in one command:
//!
//! ```sh
//! cargo run --example quickstart
//! cargo run --example quickstart -- --addr 127.0.0.1:8080 --fixture my-fixture.json
//! cargo run --example quickstart --features metrics   # and `curl localhost:3000/metrics`
//! STRIPE_WEBHOOK_SECRET=whsec_... cargo run --example quickstart --features stripe
//! cargo run --example quickstart --features usage-page  # and open localhost:3000/account?user=alice
//! ```
//!
//! It loads a fixture (`examples/quickstart.json` by default) into a `MemoryStore`, serves every
//! path the fixture governs with a generic in-memory REST handler behind `PlanLimitLayer`, which
//! counts usage in that store (a successful create counts one, a successful delete gives one
//! back), and prints a tour of curl commands. The user is taken from the `x-user` header by a
//! demo-only authentication layer.
//!
//! The default fixture also sells consumption: every plan has a monthly pool of `ai` credits
//! (free 8, pro 1000), an image (`POST /api/images`) costs 5 of them, and a chat
//! (`POST /api/chat`) costs what its handler reports, the `units` of its JSON body, while its
//! answer streams. A pool that cannot cover a request answers `403 {"reason":"credits",...}`;
//! a record's `"grants"` are top-ups spent once the month's allowance is used up; `GET
//! /entitlements` lists the pool and the grants. The tour shows each of these; `app.rs` says
//! how the handler reports.
//!
//! It also shows billing cycles, soft limits, rates and usage alerts, on heidi's business plan;
//! her record's `cycle_anchor` is the 15th at 09:30 UTC: her 2 reports a month reset on that
//! day, not on the 1st (`resets` and `Retry-After` say so); a third passes as overage with a
//! `Plan-Overage` header, a fourth is refused; and a second export within a minute answers `429
//! {"reason":"rate_limited",...}` with `Retry-After`. Usage alerts at 80% and 100% of a limit
//! print one line each on stdout, and `GET /alerts` serves the last 100 as JSON, newest last
//! (an alert is sent just after the response that raised it, so it may take a moment to show).
//!
//! Built with `--features stripe` and run with `STRIPE_WEBHOOK_SECRET` set, it also receives
//! Stripe's subscription events at `POST /webhooks/stripe` (for example from
//! `stripe listen --forward-to localhost:3000/webhooks/stripe`, which prints the secret), and
//! maps prices to plans and add-ons with the fixture's `"stripe": {"prices": {...}}`. Set
//! `metadata.user_id` on the subscription to the quickstart's user (`x-user`).

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
    let fixture = match app::Fixture::load(&args.fixture) {
        Ok(fixture) => fixture,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    // With the `stripe` feature and `STRIPE_WEBHOOK_SECRET` set, Stripe's events are received
    // at `POST /webhooks/stripe`.
    #[cfg(feature = "stripe")]
    let stripe_secret = std::env::var("STRIPE_WEBHOOK_SECRET")
        .ok()
        .filter(|secret| !secret.is_empty());
    #[cfg(not(feature = "stripe"))]
    let stripe_secret: Option<String> = None;
    let router = match &stripe_secret {
        #[cfg(feature = "stripe")]
        Some(secret) => app::router_with_stripe(&fixture, secret),
        _ => app::router(&fixture),
    };
    let router = match router {
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
    #[cfg(feature = "usage-page")]
    println!("The usage page: http://{addr}/account?user=alice (the demo reads ?user=)\n");
    if stripe_secret.is_some() {
        println!(
            "Stripe webhooks: POST http://{addr}/webhooks/stripe (signed with \
             STRIPE_WEBHOOK_SECRET; {} mapped prices or lookup keys)\n",
            fixture.stripe_prices.len()
        );
    }
    if let Err(error) = axum::serve(listener, router).await {
        eprintln!("error: server failed: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

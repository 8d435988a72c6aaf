//! The Stripe receiver's work per event, on the `customer.subscription.updated` fixture of the
//! tests (about 6 KB, two items, API 2025-03-31):
//!
//! - `verify`: parse the `Stripe-Signature` header and check its `v1` (HMAC-SHA256 of the body)
//!   and `t`;
//! - `parse`: read the event and its subscription from the body;
//! - `rights`: map the subscription to a plan and add-ons;
//! - `receive/applied`: the whole receiver on a new event (a fresh id each time): verification,
//!   parsing, mapping, the order check and the replacement in a `MemoryStore`;
//! - `receive/duplicate`: the whole receiver on a redelivery, acknowledged without applying.

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::Request;
use http_body_util::Full;
use serde_json::Value;
use tower::ServiceExt;
use tower_plans::stripe::{StripeConfig, StripeEvent, StripeReceiver};
use tower_plans::webhook::{MemoryStoreHook, WebhookOutcome};
use tower_plans::MemoryStore;

const FIXTURE: &str = include_str!("../tests/fixtures/stripe/subscription_updated.json");
const NOW: u64 = 1_714_521_705;

fn config() -> StripeConfig {
    StripeConfig::builder()
        .secret("whsec_bench")
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
        .plan("pro_monthly", "pro")
        .addon("prod_Pq1cSeAtS", "seats")
        .build()
        .expect("the bench configuration builds")
}

fn store() -> MemoryStore {
    MemoryStore::from_json(
        r#"{"plans": [{"name": "pro", "clients": 30}],
            "addons": [{"name": "seats", "limits": {"members": 1}}]}"#,
        r#"{"dana": {"usage": {"clients": 3}}}"#,
    )
    .expect("the bench store loads")
}

/// The fixture with the event id `id`, created `created` seconds after the fixture.
fn body(id: u64, created: u64) -> String {
    let mut event: Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    event["id"] = Value::from(format!("evt_bench_{id}"));
    event["created"] = Value::from(1_714_521_605 + created);
    event.to_string()
}

fn request(config: &StripeConfig, body: String) -> Request<Full<Bytes>> {
    Request::post("/webhooks/stripe")
        .header("stripe-signature", config.sign(NOW, body.as_bytes()))
        .body(Full::from(body))
        .expect("a request")
}

fn bench_stripe(c: &mut Criterion) {
    let config = config();
    let text = body(0, 0);
    let header = config.sign(NOW, text.as_bytes());
    let mut group = c.benchmark_group("stripe");
    group.bench_function("verify", |b| {
        b.iter(|| config.verify(black_box(&header), black_box(text.as_bytes())))
    });
    group.bench_function("parse", |b| {
        b.iter(|| StripeEvent::from_slice(black_box(text.as_bytes())))
    });
    let event = StripeEvent::from_slice(text.as_bytes()).expect("the fixture parses");
    group.bench_function("rights", |b| {
        b.iter(|| config.replacement(black_box(&event), "dana"))
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let receiver = StripeReceiver::new(config.clone(), MemoryStoreHook::new(store()));
    let mut next = 0_u64;
    group.bench_function("receive/applied", |b| {
        b.iter_batched(
            || {
                next += 1;
                request(&config, body(next, next))
            },
            |request| {
                let response = runtime
                    .block_on(receiver.clone().oneshot(request))
                    .expect("infallible");
                debug_assert_eq!(
                    response.extensions().get::<WebhookOutcome>(),
                    Some(&WebhookOutcome::Applied)
                );
                response
            },
            BatchSize::SmallInput,
        )
    });
    let redelivered = body(0, 0);
    group.bench_function("receive/duplicate", |b| {
        b.iter_batched(
            || request(&config, redelivered.clone()),
            |request| {
                runtime
                    .block_on(receiver.clone().oneshot(request))
                    .expect("infallible")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_stripe);
criterion_main!(benches);

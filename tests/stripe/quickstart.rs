//! The quickstart with its Stripe route, served on loopback as its binary serves it (the same
//! `router_with_stripe`), driven over real connections: a signed
//! `customer.subscription.created` moves carol from a 403 to the mapped plan, `GET
//! /entitlements` shows it, and a `customer.subscription.deleted` takes it away.

#[path = "../../examples/quickstart/app.rs"]
mod app;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::*;

const FIXTURE: &str = include_str!("../../examples/quickstart.json");

async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (StatusCode, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::from(body)).expect("a request");
    let response = client.request(request).await.expect("an answer");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A subscription event for carol, in Stripe's shape, created now: `pro_monthly` (mapped to
/// pro by the fixture) and two "more clients" packs, for a month from now.
fn carol_event(id: &str, kind: &str, status: &str, now: u64) -> String {
    let event = variant(&fixture(UPDATED), id, kind, now, status);
    let event = set(event, "/data/object/metadata/user_id", json!("carol"));
    let event = set(
        event,
        "/data/object/items/data/1/price/lookup_key",
        json!("more_clients_pack"),
    );
    let event = set(event, "/data/object/items/data/1/quantity", json!(2));
    let mut event = set(event, "/data/object/billing_cycle_anchor", json!(now));
    for item in event["data"]["object"]["items"]["data"]
        .as_array_mut()
        .unwrap()
    {
        item["current_period_start"] = json!(now);
        item["current_period_end"] = json!(now + 30 * 86_400);
    }
    event.to_string()
}

#[tokio::test]
async fn a_signed_subscription_moves_carol_onto_pro_and_its_deletion_takes_it_away() {
    let fixture = app::Fixture::parse(FIXTURE).expect("the quickstart fixture loads");
    assert_eq!(fixture.stripe_prices.len(), 3);
    let router = app::router_with_stripe(&fixture, SECRET).expect("the router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let as_carol = [("x-user", "carol"), ("content-type", "application/json")];

    // carol's regular plan expired: 403.
    let (status, denial) = send(addr, Method::POST, "/api/clients", &as_carol, "{}".into()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(denial["expired"], json!(true));

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let created = carol_event("evt_carol_1", "created", "active", now);
    let signature = signed(SECRET, now, &created);
    let (status, body) = send(
        addr,
        Method::POST,
        "/webhooks/stripe",
        &[("stripe-signature", &signature)],
        created.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, applied());

    // Allowed now, on pro (30 clients, +10 per pack: 50).
    let (status, body) = send(addr, Method::POST, "/api/clients", &as_carol, "{}".into()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["decision"],
        json!({"plan": "pro", "limit": 50, "usage": 0})
    );
    let (status, entitlements) =
        send(addr, Method::GET, "/entitlements", &as_carol, String::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(entitlements["plan"], json!("pro"));
    assert_eq!(entitlements["state"], json!("active"));
    assert_eq!(entitlements["expires"], json!((now + 31 * 86_400) * 1000));
    let clients = entitlements["limits"]
        .as_array()
        .expect("limits")
        .iter()
        .find(|limit| limit["resource"] == "clients" && limit["action"] == "create")
        .expect("clients/create");
    assert_eq!(clients["max"], json!(50));
    assert_eq!(clients["used"], json!(1));

    // A redelivery is a duplicate; a forged one is refused.
    let (status, body) = send(
        addr,
        Method::POST,
        "/webhooks/stripe",
        &[("stripe-signature", &signature)],
        created,
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "duplicate"}))
    );
    let forged = carol_event("evt_forged", "updated", "active", now);
    let (status, body) = send(
        addr,
        Method::POST,
        "/webhooks/stripe",
        &[("stripe-signature", &signed("whsec_guess", now, &forged))],
        forged,
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, refused("bad_signature"))
    );

    // The subscription is deleted: no plan.
    let deleted = carol_event("evt_carol_2", "deleted", "canceled", now + 1);
    let (status, body) = send(
        addr,
        Method::POST,
        "/webhooks/stripe",
        &[("stripe-signature", &signed(SECRET, now, &deleted))],
        deleted,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, applied()));
    let (status, denial) = send(addr, Method::POST, "/api/clients", &as_carol, "{}".into()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(denial, no_plan("clients"));
    let (_, entitlements) =
        send(addr, Method::GET, "/entitlements", &as_carol, String::new()).await;
    assert_eq!(entitlements["plan"], Value::Null);
}

#[test]
fn the_fixture_maps_prices_to_plans_and_addons_and_bad_mappings_are_named() {
    let fixture = app::Fixture::parse(FIXTURE).expect("the quickstart fixture loads");
    let mut prices = fixture.stripe_prices.clone();
    prices.sort();
    assert_eq!(
        prices,
        [
            ("more_clients_pack".to_owned(), "more-clients".to_owned()),
            ("pro_monthly".to_owned(), "pro".to_owned()),
            ("regular_monthly".to_owned(), "regular".to_owned()),
        ]
    );
    let mut value = fixture_value();
    value["stripe"]["prices"]["gold_monthly"] = json!("gold");
    let error = parse_error(&value);
    assert_eq!(
        error,
        "stripe.prices.gold_monthly: the catalog has no plan or add-on `gold`"
    );
    let mut value = fixture_value();
    value["stripe"]["prices"]["pro_monthly"] = json!(3);
    assert!(parse_error(&value).starts_with("stripe.prices.pro_monthly:"));
    let mut value = fixture_value();
    value["stripe"]["price"] = json!({});
    assert!(parse_error(&value).starts_with("stripe.price:"));
    let mut value = fixture_value();
    value["stripe"] = json!([]);
    assert!(parse_error(&value).starts_with("stripe:"));
    // Without the key, nothing is mapped.
    let mut value = fixture_value();
    value.as_object_mut().unwrap().remove("stripe");
    let fixture = app::Fixture::parse(&value.to_string()).expect("loads");
    assert!(fixture.stripe_prices.is_empty());
}

fn fixture_value() -> Value {
    serde_json::from_str(FIXTURE).expect("JSON")
}

fn parse_error(value: &Value) -> String {
    match app::Fixture::parse(&value.to_string()) {
        Ok(_) => panic!("{value} was accepted"),
        Err(error) => error.to_string(),
    }
}

//! The Stripe receiver's parsers: the `Stripe-Signature` header and the event, and the rights
//! an event maps to.
//!
//! The input is `[split, flags]`, then the bytes: the first `split` bytes (modulo the length)
//! are a signature header, the rest an event body. The header parser never panics and agrees
//! with a plain reading of the elements; a header it reads renders back to one it reads the
//! same. The event parser never panics and agrees with a plain reading of the JSON; the rights
//! of a parsed event follow the documented table (mapping, status, kind, quantities, source).
//! Then the body, signed with the receiver's secret, goes through the receiver, whose outcome
//! and store must agree with the above.

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_plans::stripe::{
    SignatureHeader, StripeConfig, StripeEvent, StripeEventKind, StripeReceiver,
    SubscriptionStatus,
};
use tower_plans::webhook::{MemoryStoreHook, VerifyError, WebhookOutcome};
use tower_plans::MemoryStore;
use tower_service::Service;

const NOW: u64 = 1_714_521_705;
const SECRET: &str = "whsec_fuzz";

fn config() -> StripeConfig {
    StripeConfig::builder()
        .secret(SECRET)
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
        .plan("pro_monthly", "pro")
        .plan("price_regular", "regular")
        .addon("prod_seats", "seats")
        .dedup_capacity(16)
        .order_capacity(16)
        .body_limit(1 << 16)
        .build()
        .expect("the fuzz configuration builds")
}

fn run(data: &[u8]) {
    let Some((&[split, flags], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let split = if rest.is_empty() {
        0
    } else {
        usize::from(split) % (rest.len() + 1)
    };
    let (header, body) = rest.split_at(split);
    let header = String::from_utf8_lossy(header);
    check_header(&header);
    let config = config();
    let event = StripeEvent::from_slice(body);
    let value = serde_json::from_slice::<Value>(body).ok();
    if let Ok(event) = &event {
        check_event(event, value.as_ref().expect("an event is JSON"));
        check_rights(&config, event);
    }
    receive(&config, body, event.ok(), flags);
}

/// A plain reading of a header: the `t` and `v1` elements split at commas and at the first `=`.
fn check_header(header: &str) {
    let parsed = SignatureHeader::parse(header);
    let elements: Vec<(&str, &str)> = header
        .split(',')
        .filter_map(|element| element.trim().split_once('='))
        .collect();
    let ts: Vec<&str> = elements
        .iter()
        .filter(|(key, _)| *key == "t")
        .map(|(_, value)| *value)
        .collect();
    let v1s: Vec<&str> = elements
        .iter()
        .filter(|(key, _)| *key == "v1")
        .map(|(_, value)| *value)
        .collect();
    let seconds = match ts.as_slice() {
        [t] if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => t.parse::<u64>().ok(),
        _ => None,
    };
    match (&parsed, seconds) {
        (Ok(parsed), Some(seconds)) if !v1s.is_empty() => {
            assert_eq!(parsed.timestamp, seconds);
            let decoded: Vec<Vec<u8>> = v1s.iter().filter_map(|v| hex::decode(v).ok()).collect();
            assert_eq!(parsed.signatures, decoded);
            // Rendered back, it reads the same.
            let mut rendered = format!("t={}", parsed.timestamp);
            for tag in &parsed.signatures {
                rendered.push_str(&format!(",v1={}", hex::encode(tag)));
            }
            if parsed.signatures.is_empty() {
                rendered.push_str(",v1=zz");
            }
            assert_eq!(SignatureHeader::parse(&rendered).as_ref(), Ok(parsed));
        }
        (Err(error), _) => {
            assert_eq!(*error, VerifyError::MalformedHeader);
            assert!(
                seconds.is_none() || v1s.is_empty(),
                "{header:?} refused, but reads as a header"
            );
        }
        (Ok(parsed), _) => panic!("{header:?} read as {parsed:?}"),
    }
}

/// The event agrees with a plain reading of its JSON.
fn check_event(event: &StripeEvent, value: &Value) {
    assert_eq!(value["id"].as_str(), Some(event.id.as_str()));
    assert!(!event.id.is_empty());
    assert_eq!(value["type"].as_str(), Some(event.event_type.as_str()));
    let created = &value["created"];
    assert!(created.as_u64() == Some(event.created) || created.as_f64().is_some());
    let kind = event.kind();
    assert_eq!(kind, StripeEventKind::of(&event.event_type));
    let Some(subscription) = &event.subscription else {
        assert_eq!(kind, StripeEventKind::Other);
        return;
    };
    assert_ne!(kind, StripeEventKind::Other);
    let object = &value["data"]["object"];
    assert_eq!(object["id"].as_str(), Some(subscription.id.as_str()));
    assert_eq!(object["status"].as_str(), Some(subscription.status.as_str()));
    assert_eq!(
        subscription.user_id.as_deref(),
        object["metadata"]["user_id"]
            .as_str()
            .filter(|user| !user.is_empty())
    );
    let items = object["items"]["data"].as_array().expect("items are an array");
    assert_eq!(items.len(), subscription.items.len());
    for (item, read) in items.iter().zip(&subscription.items) {
        assert_eq!(item["price"]["id"].as_str(), read.price.as_deref());
        assert_eq!(
            item["price"]["lookup_key"].as_str(),
            read.lookup_key.as_deref()
        );
        if let Some(quantity) = item["quantity"].as_u64() {
            assert_eq!(read.quantity, Some(quantity));
        }
        if item["quantity"].is_null() {
            assert_eq!(read.quantity, None);
        }
    }
}

/// The rights follow the documented table.
fn check_rights(config: &StripeConfig, event: &StripeEvent) {
    let rights = config.replacement(event, "u");
    let Some(subscription) = &event.subscription else {
        assert!(rights.is_none());
        return;
    };
    let key = |item: &tower_plans::stripe::SubscriptionItem| {
        [&item.price, &item.lookup_key, &item.product]
            .into_iter()
            .flatten()
            .find_map(|key| match key.as_str() {
                "pro_monthly" => Some(("plan", "pro")),
                "price_regular" => Some(("plan", "regular")),
                "prod_seats" => Some(("addon", "seats")),
                _ => None,
            })
    };
    let mapped: Vec<_> = subscription
        .items
        .iter()
        .filter_map(|item| key(item).map(|k| (item, k)))
        .collect();
    let Some(rights) = rights else {
        assert!(mapped.is_empty(), "mapped items, but no rights");
        return;
    };
    assert!(!mapped.is_empty());
    assert_eq!(rights.user, "u");
    assert_eq!(&*rights.source, "stripe");
    assert_eq!(rights.subscription.as_deref(), Some(subscription.id.as_str()));
    let granting = event.kind() != StripeEventKind::Deleted
        && matches!(
            subscription.status,
            SubscriptionStatus::Trialing | SubscriptionStatus::Active | SubscriptionStatus::PastDue
        );
    if !granting {
        assert!(!rights.grants_anything(), "{rights:?}");
        assert_eq!(rights.cycle_anchor, None);
        return;
    }
    let plan = mapped
        .iter()
        .find(|(_, (kind, _))| *kind == "plan")
        .map(|(_, (_, name))| *name);
    assert_eq!(rights.plan.as_ref().map(|p| &*p.plan), plan);
    if let Some(assignment) = &rights.plan {
        let trial = subscription.status == SubscriptionStatus::Trialing;
        assert_eq!(assignment.trial, trial);
        if trial {
            assert!(assignment.joined.is_some() || assignment.expires.is_some());
        }
        if subscription.status == SubscriptionStatus::PastDue {
            assert!(assignment.expires.is_some(), "past due without an end");
        }
    }
    let quantities: Vec<u64> = mapped
        .iter()
        .filter(|(_, (kind, _))| *kind == "addon")
        .map(|(item, _)| item.quantity.unwrap_or(1))
        .collect();
    let granted: Vec<u64> = rights.addons.iter().map(|grant| grant.quantity).collect();
    assert_eq!(granted, quantities);
    assert!(rights
        .addons
        .iter()
        .all(|grant| &*grant.name == "seats" && grant.source.as_deref() == Some("stripe")));
}

/// The body, signed, through the receiver.
fn receive(config: &StripeConfig, body: &[u8], event: Option<StripeEvent>, flags: u8) {
    let store = MemoryStore::from_json(
        r#"{"plans": [{"name": "pro", "clients": 30}, {"name": "regular", "clients": 10}],
            "addons": [{"name": "seats", "limits": {"members": 1}}]}"#,
        r#"{"u": {"usage": {"clients": 2}}}"#,
    )
    .expect("the fuzz store loads");
    let mut receiver = StripeReceiver::new(config.clone(), MemoryStoreHook::new(store.clone()));
    let users: Vec<String> = event
        .as_ref()
        .and_then(|e| e.subscription.as_ref())
        .and_then(|s| s.user_id.clone())
        .into_iter()
        .collect();
    let before: Vec<_> = users.iter().map(|user| store.subscriber(user)).collect();
    // Signed now, or (flags) with another secret, or 400 s ago.
    let t = if flags & 0x02 != 0 { NOW - 400 } else { NOW };
    let header = if flags & 0x01 != 0 {
        StripeConfig::builder()
            .secret("whsec_other")
            .plan("x", "pro")
            .build()
            .expect("builds")
            .sign(t, body)
    } else {
        config.sign(t, body)
    };
    let request = Request::post("/webhooks/stripe")
        .header("stripe-signature", header)
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("a request");
    let response = futures::executor::block_on(receiver.call(request)).expect("infallible");
    let outcome = *response
        .extensions()
        .get::<WebhookOutcome>()
        .expect("the outcome is in the extensions");
    assert_eq!(response.status(), outcome.status());
    let bytes = futures::executor::block_on(response.into_body().collect())
        .expect("a full body")
        .to_bytes();
    assert_eq!(&bytes[..], outcome.body().as_bytes());

    let expected = if flags & 0x01 != 0 {
        WebhookOutcome::Unauthorized(VerifyError::BadSignature)
    } else if flags & 0x02 != 0 {
        WebhookOutcome::Unauthorized(VerifyError::StaleTimestamp)
    } else {
        match &event {
            None => WebhookOutcome::Malformed,
            Some(event) => match &event.subscription {
                None => WebhookOutcome::Unhandled,
                Some(subscription) => match &subscription.user_id {
                    None => WebhookOutcome::UnknownUser,
                    Some(user) => match config.replacement(event, user.as_str()) {
                        None => WebhookOutcome::Unmapped,
                        Some(_) => WebhookOutcome::Applied,
                    },
                },
            },
        }
    };
    assert_eq!(outcome, expected);
    if outcome == WebhookOutcome::Applied {
        let event = event.expect("an applied event parsed");
        let user = &users[0];
        let rights = config.replacement(&event, user.as_str()).expect("rights");
        match store.subscriber(user) {
            Some(record) => {
                assert_eq!(record.assignment, rights.plan);
                assert_eq!(record.cycle_anchor, rights.cycle_anchor);
                let stripe: Vec<_> = record
                    .addons
                    .iter()
                    .filter(|g| g.source.as_deref() == Some("stripe"))
                    .cloned()
                    .collect();
                assert_eq!(stripe, rights.addons);
            }
            None => assert!(!rights.grants_anything(), "granted rights, but no record"),
        }
    } else {
        let after: Vec<_> = users.iter().map(|user| store.subscriber(user)).collect();
        assert_eq!(before, after, "{outcome:?} changed the store");
    }
}

fuzz_target!(|data: &[u8]| run(data));

//! The webhook verifier, the event parser and the receiver that joins them.
//!
//! Signed inputs: a fuzz-chosen body signed with a known secret (the current or the previous
//! one) and a timestamp near the clock, so that parsing is reached past verification; the
//! verifier accepts it exactly when the timestamp is within the tolerance, also with the
//! signature in upper case or padded with blanks. Unsigned inputs: a fuzz-chosen signature and
//! timestamp, which must be refused (a signature by an unknown secret too). The parser never
//! panics and agrees with a plain reading of the JSON; an event it reads is classified as
//! documented and survives being written out and read back. The receiver, driven with the same
//! request, answers the outcome these imply, with its status and body, and an applied event
//! leaves the store as the hook documents.

#![no_main]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_plans::subscriber::Assignment;
use tower_plans::webhook::{
    Effect, EntitlementEvent, EventKind, MemoryStoreHook, VerifyError, WebhookConfig,
    WebhookOutcome, WebhookReceiver, DEFAULT_ACTIVE_STATUSES,
};
use tower_plans::MemoryStore;
use tower_service::Service;

const NOW: u64 = 1_698_322_022;
const CURRENT: &str = "whsec_current";
const PREVIOUS: &str = "whsec_previous";
const TOLERANCE: u64 = 300;
const BODY_LIMIT: usize = 2048;
const MARGIN: Duration = Duration::from_secs(3600);

fn config_with(secrets: &[&str]) -> WebhookConfig {
    let mut builder = WebhookConfig::builder()
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
        .tolerance(Duration::from_secs(TOLERANCE))
        .body_limit(BODY_LIMIT)
        .dedup_capacity(16);
    for secret in secrets {
        builder = builder.secret(secret);
    }
    builder.build().expect("the fuzz configuration builds")
}

/// One request as the fuzzer chose it.
struct Input {
    method: Method,
    signature: Option<Vec<u8>>,
    timestamp: Option<Vec<u8>>,
    body: Vec<u8>,
    /// What verification must answer, when the input says.
    verified: Option<Result<(), VerifyError>>,
}

/// Reads a request from the input: `[flags, offset (2 bytes), tweak]`, then for a signed
/// request the body; for an unsigned one a length and the signature, a length and the
/// timestamp, then the body.
fn input(data: &[u8]) -> Option<Input> {
    let (&[flags, low, high, tweak], rest) = data.split_first_chunk::<4>()?;
    // -600 ..= 600 seconds from the clock.
    let offset = i64::from(u16::from_le_bytes([low, high]) % 1201) - 600;
    let method = if flags & 0xC0 == 0xC0 {
        Method::PUT
    } else {
        Method::POST
    };
    if flags & 0x01 == 0 {
        // Signed: the rest is the body.
        let body = rest.to_vec();
        let sent = NOW.saturating_add_signed(offset);
        let mut timestamp = sent.to_string();
        if tweak & 0x10 != 0 {
            timestamp.insert_str(0, "00");
        }
        let secret = if flags & 0x02 == 0 { CURRENT } else { PREVIOUS };
        let signature = config_with(&[secret]).sign(&timestamp, &body);
        assert_eq!(signature.len(), 64, "a signature is 32 bytes in hex");
        let signature = match tweak & 0x03 {
            0 => signature,
            1 => signature.to_uppercase(),
            2 => format!("  {signature}\t"),
            _ => format!("\t{}", signature.to_uppercase()),
        };
        let timestamp = if tweak & 0x04 != 0 {
            format!(" {timestamp} ")
        } else {
            timestamp
        };
        let verified = if offset.unsigned_abs() <= TOLERANCE {
            Ok(())
        } else {
            Err(VerifyError::StaleTimestamp)
        };
        return Some(Input {
            method,
            signature: Some(signature.into_bytes()),
            timestamp: Some(timestamp.into_bytes()),
            body,
            verified: Some(verified),
        });
    }
    // Unsigned: a signature and a timestamp of the fuzzer's choosing, or one signed with an
    // unknown secret.
    let (&signature_len, rest) = rest.split_first()?;
    let (signature, rest) = rest.split_at_checked(usize::from(signature_len % 80))?;
    let (&timestamp_len, rest) = rest.split_first()?;
    let (timestamp, body) = rest.split_at_checked(usize::from(timestamp_len % 32))?;
    let mut signature = signature.to_vec();
    if flags & 0x02 != 0 {
        let timestamp = String::from_utf8_lossy(timestamp);
        signature = config_with(&["whsec_unknown"])
            .sign(timestamp.trim(), body)
            .into_bytes();
    }
    Some(Input {
        method,
        signature: (flags & 0x04 == 0).then_some(signature),
        timestamp: (flags & 0x08 == 0).then(|| timestamp.to_vec()),
        body: body.to_vec(),
        verified: None,
    })
}

fn run(data: &[u8]) {
    let Some(input) = input(data) else {
        return;
    };
    let config = config_with(&[CURRENT, PREVIOUS]);

    // Verification, on the header values as text.
    let signature = input.signature.as_deref().map(String::from_utf8_lossy);
    let timestamp = input.timestamp.as_deref().map(String::from_utf8_lossy);
    if let (Some(signature), Some(timestamp)) = (&signature, &timestamp) {
        let verified = config.verify(timestamp, &input.body, signature);
        match input.verified {
            Some(expected) => assert_eq!(verified, expected, "a signed request at {timestamp}"),
            None => {
                let genuine = config.sign(timestamp.trim(), &input.body);
                if !signature.trim().eq_ignore_ascii_case(&genuine)
                    && !signature.trim().eq_ignore_ascii_case(
                        &config_with(&[PREVIOUS]).sign(timestamp.trim(), &input.body),
                    )
                {
                    assert_eq!(
                        verified,
                        Err(VerifyError::BadSignature),
                        "an unsigned request was not refused"
                    );
                }
            }
        }
    }

    // Parsing, whatever the verification said.
    let parsed = EntitlementEvent::from_slice(&input.body);
    let value = serde_json::from_slice::<Value>(&input.body).ok();
    match &parsed {
        Ok(event) => check_event(event, value.as_ref()),
        Err(_) => {
            if let Some(value) = &value {
                // Written out again (which drops repeated keys), a document that reads as an
                // event must parse.
                let written = serde_json::to_vec(value).expect("a value writes out");
                if reads_as_event(value) {
                    let event = EntitlementEvent::from_slice(&written);
                    assert!(event.is_ok(), "{value} is an event, but {event:?}");
                }
            }
        }
    }

    receive(&input, &config, parsed.ok());
}

/// Whether a plain reading of `value` makes it an event: an object with a string `event_name`,
/// and every other listed field absent, `null` or of its type.
fn reads_as_event(value: &Value) -> bool {
    let Some(map) = value.as_object() else {
        return false;
    };
    let text = |key: &str| map.get(key).is_none_or(|v| v.is_null() || v.is_string());
    let millis = |key: &str| map.get(key).is_none_or(|v| v.is_null() || v.is_u64());
    map.get("event_name").is_some_and(Value::is_string)
        && [
            "event_id",
            "user_id",
            "anonymous_user_id",
            "plan",
            "addon",
            "store",
            "subscription_status",
        ]
        .into_iter()
        .all(text)
        && [
            "purchased_at_ms",
            "effective_next_renewal_at_ms",
            "quantity",
        ]
        .into_iter()
        .all(millis)
}

/// The fields an event reads.
const KNOWN: [&str; 11] = [
    "event_id",
    "event_name",
    "user_id",
    "anonymous_user_id",
    "plan",
    "addon",
    "quantity",
    "store",
    "subscription_status",
    "purchased_at_ms",
    "effective_next_renewal_at_ms",
];

fn check_event(event: &EntitlementEvent, value: Option<&Value>) {
    let kind = match event.event_name.as_str() {
        "ACTIVATE" => EventKind::Activate,
        "DEACTIVATE" => EventKind::Deactivate,
        "ADDON_ACTIVATE" => EventKind::AddonActivate,
        "ADDON_DEACTIVATE" => EventKind::AddonDeactivate,
        _ => EventKind::Other,
    };
    assert_eq!(event.kind(), kind);
    let inactive = event
        .subscription_status
        .as_deref()
        .is_some_and(|status| !DEFAULT_ACTIVE_STATUSES.contains(&status));
    let effect = match kind {
        EventKind::Activate if inactive => Effect::Revoke,
        EventKind::Activate => Effect::Grant,
        EventKind::Deactivate => Effect::Revoke,
        EventKind::AddonActivate if inactive => Effect::RevokeAddon,
        EventKind::AddonActivate => Effect::GrantAddon,
        EventKind::AddonDeactivate => Effect::RevokeAddon,
        _ => Effect::None,
    };
    assert_eq!(event.effect(), effect, "{event:?}");
    assert_eq!(
        event.user(),
        event.user_id.as_deref().filter(|id| !id.is_empty())
    );
    for known in KNOWN {
        assert!(!event.extra.contains_key(known), "{known} kept in extra");
    }
    if let Some(value) = value {
        assert!(reads_as_event(value), "{value} read as {event:?}");
        assert_eq!(
            value["event_name"].as_str(),
            Some(event.event_name.as_str())
        );
        assert_eq!(value["user_id"].as_str(), event.user_id.as_deref());
        assert_eq!(value["plan"].as_str(), event.plan.as_deref());
        assert_eq!(value["purchased_at_ms"].as_u64(), event.purchased_at_ms);
        assert_eq!(value["addon"].as_str(), event.addon.as_deref());
        assert_eq!(value["quantity"].as_u64(), event.quantity);
        let map = value.as_object().expect("an event is an object");
        for (key, field) in map {
            if !KNOWN.contains(&key.as_str()) {
                assert_eq!(event.extra.get(key), Some(field), "{key} not kept in extra");
            }
        }
        assert!(event.extra.keys().all(|key| map.contains_key(key)));
    }
    let written = serde_json::to_vec(event).expect("an event writes out");
    match EntitlementEvent::from_slice(&written) {
        Ok(again) => {
            // serde_json reads floats to within one unit in the last place (without its
            // `float_roundtrip` feature): the other fields must come back exactly.
            assert!(
                same(
                    &serde_json::to_value(&again).expect("an event writes out"),
                    &serde_json::to_value(event).expect("an event writes out")
                ),
                "the event changed on the way out and back: {again:?}"
            );
            assert_eq!(again.effect(), event.effect());
        }
        Err(error) => panic!("the event written out does not parse: {error}"),
    }
}

/// Whether two JSON values are equal, floats to within a relative 1e-15.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15,
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn store() -> MemoryStore {
    MemoryStore::from_json(
        r#"{"plans": [{"name": "monthly", "clients": 3}, {"name": "plus", "clients": 30}],
            "addons": [{"name": "pack", "clients": 10}]}"#,
        r#"{"toto": {"plan": "monthly", "usage": {"clients": 2}}, "u2": {"plan": "plus"}}"#,
    )
    .expect("the fuzz store loads")
}

/// The plan a billing plan id names in the fuzz hook.
fn mapped(plan: &str) -> &str {
    if plan == "yearly" {
        "plus"
    } else {
        plan
    }
}

/// The add-on a billing add-on id names in the fuzz hook.
fn mapped_addon(addon: &str) -> &str {
    if addon == "pack-yearly" {
        "pack"
    } else {
        addon
    }
}

/// Drives the receiver with the request and checks its outcome against the inputs.
fn receive(input: &Input, config: &WebhookConfig, event: Option<EntitlementEvent>) {
    let store = store();
    let hook = MemoryStoreHook::new(store.clone())
        .map_plan("yearly", "plus")
        .map_addon("pack-yearly", "pack")
        .expiry_margin(MARGIN);
    let mut receiver = WebhookReceiver::new(config.clone(), hook);

    let mut request = Request::new(Full::new(Bytes::from(input.body.clone())));
    *request.method_mut() = input.method.clone();
    // Header values the `http` crate refuses are left out, as a client could not send them.
    let header = |bytes: &Option<Vec<u8>>| {
        bytes
            .as_deref()
            .and_then(|bytes| HeaderValue::from_bytes(bytes).ok())
    };
    let signature = header(&input.signature);
    let timestamp = header(&input.timestamp);
    if let Some(value) = &signature {
        request
            .headers_mut()
            .insert(config.signature_header().clone(), value.clone());
    }
    if let Some(value) = &timestamp {
        request
            .headers_mut()
            .insert(config.timestamp_header().clone(), value.clone());
    }
    let before = |user: &str| store.subscriber(user);
    let user = event.as_ref().and_then(|e| e.user().map(str::to_owned));
    let previous = user.as_deref().and_then(before);

    let response = futures::executor::block_on(receiver.call(request)).expect("infallible");
    let outcome = *response
        .extensions()
        .get::<WebhookOutcome>()
        .expect("the outcome is in the extensions");
    assert_eq!(response.status(), outcome.status());
    let body = futures::executor::block_on(response.into_body().collect())
        .expect("a full body")
        .to_bytes();
    assert_eq!(&body[..], outcome.body().as_bytes());
    assert!(serde_json::from_slice::<Value>(&body).is_ok());

    let expected = expected_outcome(
        input,
        signature.as_ref(),
        timestamp.as_ref(),
        event.as_ref(),
    );
    if let Some(expected) = expected {
        assert_eq!(outcome, expected, "the receiver answered otherwise");
    } else if let WebhookOutcome::Unauthorized(_) = outcome {
    } else {
        assert!(
            matches!(
                outcome,
                WebhookOutcome::TooLarge | WebhookOutcome::MethodNotAllowed
            ),
            "an unsigned request got {outcome:?}"
        );
    }

    if outcome == WebhookOutcome::Applied {
        let event = event.expect("an applied event parsed");
        let user = user.expect("an applied event names a user");
        let now = store.subscriber(&user);
        match event.effect() {
            Effect::Grant => {
                let plan = mapped(event.plan.as_deref().expect("a granted plan"));
                let assignment = now
                    .as_ref()
                    .and_then(|record| record.assignment.clone())
                    .expect("a granted plan is assigned");
                let expires = event
                    .effective_next_renewal_at_ms
                    .map(|at| at.saturating_add(MARGIN.as_millis() as u64));
                assert_eq!(
                    assignment,
                    Assignment {
                        plan: Arc::from(plan),
                        trial: false,
                        joined: event.purchased_at_ms,
                        expires,
                    }
                );
                // Usage is kept.
                if let Some(previous) = &previous {
                    assert_eq!(previous.usage, now.as_ref().expect("kept").usage);
                }
            }
            Effect::Revoke => {
                let held = previous.as_ref().and_then(|r| r.assignment.clone());
                let revoked = match (&held, event.plan.as_deref()) {
                    (Some(_), None) => true,
                    (Some(held), Some(plan)) => &*held.plan == mapped(plan),
                    (None, _) => false,
                };
                let after = now.as_ref().and_then(|r| r.assignment.clone());
                if revoked {
                    assert_eq!(after, None, "{event:?} left {held:?}");
                } else {
                    assert_eq!(after, held, "{event:?} changed {held:?}");
                }
                assert_eq!(now.is_some(), previous.is_some(), "a revoke made a user");
            }
            Effect::GrantAddon => {
                let addon = mapped_addon(event.addon.as_deref().expect("a granted add-on"));
                let grants: Vec<_> = now
                    .as_ref()
                    .map(|record| record.addons.clone())
                    .unwrap_or_default();
                let expires = event
                    .effective_next_renewal_at_ms
                    .map(|at| at.saturating_add(MARGIN.as_millis() as u64));
                let mine: Vec<_> = grants.iter().filter(|g| &*g.name == addon).collect();
                assert_eq!(
                    mine.len(),
                    1,
                    "one grant of {addon} after a grant: {grants:?}"
                );
                assert_eq!(
                    (mine[0].starts, mine[0].expires, mine[0].quantity),
                    (event.purchased_at_ms, expires, event.quantity.unwrap_or(1))
                );
                // The plan, the usage and the other grants are kept.
                if let Some(previous) = &previous {
                    let now = now.as_ref().expect("kept");
                    assert_eq!(previous.assignment, now.assignment);
                    assert_eq!(previous.usage, now.usage);
                    let others = |r: &tower_plans::Subscriber| {
                        r.addons
                            .iter()
                            .filter(|g| &*g.name != addon)
                            .cloned()
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(others(previous), others(now));
                }
            }
            Effect::RevokeAddon => {
                let addon = mapped_addon(event.addon.as_deref().expect("a revoked add-on"));
                let after = now.as_ref().map(|r| r.addons.clone()).unwrap_or_default();
                assert!(
                    after.iter().all(|g| &*g.name != addon),
                    "{addon} kept: {after:?}"
                );
                let kept: Vec<_> = previous
                    .as_ref()
                    .map(|r| {
                        r.addons
                            .iter()
                            .filter(|g| &*g.name != addon)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(after, kept);
                assert_eq!(now.is_some(), previous.is_some(), "a revoke made a user");
            }
            other => panic!("{other:?} applied"),
        }
    } else if let Some(user) = &user {
        assert_eq!(
            store.subscriber(user),
            previous,
            "{outcome:?} changed the store"
        );
    }
}

/// The outcome the receiver must give, when the input determines it.
fn expected_outcome(
    input: &Input,
    signature: Option<&HeaderValue>,
    timestamp: Option<&HeaderValue>,
    event: Option<&EntitlementEvent>,
) -> Option<WebhookOutcome> {
    if input.method != Method::POST {
        return Some(WebhookOutcome::MethodNotAllowed);
    }
    let Some(signature) = signature else {
        return Some(WebhookOutcome::Unauthorized(VerifyError::MissingSignature));
    };
    let Some(timestamp) = timestamp else {
        return Some(WebhookOutcome::Unauthorized(VerifyError::MissingTimestamp));
    };
    if signature.to_str().is_err() {
        return Some(WebhookOutcome::Unauthorized(VerifyError::BadSignature));
    }
    if timestamp.to_str().is_err() {
        return Some(WebhookOutcome::Unauthorized(VerifyError::InvalidTimestamp));
    }
    if input.body.len() > BODY_LIMIT {
        return Some(WebhookOutcome::TooLarge);
    }
    match input.verified? {
        Ok(()) => {}
        Err(error) => return Some(WebhookOutcome::Unauthorized(error)),
    }
    let Some(event) = event else {
        return Some(WebhookOutcome::Malformed);
    };
    if event.effect() == Effect::None {
        return Some(WebhookOutcome::Unhandled);
    }
    if event.user().is_none() {
        return Some(WebhookOutcome::Anonymous);
    }
    if event.effect() == Effect::Grant {
        let known = event
            .plan
            .as_deref()
            .is_some_and(|plan| ["monthly", "plus"].contains(&mapped(plan)));
        if !known {
            return Some(WebhookOutcome::HookFailed);
        }
    }
    match event.effect() {
        // A grant needs an add-on the catalog knows; a revoke, any add-on at all.
        Effect::GrantAddon if event.addon.as_deref().map(mapped_addon) != Some("pack") => {
            return Some(WebhookOutcome::HookFailed);
        }
        Effect::RevokeAddon if event.addon.is_none() => return Some(WebhookOutcome::HookFailed),
        _ => {}
    }
    Some(WebhookOutcome::Applied)
}

fuzz_target!(|data: &[u8]| run(data));

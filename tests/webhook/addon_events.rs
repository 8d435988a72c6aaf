//! Add-on events: `ADDON_ACTIVATE` grants and `ADDON_DEACTIVATE` revokes an add-on in the
//! `MemoryStore`, an unknown add-on fails until it is mapped, and a custom hook sees the effect.

use std::sync::Arc;

use http::StatusCode;
use tower_plans::subscriber::AddonGrant;
use tower_plans::webhook::{
    Effect, EntitlementEvent, EntitlementHook, EventKind, MemoryStoreHook, WebhookOutcome,
    WebhookReceiver,
};
use tower_plans::MemoryStore;

use crate::support::*;

const PLANS: &str = r#"{"plans": [{"name": "free", "clients": 3}],
    "addons": [{"name": "more-clients", "limits": {"clients": 10}}]}"#;

fn store() -> MemoryStore {
    MemoryStore::from_json(
        PLANS,
        r#"{"toto": {"plan": "free", "usage": {"clients": 3}}}"#,
    )
    .unwrap()
}

fn addon_event(name: &str, id: &str, addon: &str, extra: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","event_name":"{name}","user_id":"toto","addon":"{addon}"{extra}}}"#
    )
}

#[tokio::test]
async fn a_signed_addon_activate_grants_and_a_deactivate_revokes() {
    let store = store();
    let receiver = WebhookReceiver::new(config_at(NOW), MemoryStoreHook::new(store.clone()));
    let activate = addon_event(
        "ADDON_ACTIVATE",
        "a1",
        "more-clients",
        r#","quantity":2,"subscription_status":"AUTO_RENEWING","purchased_at_ms":1702390391777,"effective_next_renewal_at_ms":1704982391777"#,
    );
    let (status, body, outcome) = send(&receiver, signed(&activate)).await;
    assert_eq!(
        (status, body.as_str(), outcome),
        (
            StatusCode::OK,
            r#"{"status":"applied"}"#,
            WebhookOutcome::Applied
        )
    );
    let toto = store.subscriber("toto").unwrap();
    assert_eq!(
        toto.addons,
        [AddonGrant::new("more-clients")
            .starts_at(1_702_390_391_777)
            .expires_at(1_704_982_391_777)
            .quantity(2)]
    );
    assert_eq!(toto.plan_name(), Some("free"), "the plan is untouched");
    assert_eq!(toto.usage.count("clients"), Some(3));

    // Redelivered: acknowledged once, not granted twice.
    let (_, body, _) = send(&receiver, signed(&activate)).await;
    assert_eq!(body, r#"{"status":"duplicate"}"#);
    assert_eq!(store.subscriber("toto").unwrap().addons.len(), 1);

    // A renewal (a new event id) replaces the grant.
    let renewal = addon_event(
        "ADDON_ACTIVATE",
        "a2",
        "more-clients",
        r#","purchased_at_ms":1704982391777,"effective_next_renewal_at_ms":1707660791777"#,
    );
    assert_eq!(send(&receiver, signed(&renewal)).await.0, StatusCode::OK);
    assert_eq!(
        store.subscriber("toto").unwrap().addons,
        [AddonGrant::new("more-clients")
            .starts_at(1_704_982_391_777)
            .expires_at(1_707_660_791_777)]
    );

    let deactivate = addon_event("ADDON_DEACTIVATE", "a3", "more-clients", "");
    let (status, _, outcome) = send(&receiver, signed(&deactivate)).await;
    assert_eq!((status, outcome), (StatusCode::OK, WebhookOutcome::Applied));
    assert!(store.subscriber("toto").unwrap().addons.is_empty());
    assert_eq!(store.subscriber("toto").unwrap().plan_name(), Some("free"));
}

#[tokio::test]
async fn an_addon_activate_with_an_inactive_status_revokes() {
    let store = store();
    store
        .grant_addon("toto", AddonGrant::new("more-clients"))
        .unwrap();
    let receiver = WebhookReceiver::new(config_at(NOW), MemoryStoreHook::new(store.clone()));
    let lapsed = addon_event(
        "ADDON_ACTIVATE",
        "b1",
        "more-clients",
        r#","subscription_status":"EXPIRED""#,
    );
    let (status, _, _) = send(&receiver, signed(&lapsed)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(store.subscriber("toto").unwrap().addons.is_empty());
}

#[tokio::test]
async fn an_unknown_addon_answers_500_until_it_is_mapped() {
    let store = store();
    let event = addon_event("ADDON_ACTIVATE", "c1", "pack_10", "");
    let receiver = WebhookReceiver::new(config_at(NOW), MemoryStoreHook::new(store.clone()));
    let (status, body, outcome) = send(&receiver, signed(&event)).await;
    assert_eq!(
        (status, body.as_str(), outcome),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"hook_failed"}"#,
            WebhookOutcome::HookFailed
        )
    );
    assert!(store.subscriber("toto").unwrap().addons.is_empty());
    let error = MemoryStoreHook::new(store.clone())
        .apply(&EntitlementEvent::from_slice(event.as_bytes()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the catalog has no add-on `pack_10` (billing add-on `pack_10`)"
    );

    // The retry, once the billing id is mapped, applies it.
    let mapped = WebhookReceiver::new(
        config_at(NOW),
        MemoryStoreHook::new(store.clone()).map_addon("pack_10", "more-clients"),
    );
    assert_eq!(send(&mapped, signed(&event)).await.0, StatusCode::OK);
    assert_eq!(
        store.subscriber("toto").unwrap().addons,
        [AddonGrant::new("more-clients")]
    );
}

#[tokio::test]
async fn an_addon_event_without_an_addon_is_an_error() {
    let store = store();
    let hook = MemoryStoreHook::new(store.clone());
    for name in ["ADDON_ACTIVATE", "ADDON_DEACTIVATE"] {
        let event = EntitlementEvent::from_slice(
            format!(r#"{{"event_name":"{name}","user_id":"toto","plan":"more-clients"}}"#)
                .as_bytes(),
        )
        .unwrap();
        let error = hook.apply(&event).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{name} for user `toto` names no add-on")
        );
    }
    assert_eq!(store.subscriber("toto").unwrap().plan_name(), Some("free"));
}

#[tokio::test]
async fn addon_events_reach_a_custom_hook_with_their_effect() {
    let hook = Arc::new(RecordingHook::default());
    let receiver = receiver(Arc::clone(&hook));
    for (id, name) in [("d1", "ADDON_ACTIVATE"), ("d2", "ADDON_DEACTIVATE")] {
        let (status, _, _) = send(
            &receiver,
            signed(&addon_event(name, id, "more-clients", "")),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        hook.applied(),
        [
            ("d1".to_owned(), Effect::GrantAddon),
            ("d2".to_owned(), Effect::RevokeAddon)
        ]
    );
    let event = EntitlementEvent::from_slice(
        addon_event("ADDON_ACTIVATE", "d3", "x", r#","quantity":3"#).as_bytes(),
    )
    .unwrap();
    assert_eq!(event.kind(), EventKind::AddonActivate);
    assert_eq!(
        (event.addon.as_deref(), event.quantity),
        (Some("x"), Some(3))
    );
    assert!(event.extra.is_empty());
}

//! The `MemoryStore` hook: plan events assign and remove plans in the store, keep usage, map
//! billing plans, and fail (for the sender to retry) on a plan the catalog does not know.

use std::time::Duration;

use http::StatusCode;
use tower_plans::webhook::{EntitlementEvent, EntitlementHook, MemoryStoreHook, WebhookReceiver};
use tower_plans::{subscriber::Assignment, MemoryStore};

use crate::support::*;

fn store() -> MemoryStore {
    MemoryStore::from_json(
        r#"[{"name": "free", "clients": 3}, {"name": "plus", "clients": 30}, {"name": "yearly", "clients": 300}]"#,
        r#"{"toto": {"plan": "free", "usage": {"clients": 3}}}"#,
    )
    .unwrap()
}

fn event(name: &str, id: &str, plan: &str) -> EntitlementEvent {
    EntitlementEvent::from_slice(
        format!(
            r#"{{"event_id":"{id}","event_name":"{name}","user_id":"toto","plan":"{plan}","purchased_at_ms":1702390391777,"effective_next_renewal_at_ms":1702390991777}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

#[tokio::test]
async fn activate_assigns_the_mapped_plan_and_keeps_usage() {
    let store = store();
    let hook = MemoryStoreHook::new(store.clone()).map_plan("monthly", "plus");
    hook.apply(&EntitlementEvent::from_slice(SAMPLE_ACTIVATE.as_bytes()).unwrap())
        .await
        .unwrap();
    let toto = store.subscriber("toto").unwrap();
    assert_eq!(
        toto.assignment,
        Some(Assignment::new("plus").joined_at(1_702_390_391_777))
    );
    assert_eq!(toto.usage.count("clients"), Some(3));

    // The sample DEACTIVATE (same billing plan) removes it.
    hook.apply(&EntitlementEvent::from_slice(SAMPLE_DEACTIVATE.as_bytes()).unwrap())
        .await
        .unwrap();
    assert_eq!(store.subscriber("toto").unwrap().assignment, None);
}

#[tokio::test]
async fn a_late_deactivate_of_another_plan_keeps_the_current_one() {
    let store = store();
    let hook = MemoryStoreHook::new(store.clone());
    hook.apply(&event("ACTIVATE", "a", "yearly")).await.unwrap();
    hook.apply(&event("DEACTIVATE", "b", "plus")).await.unwrap();
    assert_eq!(
        store.subscriber("toto").unwrap().plan_name(),
        Some("yearly")
    );
    hook.apply(&event("DEACTIVATE", "c", "yearly"))
        .await
        .unwrap();
    assert_eq!(store.subscriber("toto").unwrap().plan_name(), None);
}

#[tokio::test]
async fn expiry_margin_sets_expires() {
    let store = store();
    let hook = MemoryStoreHook::new(store.clone()).expiry_margin(Duration::from_secs(86_400));
    hook.apply(&event("ACTIVATE", "a", "plus")).await.unwrap();
    assert_eq!(
        store.subscriber("toto").unwrap().assignment,
        Some(
            Assignment::new("plus")
                .joined_at(1_702_390_391_777)
                .expires_at(1_702_390_991_777 + 86_400_000)
        )
    );
}

#[tokio::test]
async fn an_unknown_plan_is_an_error_and_changes_nothing() {
    let store = store();
    let hook = MemoryStoreHook::new(store.clone());
    let error = hook
        .apply(&event("ACTIVATE", "a", "monthly"))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the catalog has no plan `monthly` (billing plan `monthly`)"
    );
    assert_eq!(store.subscriber("toto").unwrap().plan_name(), Some("free"));
}

#[tokio::test]
async fn unknown_users_are_created_by_activate_only() {
    let store = store();
    let hook = MemoryStoreHook::new(store.clone());
    let deactivate = EntitlementEvent::from_slice(
        br#"{"event_name":"DEACTIVATE","user_id":"new","plan":"plus"}"#,
    )
    .unwrap();
    hook.apply(&deactivate).await.unwrap();
    assert!(store.subscriber("new").is_none());
    let activate =
        EntitlementEvent::from_slice(br#"{"event_name":"ACTIVATE","user_id":"new","plan":"plus"}"#)
            .unwrap();
    hook.apply(&activate).await.unwrap();
    assert_eq!(store.subscriber("new").unwrap().plan_name(), Some("plus"));
}

#[tokio::test]
async fn receiver_with_the_store_hook_answers_500_for_an_unknown_plan_then_applies() {
    let store = store();
    let receiver = WebhookReceiver::new(config_at(NOW), MemoryStoreHook::new(store.clone()));
    // The billing plan `monthly` is not in the catalog: 500, and the sender retries.
    let (status, _, _) = send(&receiver, signed(SAMPLE_ACTIVATE)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // Once the catalog knows the plan, the retry applies it.
    store.set_catalog(
        tower_plans::Catalog::from_json(r#"[{"name": "monthly", "clients": 10}]"#).unwrap(),
    );
    let (status, body, _) = send(&receiver, signed(SAMPLE_ACTIVATE)).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"status":"applied"}"#)
    );
    assert_eq!(
        store.subscriber("toto").unwrap().plan_name(),
        Some("monthly")
    );
}

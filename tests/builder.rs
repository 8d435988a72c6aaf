//! The builder: invalid configuration is an error from `build`, never a panic.

mod common;

use std::time::Duration;

use common::*;
use http::Method;
use tower_plans::{Action, ConfigError, Invalidator, PlanLimit, PlanLimitLayer, UserCache};

fn option(result: Result<PlanLimitLayer, ConfigError>) -> &'static str {
    match result {
        Err(ConfigError::InvalidOption { option, .. }) => option,
        other => panic!("expected an invalid option, got {other:?}"),
    }
}

#[test]
fn the_defaults_build() {
    let store = CountingStore::new();
    assert!(builder(&store).build().is_ok());
}

#[test]
fn a_zero_store_timeout_is_rejected() {
    let store = CountingStore::new();
    let result = builder(&store).store_timeout(Duration::ZERO).build();
    assert_eq!(option(result), "store_timeout");
}

#[test]
fn a_user_cache_without_capacity_or_lifetime_is_rejected() {
    let store = CountingStore::new();
    for cache in [
        UserCache::time_to_live(Duration::from_secs(10), 0),
        UserCache::time_to_idle(Duration::from_secs(10), 0),
        UserCache::time_to_live(Duration::ZERO, 10),
        UserCache::time_to_idle(Duration::ZERO, 10),
    ] {
        let result = builder(&store).user_cache(cache).build();
        assert_eq!(option(result), "user_cache", "{cache:?}");
    }
}

#[test]
fn an_empty_default_plan_is_rejected() {
    let store = CountingStore::new();
    let result = builder(&store).default_plan("").build();
    assert_eq!(option(result), "default_plan");
}

#[test]
fn an_invalid_template_is_rejected() {
    let store = CountingStore::new();
    let result = builder(&store)
        .route(
            Method::POST,
            "/reports/{id/export",
            "exports",
            Action::Create,
        )
        .build();
    assert!(result.is_err(), "{result:?}");
}

#[test]
fn conflicting_custom_routes_are_rejected() {
    let store = CountingStore::new();
    let result = builder(&store)
        .route(
            Method::POST,
            "/reports/{id}/export",
            "exports",
            Action::Create,
        )
        .route(
            Method::POST,
            "/reports/{id}/export",
            "reports",
            Action::Update,
        )
        .build();
    assert!(result.is_err(), "{result:?}");
}

#[test]
fn the_public_types_are_send_sync_and_clone() {
    fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    send_sync_clone::<PlanLimitLayer>();
    send_sync_clone::<Invalidator>();
    send_sync_clone::<PlanLimit<tower::util::BoxCloneSyncService<(), (), ()>>>();
}

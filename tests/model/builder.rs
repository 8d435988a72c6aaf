//! The builder: invalid configuration is an error from `build`, never a panic.

use std::time::Duration;

use crate::support::*;
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

/// The longest lifetime the user cache takes: 1000 years of 365 days.
const THOUSAND_YEARS: Duration = Duration::from_secs(1_000 * 365 * 24 * 60 * 60);

#[test]
fn a_user_cache_lifetime_over_a_thousand_years_is_rejected() {
    let store = CountingStore::new();
    let longer = THOUSAND_YEARS + Duration::from_nanos(1);
    for (cache, reason) in [
        (
            UserCache::time_to_live(longer, 10),
            "the time-to-live must be at most 1000 years",
        ),
        (
            UserCache::time_to_idle(longer, 10),
            "the time-to-idle must be at most 1000 years",
        ),
        (
            UserCache::time_to_live(Duration::MAX, 10),
            "the time-to-live must be at most 1000 years",
        ),
        (
            UserCache::time_to_idle(Duration::MAX, 10),
            "the time-to-idle must be at most 1000 years",
        ),
    ] {
        let result = builder(&store).user_cache(cache).build();
        assert_eq!(
            result.err(),
            Some(ConfigError::InvalidOption {
                option: "user_cache",
                reason: reason.to_owned(),
            }),
            "{cache:?}"
        );
    }
}

#[tokio::test]
async fn the_longest_lifetimes_and_capacity_build_and_cache() {
    let store = CountingStore::new();
    for cache in [
        UserCache::time_to_live(THOUSAND_YEARS, u64::MAX),
        UserCache::time_to_idle(THOUSAND_YEARS, u64::MAX),
    ] {
        let layer = builder(&store).user_cache(cache).build().unwrap();
        for _ in 0..2 {
            let response = send(&layer, request(Method::POST, "/clients", Some("ann"))).await;
            assert_eq!(
                text(response).await,
                "free clients create usage=1 remaining=Some(2)"
            );
        }
    }
    assert_eq!(store.user_calls(), 2);
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

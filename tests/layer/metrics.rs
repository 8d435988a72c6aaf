//! The `metrics` feature, seen through a recording recorder set for the test's thread only (each
//! test runs on its own current-thread runtime, so tests do not see each other's metrics): each
//! outcome and reason counts exactly once per request, caches count hits and misses, store
//! calls count their results, reservations count how they were settled, and no label carries
//! the user id.

use std::time::Duration;

use crate::support::*;
use http::{Method, StatusCode};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower_plans::{MemoryStore, PlanLimitLayer, UserCache};

/// One counter of a snapshot: its name, its labels and how much it moved.
#[derive(Debug)]
struct Moved {
    name: String,
    labels: Vec<(String, String)>,
    value: u64,
}

/// The counters that moved since the last snapshot (a snapshot resets them), and every label of
/// every metric recorded, histograms included.
fn take(snapshotter: &Snapshotter) -> (Vec<Moved>, Vec<(String, String)>) {
    let mut counters = Vec::new();
    let mut labels = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let pairs: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.extend(pairs.iter().cloned());
        if let DebugValue::Counter(value) = value {
            if value > 0 {
                counters.push(Moved {
                    name: key.name().to_owned(),
                    labels: pairs,
                    value,
                });
            }
        }
    }
    (counters, labels)
}

/// The counters named `name` that moved, as `(labels, value)` with the labels `k=v` joined.
fn named(moved: &[Moved], name: &str) -> Vec<(String, u64)> {
    let mut found: Vec<(String, u64)> = moved
        .iter()
        .filter(|m| m.name == name)
        .map(|m| {
            let labels: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (labels.join(","), m.value)
        })
        .collect();
    found.sort();
    found
}

fn decisions(moved: &[Moved]) -> Vec<(String, u64)> {
    named(moved, "tower_plans_decisions_total")
}

fn decision(outcome: &str, reason: &str, resource: &str, action: &str) -> Vec<(String, u64)> {
    vec![(
        format!("outcome={outcome},reason={reason},resource={resource},action={action}"),
        1,
    )]
}

/// Sends one request and returns the counters it moved, checking that no label is a user id.
async fn one(
    snapshotter: &Snapshotter,
    layer: &PlanLimitLayer,
    method: Method,
    path: &str,
    user: Option<&str>,
) -> (StatusCode, Vec<Moved>) {
    let response = send(layer, request(method, path, user)).await;
    let status = response.status();
    let (moved, labels) = take(snapshotter);
    for (key, value) in &labels {
        assert!(
            !USERS.iter().any(|(id, _)| id == value),
            "the label {key}={value} carries a user id"
        );
    }
    (status, moved)
}

#[tokio::test]
async fn each_outcome_and_reason_counts_once_per_request() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let store = CountingStore::new();
    let layer = builder(&store).build().unwrap();

    // ann (free, 1 of 3 clients) may create one.
    let (status, moved) = one(&snapshotter, &layer, Method::POST, "/clients", Some("ann")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        decisions(&moved),
        decision("allow", "none", "clients", "create")
    );
    // bob is at his limit.
    let (status, moved) = one(&snapshotter, &layer, Method::POST, "/clients", Some("bob")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        decisions(&moved),
        decision("deny", "limit", "clients", "create")
    );
    // cid has no plan.
    let (status, moved) = one(&snapshotter, &layer, Method::GET, "/clients", Some("cid")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        decisions(&moved),
        decision("deny", "no_plan", "clients", "index")
    );
    // dee's pro plan expired.
    let (status, moved) = one(&snapshotter, &layer, Method::GET, "/clients", Some("dee")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        decisions(&moved),
        decision("deny", "expired", "clients", "index")
    );
    // Nobody.
    let (status, moved) = one(&snapshotter, &layer, Method::GET, "/clients", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        decisions(&moved),
        decision("unauthenticated", "no_user", "clients", "index")
    );
    // An ungoverned path decides nothing.
    let (status, moved) = one(&snapshotter, &layer, Method::GET, "/health", Some("ann")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(decisions(&moved), vec![]);

    // The store fails: 503 when failing closed, a pass when failing open.
    store.fail_users(true);
    let (status, moved) = one(&snapshotter, &layer, Method::GET, "/clients", Some("ann")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        decisions(&moved),
        decision("store_unavailable", "store_error", "clients", "index")
    );
    assert_eq!(
        named(&moved, "tower_plans_store_calls_total"),
        vec![("store=plan,call=user,result=error".to_owned(), 1)]
    );
    let open = builder(&store).fail_open(true).build().unwrap();
    let (status, moved) = one(&snapshotter, &open, Method::GET, "/clients", Some("ann")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        decisions(&moved),
        decision("pass_open", "store_error", "clients", "index")
    );
}

#[tokio::test]
async fn a_catalog_that_cannot_load_is_counted_without_a_route() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let store = CountingStore::new();
    store.fail_plans(true);
    let layer = builder(&store).build().unwrap();
    let (status, moved) = one(&snapshotter, &layer, Method::GET, "/clients", Some("ann")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        decisions(&moved),
        decision("store_unavailable", "store_error", "unknown", "unknown")
    );
    assert_eq!(
        named(&moved, "tower_plans_store_calls_total"),
        vec![("store=plan,call=plans,result=error".to_owned(), 1)]
    );
    assert_eq!(
        named(&moved, "tower_plans_cache_total"),
        vec![("cache=catalog,result=miss".to_owned(), 1)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_call_that_times_out_is_counted_as_a_timeout() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let store = CountingStore::new();
    store.set_delay(Duration::from_secs(10));
    let layer = builder(&store)
        .store_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let (status, moved) = one(&snapshotter, &layer, Method::GET, "/clients", Some("ann")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        named(&moved, "tower_plans_store_calls_total"),
        vec![("store=plan,call=plans,result=timeout".to_owned(), 1)]
    );
}

#[tokio::test]
async fn caches_count_hits_and_misses() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let store = CountingStore::new();
    let layer = builder(&store)
        .user_cache(UserCache::time_to_live(Duration::from_secs(60), 100))
        .build()
        .unwrap();

    let (_, moved) = one(&snapshotter, &layer, Method::GET, "/clients", Some("ann")).await;
    assert_eq!(
        named(&moved, "tower_plans_cache_total"),
        vec![
            ("cache=catalog,result=miss".to_owned(), 1),
            ("cache=user,result=miss".to_owned(), 1)
        ]
    );
    assert_eq!(
        named(&moved, "tower_plans_store_calls_total"),
        vec![
            ("store=plan,call=plans,result=ok".to_owned(), 1),
            ("store=plan,call=user,result=ok".to_owned(), 1)
        ]
    );
    let (_, moved) = one(&snapshotter, &layer, Method::GET, "/clients", Some("ann")).await;
    assert_eq!(
        named(&moved, "tower_plans_cache_total"),
        vec![
            ("cache=catalog,result=hit".to_owned(), 1),
            ("cache=user,result=hit".to_owned(), 1)
        ]
    );
    assert_eq!(named(&moved, "tower_plans_store_calls_total"), vec![]);
    // bob is not cached yet: the catalog hits, the user misses.
    let (_, moved) = one(&snapshotter, &layer, Method::GET, "/clients", Some("bob")).await;
    assert_eq!(
        named(&moved, "tower_plans_cache_total"),
        vec![
            ("cache=catalog,result=hit".to_owned(), 1),
            ("cache=user,result=miss".to_owned(), 1)
        ]
    );
}

#[tokio::test]
async fn reservations_count_commits_and_releases() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let usage = MemoryStore::from_json(
        r#"{"plans": [{"name": "free", "limits": {"clients": 5}}]}"#,
        r#"{"ann": {"name": "ann", "plan": "free", "usage": {"clients": 1}}}"#,
    )
    .unwrap();
    let layer = PlanLimitLayer::builder(usage.clone())
        .count_usage(usage)
        .build()
        .unwrap();

    // A create that succeeds commits its unit.
    let (status, moved) = one(&snapshotter, &layer, Method::POST, "/clients", Some("ann")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        named(&moved, "tower_plans_reservations_total"),
        vec![("result=committed".to_owned(), 1)]
    );
    assert_eq!(
        named(&moved, "tower_plans_store_calls_total"),
        vec![
            ("store=plan,call=plans,result=ok".to_owned(), 1),
            ("store=plan,call=user,result=ok".to_owned(), 1),
            ("store=usage,call=commit,result=ok".to_owned(), 1),
            ("store=usage,call=reserve,result=ok".to_owned(), 1),
        ]
    );

    // A create whose handler fails releases it.
    let failing = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(|_| async {
            let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            Ok::<_, std::convert::Infallible>(response)
        });
    let response =
        tower::ServiceExt::oneshot(failing, request(Method::POST, "/clients", Some("ann")))
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let (moved, _) = take(&snapshotter);
    assert_eq!(
        named(&moved, "tower_plans_reservations_total"),
        vec![("result=released".to_owned(), 1)]
    );
    assert_eq!(
        decisions(&moved),
        decision("allow", "none", "clients", "create")
    );
}

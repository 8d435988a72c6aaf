//! Counting over Redis never changes a decision that the read-only decision makes on the same
//! record: the differential property of the layer tests (`support/counting_differential.rs`),
//! with the plans in memory (a copy that does not count) and the counts in Redis, and its
//! regressions.

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use serde_json::json;
use tower_plans::PlanLimitLayer;

use crate::common::*;
use crate::counting_model::{builder, case, cases, run, Case, Op};

/// A key prefix of its own for each case.
fn prefix() -> String {
    static CASE: AtomicUsize = AtomicUsize::new(0);
    format!("count{}", CASE.fetch_add(1, Ordering::Relaxed))
}

/// The layers of `case`: without counting, and counting in Redis under a prefix of its own.
async fn layers(server: &RedisServer, case: &Case) -> (PlanLimitLayer, PlanLimitLayer) {
    let off = builder(case.store()).build().expect("valid layer");
    let conn = connect(server).await.key_prefix(&prefix());
    let on = builder(case.store())
        .count_usage(conn.usage_store())
        .build()
        .expect("valid layer");
    (off, on)
}

#[test]
fn counting_in_redis_differs_from_the_read_only_decision_only_by_counted_units() {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let config = ProptestConfig {
        cases: cases(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(case in case())| {
        let outcome = runtime.block_on(async {
            let (off, on) = layers(&server, &case).await;
            run(&case, &off, &on).await
        });
        prop_assert!(outcome.is_ok(), "{}\ncase: {:?}", outcome.unwrap_err(), case);
    });
}

/// Runs one case as the property does.
async fn regression(
    catalog: serde_json::Value,
    record: serde_json::Value,
    requests: &[(usize, Op)],
) {
    let server = RedisServer::start();
    let case = Case {
        catalog,
        record,
        requests: requests.to_vec(),
    };
    let (off, on) = layers(&server, &case).await;
    if let Err(difference) = run(&case, &off, &on).await {
        panic!("{difference}");
    }
}

fn catalog(limits: serde_json::Value) -> serde_json::Value {
    json!({
        "actions": ["archive"],
        "plans": [{"name": "free", "limits": limits}],
        "addons": [{"name": "extra", "limits": {}}],
    })
}

// A plain count is the item count: an action without a count of its own reads it as creates
// (counted in Redis) move it, and a refusal leaves the action without a counter of its own.
#[tokio::test]
async fn an_action_follows_the_item_count_until_it_has_its_own() {
    regression(
        catalog(json!({"clients": {"show": 2, "update": 0}})),
        json!({"name": "u", "plan": "free", "usage": {"clients": 1}}),
        &[
            (0, Op::Put),
            (0, Op::Create),
            (0, Op::Show),
            (0, Op::Create),
            (0, Op::Show),
            (0, Op::Put),
        ],
    )
    .await;
}

// A resource counted per action: the others read 0, whatever the item count.
#[tokio::test]
async fn an_action_of_a_resource_counted_per_action_reads_its_own_count() {
    regression(
        catalog(json!({"tasks": {"show": 1, "create": 5}})),
        json!({"name": "u", "plan": "free", "usage": {"tasks": {"update": 2}}}),
        &[(1, Op::Create), (1, Op::Show), (1, Op::Show)],
    )
    .await;
}

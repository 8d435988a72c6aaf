//! Counting over Postgres never changes a decision that the read-only decision makes on the same
//! record: the differential property of the layer tests (`support/counting_differential.rs`),
//! with Postgres as the plan store and the usage store of the layer that counts (the catalog and
//! the record written through its writers), and its regressions.

use proptest::prelude::*;
use serde_json::{json, Value};
use tower_plans::postgres::driver as sqlx;
use tower_plans::postgres::PostgresStore;
use tower_plans::PlanLimitLayer;

use crate::common::*;
use crate::counting_model::{builder, case, cases, run, Case, Op};

/// Empties `store`'s database and writes `case`'s catalog and record (as user `u`).
async fn load(store: &PostgresStore, case: &Case) -> Result<(), String> {
    sqlx::raw_sql(
        "TRUNCATE tower_plans.counters, tower_plans.holds, tower_plans.subscribers CASCADE",
    )
    .execute(store.pool())
    .await
    .map_err(|e| e.to_string())?;
    store
        .load_json(&case.catalog_json(), &case.users_json())
        .await
        .map_err(|e| e.to_string())
}

/// The layers of `case`: without counting (in memory), and counting over Postgres.
async fn layers(
    store: &PostgresStore,
    case: &Case,
) -> Result<(PlanLimitLayer, PlanLimitLayer), String> {
    load(store, case).await?;
    let off = builder(case.store()).build().map_err(|e| e.to_string())?;
    let on = builder(store.clone())
        .count_usage(store.clone())
        .build()
        .map_err(|e| e.to_string())?;
    Ok((off, on))
}

#[test]
fn postgres_counts_as_the_model_says() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let store = runtime.block_on(fresh());
    let config = ProptestConfig {
        cases: cases(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(case in case())| {
        let outcome = runtime.block_on(async {
            let (off, on) = layers(&store, &case).await?;
            run(&case, &off, &on).await
        });
        prop_assert!(outcome.is_ok(), "{}\ncase: {:?}", outcome.unwrap_err(), case);
    });
}

/// Runs one case as the property does.
async fn regression(catalog: Value, record: Value, requests: &[(usize, Op)]) {
    let store = fresh().await;
    let case = Case {
        catalog,
        record,
        requests: requests.to_vec(),
    };
    let (off, on) = layers(&store, &case).await.expect("loaded");
    if let Err(difference) = run(&case, &off, &on).await {
        panic!("{difference}");
    }
}

fn catalog(limits: Value) -> Value {
    json!({
        "actions": ["archive"],
        "plans": [{"name": "free", "limits": limits}],
        "addons": [{"name": "extra", "limits": {}}],
    })
}

// A plain count is the item count: an action without a count of its own reads it as creates
// move it, and a refusal leaves the action without a counter of its own.
#[tokio::test]
async fn postgres_an_action_follows_the_item_count_until_it_has_its_own() {
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

// A resource counted per action, with no action listed: every action reads 0, and a create
// does not raise what the shows read.
#[tokio::test]
async fn postgres_an_empty_per_action_resource_stays_counted_per_action() {
    regression(
        catalog(json!({"clients": {"show": 0, "create": 3}})),
        json!({"name": "u", "plan": "free", "usage": {"clients": {}}}),
        &[(0, Op::Create), (0, Op::Show)],
    )
    .await;
    regression(
        catalog(json!({"tasks": {"show": 1, "create": 5}})),
        json!({"name": "u", "plan": "free", "usage": {"tasks": {"update": 2}}}),
        &[(1, Op::Create), (1, Op::Show), (1, Op::Show)],
    )
    .await;
}

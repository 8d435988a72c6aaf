//! Counting never changes a decision that the read-only decision makes on the same record: the
//! in-memory store counting against a copy that does not count, over random catalogs, records
//! and request sequences (see `support/counting_differential.rs` for the model).

use proptest::prelude::*;
use serde_json::json;

use crate::counting_model::{builder, case, run, send, Case, Op};

#[test]
fn counting_in_memory_differs_from_the_read_only_decision_only_by_counted_units() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let config = ProptestConfig {
        cases: crate::counting_model::cases(256),
        // The shrunk cases it found are the regression tests below.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(case in case())| {
        let off = builder(case.store()).build().expect("valid layer");
        let store = case.store();
        let on = builder(store.clone()).count_usage(store).build().expect("valid layer");
        let outcome = runtime.block_on(run(&case, &off, &on));
        prop_assert!(outcome.is_ok(), "{}\ncase: {:?}", outcome.unwrap_err(), case);
    });
}

/// Runs one case through both layers, as the property does.
async fn regression(
    catalog: serde_json::Value,
    record: serde_json::Value,
    requests: &[(usize, Op)],
) {
    let case = Case {
        catalog,
        record,
        requests: requests.to_vec(),
    };
    let off = builder(case.store()).build().expect("valid layer");
    let store = case.store();
    let on = builder(store.clone())
        .count_usage(store)
        .build()
        .expect("valid layer");
    if let Err(difference) = run(&case, &off, &on).await {
        panic!("{difference}");
    }
}

/// A catalog of the property's shape whose plan `plan` has these limits.
fn catalog_with(plan: &str, limits: serde_json::Value) -> serde_json::Value {
    let mut catalog = json!({
        "trial": {"duration": 14, "fallback": "free"},
        "actions": ["archive"],
        "plans": [{"name": "free", "limits": {}}, {"name": "pro", "limits": {}}],
        "addons": [{"name": "extra", "limits": {}}],
    });
    let at = usize::from(plan == "pro");
    catalog["plans"][at]["limits"] = limits;
    catalog
}

// Found on the counting of the first release: the first counter of an action turned a plain count
// into per-action counts, after which every other action of the resource read 0. A PATCH refused
// at its limit of 0, then a DELETE: 403 with usage 1, not 0.
#[tokio::test]
async fn a_plain_count_stays_the_usage_of_the_other_actions_after_a_refusal() {
    regression(
        catalog_with("free", json!({"clients": {"delete": 0, "patch": 0}})),
        json!({"name": "u", "plan": "free", "usage": {"clients": 1}}),
        &[(0, Op::Patch), (0, Op::Delete)],
    )
    .await;
}

// Found on the counting of the first release: a refused request created its action's counter,
// which no longer read the item count that a create then raised.
#[tokio::test]
async fn a_refused_request_creates_no_counter() {
    regression(
        catalog_with("pro", json!({"clients": {"show": 0, "update": 0}})),
        json!({"name": "u", "plan": "pro", "usage": {}}),
        &[(0, Op::Show), (0, Op::Create), (0, Op::Show)],
    )
    .await;
    regression(
        catalog_with("free", json!({"notes": {"index": 0}})),
        json!({"name": "u", "plan": "free", "usage": {"notes": 1}}),
        &[(2, Op::List), (2, Op::Create), (2, Op::List)],
    )
    .await;
}

// Found while fixing the two above: a resource the record does not name reads 0 for every
// action, as a plain count of 0 does; an action that gains a count of its own there must not
// turn the resource into per-action counts, which the item count no longer reaches.
#[tokio::test]
async fn an_unnamed_resource_reads_as_a_plain_count_of_zero() {
    regression(
        catalog_with("free", json!({"tasks": {"patch": 1, "show": 0}})),
        json!({"name": "u", "plan": "free", "usage": {}}),
        &[(1, Op::Patch), (1, Op::Create), (1, Op::Show)],
    )
    .await;
}

// A PATCH limited through the update limit reads the patch count when the record has one: it
// counts there, and a PUT still reads the update count.
#[tokio::test]
async fn a_patch_counts_on_the_count_it_reads() {
    regression(
        catalog_with("free", json!({"tasks": {"update": 4}})),
        json!({"name": "u", "plan": "free", "usage": {"tasks": {"patch": 3}}}),
        &[(1, Op::Patch), (1, Op::Put), (1, Op::Patch), (1, Op::Put)],
    )
    .await;
}

// A plain count of 5 on a plan that allows one of each action: the list first, then every item
// action in every order, each answered 403 with usage 5.
#[tokio::test]
async fn every_item_action_reads_the_plain_count_in_any_order() {
    let catalog = catalog_with(
        "free",
        json!({"tasks": {"index": 1, "show": 1, "create": 10, "update": 1, "patch": 1, "delete": 1}}),
    );
    let record = json!({"name": "u", "plan": "free", "usage": {"tasks": 5}});
    let actions = [Op::Show, Op::Head, Op::Put, Op::Patch, Op::Delete];
    let mut orders: Vec<Vec<Op>> = vec![vec![]];
    for _ in 0..actions.len() {
        let mut longer = Vec::new();
        for order in &orders {
            for op in actions.iter().filter(|op| !order.contains(op)) {
                let mut next = order.clone();
                next.push(*op);
                longer.push(next);
            }
        }
        orders = longer;
    }
    assert_eq!(orders.len(), 120);
    let case = Case {
        catalog,
        record,
        requests: Vec::new(),
    };
    for order in orders {
        let store = case.store();
        let on = builder(store.clone())
            .count_usage(store)
            .build()
            .expect("valid layer");
        for op in std::iter::once(Op::List).chain(order.iter().copied()) {
            let answer = send(&on, "tasks", op).await;
            assert_eq!(
                answer.status,
                http::StatusCode::FORBIDDEN,
                "{op:?} in {order:?}"
            );
            assert_eq!(answer.body["usage"], json!(5), "{op:?} in {order:?}");
        }
    }
}

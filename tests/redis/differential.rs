//! The Redis usage store against the in-memory one: random sequences of operations on one
//! counter, and on holds of a pool with its grants and an action, give the same answers in both
//! (leases long enough never to end during a case).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use tower_plans::store::{Counter, Hold, Line, ReservationId, Seed, Spill, UsageStoreExt};
use tower_plans::{Catalog, MemoryStore, UsageStore};

use crate::common::*;

#[derive(Clone, Debug)]
enum Op {
    Reserve(usize, Option<u64>, u64),
    Commit(usize),
    Release(usize),
    Adjust(i64, u64),
    Set(u64),
    Get,
}

fn op() -> impl Strategy<Value = Op> {
    let limit = prop_oneof![Just(None), (0u64..8).prop_map(Some)];
    prop_oneof![
        5 => (0usize..5, limit, 0u64..5).prop_map(|(id, limit, seed)| Op::Reserve(id, limit, seed)),
        3 => (0usize..5).prop_map(Op::Commit),
        2 => (0usize..5).prop_map(Op::Release),
        1 => (-4i64..4, 0u64..5).prop_map(|(delta, seed)| Op::Adjust(delta, seed)),
        1 => prop_oneof![0u64..6, Just(u64::MAX - 1)].prop_map(Op::Set),
        2 => Just(Op::Get),
    ]
}

async fn run(server: &RedisServer, prefix: &str, items: bool, ops: &[Op]) -> Result<(), String> {
    let conn = connect(server).await.key_prefix(prefix);
    let redis = conn.usage_store();
    let memory = MemoryStore::new(Catalog::default());
    let counter = if items {
        Counter::items("jane", "tasks")
    } else {
        Counter::action("jane", "tasks", tower_plans::Action::Show)
    };
    let ids: Vec<ReservationId> = (0..5).map(|_| ReservationId::new()).collect();
    let lease = Duration::from_secs(600);
    for (step, op) in ops.iter().enumerate() {
        let (left, right) = match *op {
            Op::Reserve(id, limit, seed) => (
                format!(
                    "{:?}",
                    memory
                        .reserve_unit(&counter, limit, Seed::Count(seed), ids[id], lease)
                        .await
                        .unwrap()
                ),
                format!(
                    "{:?}",
                    redis
                        .reserve_unit(&counter, limit, Seed::Count(seed), ids[id], lease)
                        .await
                        .unwrap()
                ),
            ),
            Op::Commit(id) => (
                format!("{:?}", memory.commit_unit(&counter, ids[id]).await.unwrap()),
                format!("{:?}", redis.commit_unit(&counter, ids[id]).await.unwrap()),
            ),
            Op::Release(id) => (
                format!(
                    "{:?}",
                    memory.release_unit(&counter, ids[id]).await.unwrap()
                ),
                format!("{:?}", redis.release_unit(&counter, ids[id]).await.unwrap()),
            ),
            Op::Adjust(delta, seed) => (
                format!(
                    "{:?}",
                    memory
                        .adjust(&counter, delta, Seed::Count(seed))
                        .await
                        .unwrap()
                ),
                format!(
                    "{:?}",
                    redis
                        .adjust(&counter, delta, Seed::Count(seed))
                        .await
                        .unwrap()
                ),
            ),
            Op::Set(used) => (
                format!("{:?}", memory.set(&counter, used).await.unwrap()),
                format!("{:?}", redis.set(&counter, used).await.unwrap()),
            ),
            Op::Get => (
                format!("{:?}", memory.get(&counter).await.unwrap()),
                format!("{:?}", redis.get(&counter).await.unwrap()),
            ),
        };
        if left != right {
            return Err(format!("step {step} {op:?}: memory {left}, redis {right}"));
        }
        let (left, right) = (
            memory.get(&counter).await.unwrap(),
            redis.get(&counter).await.unwrap(),
        );
        if left != right {
            return Err(format!(
                "after step {step} {op:?}: memory {left:?}, redis {right:?}"
            ));
        }
    }
    Ok(())
}

#[test]
fn redis_usage_store_answers_as_the_memory_store_does() {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    static CASE: AtomicUsize = AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    };
    proptest!(config, |(items in any::<bool>(), ops in proptest::collection::vec(op(), 1..40))| {
        let prefix = format!("diff{}", CASE.fetch_add(1, Ordering::Relaxed));
        let outcome = runtime.block_on(run(&server, &prefix, items, &ops));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    });
}

/// One line of a hold in the differential of holds: which counter, its units, limit and seed,
/// and (for the pool) the grants it spills over to, by index and amount.
#[derive(Clone, Debug)]
struct LineSpec {
    counter: usize,
    units: u64,
    limit: Option<u64>,
    seed: Seed,
    grants: Vec<(usize, u64)>,
}

#[derive(Clone, Debug)]
enum HoldOp {
    Reserve(usize, Vec<LineSpec>),
    /// Spent units per line; fewer than the lines leave the rest at what they held.
    Commit(usize, Vec<u64>),
    Release(usize),
    Adjust(usize, i64),
    Set(usize, u64),
}

/// The counters of the differential of holds: a pool, its two grants, an item count and an
/// action of the same resource.
fn hold_counters() -> [Counter; 5] {
    [
        Counter::credits("jane", "ai"),
        Counter::grant("jane", "ai", "g1"),
        Counter::grant("jane", "ai", "g2"),
        Counter::items("jane", "tasks"),
        Counter::action("jane", "tasks", tower_plans::Action::Show),
    ]
}

fn limit() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![1 => Just(None), 3 => (0u64..20).prop_map(Some)]
}

fn pool_line() -> impl Strategy<Value = LineSpec> {
    let grants = prop_oneof![
        Just(vec![]),
        Just(vec![1]),
        Just(vec![2]),
        Just(vec![1, 2]),
        Just(vec![2, 1]),
    ];
    (0u64..14, limit(), 0u64..6, grants, 0u64..10, 0u64..10).prop_map(
        |(units, limit, seed, grants, first, second)| LineSpec {
            counter: 0,
            units,
            limit,
            seed: Seed::Count(seed),
            grants: grants.into_iter().zip([first, second]).collect(),
        },
    )
}

fn action_line() -> impl Strategy<Value = LineSpec> {
    let seed = prop_oneof![
        (0u64..4).prop_map(Seed::Count),
        (0u64..4).prop_map(Seed::Items)
    ];
    (3usize..5, 1u64..4, limit(), seed).prop_map(|(counter, units, limit, seed)| LineSpec {
        counter,
        units,
        limit,
        seed,
        grants: Vec::new(),
    })
}

fn hold_op() -> impl Strategy<Value = HoldOp> {
    let lines = prop_oneof![
        pool_line().prop_map(|line| vec![line]),
        action_line().prop_map(|line| vec![line]),
        (pool_line(), action_line()).prop_map(|(pool, action)| vec![pool, action]),
    ];
    prop_oneof![
        5 => (0usize..4, lines).prop_map(|(id, lines)| HoldOp::Reserve(id, lines)),
        3 => (0usize..4, proptest::collection::vec(0u64..30, 0..3))
            .prop_map(|(id, spent)| HoldOp::Commit(id, spent)),
        2 => (0usize..4).prop_map(HoldOp::Release),
        1 => (0usize..5, -6i64..6).prop_map(|(counter, delta)| HoldOp::Adjust(counter, delta)),
        1 => (0usize..5, 0u64..12).prop_map(|(counter, used)| HoldOp::Set(counter, used)),
    ]
}

async fn run_holds(server: &RedisServer, prefix: &str, ops: &[HoldOp]) -> Result<(), String> {
    let conn = connect(server).await.key_prefix(prefix);
    let redis = conn.usage_store();
    let memory = MemoryStore::new(Catalog::default());
    let counters = hold_counters();
    let ids: Vec<ReservationId> = (0..4).map(|_| ReservationId::new()).collect();
    let mut holds: Vec<Hold> = ids.iter().map(|id| Hold::new(*id)).collect();
    let lease = Duration::from_secs(600);
    for (step, op) in ops.iter().enumerate() {
        let (left, right) = match op {
            HoldOp::Reserve(id, lines) => {
                let mut hold = Hold::new(ids[*id]);
                for spec in lines {
                    let mut line = Line::new(counters[spec.counter].clone(), spec.units)
                        .limit(spec.limit)
                        .seed(spec.seed);
                    for (grant, amount) in &spec.grants {
                        line = line.grant(Spill::new(counters[*grant].clone(), *amount));
                    }
                    hold.push(line);
                }
                holds[*id] = hold;
                let hold = &holds[*id];
                (
                    format!("{:?}", memory.reserve(hold, lease).await.unwrap()),
                    format!("{:?}", redis.reserve(hold, lease).await.unwrap()),
                )
            }
            HoldOp::Commit(id, spent) => (
                format!("{:?}", memory.commit(&holds[*id], spent).await.unwrap()),
                format!("{:?}", redis.commit(&holds[*id], spent).await.unwrap()),
            ),
            HoldOp::Release(id) => (
                format!("{:?}", memory.release(&holds[*id]).await.unwrap()),
                format!("{:?}", redis.release(&holds[*id]).await.unwrap()),
            ),
            HoldOp::Adjust(counter, delta) => {
                let counter = &counters[*counter];
                (
                    format!("{:?}", memory.adjust(counter, *delta, Seed::Count(1)).await),
                    format!("{:?}", redis.adjust(counter, *delta, Seed::Count(1)).await),
                )
            }
            HoldOp::Set(counter, used) => {
                let counter = &counters[*counter];
                (
                    format!("{:?}", memory.set(counter, *used).await.unwrap()),
                    format!("{:?}", redis.set(counter, *used).await.unwrap()),
                )
            }
        };
        if left != right {
            return Err(format!("step {step} {op:?}: memory {left}, redis {right}"));
        }
        for counter in &counters {
            let (left, right) = (
                memory.get(counter).await.unwrap(),
                redis.get(counter).await.unwrap(),
            );
            if left != right {
                return Err(format!(
                    "after step {step} {op:?}, {counter}: memory {left:?}, redis {right:?}"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn redis_holds_of_several_lines_and_grants_answer_as_the_memory_store_does() {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    static CASE: AtomicUsize = AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in proptest::collection::vec(hold_op(), 1..40))| {
        let prefix = format!("holds{}", CASE.fetch_add(1, Ordering::Relaxed));
        let outcome = runtime.block_on(run_holds(&server, &prefix, &ops));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    });
}

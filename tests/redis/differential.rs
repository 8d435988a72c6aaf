//! The Redis usage store against the in-memory one: random sequences of operations on one
//! counter give the same answers in both (leases long enough never to end during a case).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use tower_plans::store::{Counter, ReservationId, Seed, UsageStoreExt};
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

//! Key routing on a Redis Cluster, seen by the masters themselves (`MONITOR`): every script of
//! the usage store names keys of one hash slot and runs on the master that serves it, for user
//! ids (and grant ids) that need escaping and for every kind of counter, a hold of several
//! lines and grants and the alert markers included, and every key of one user is in that
//! user's slot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tower_plans::catalog::Period;
use tower_plans::redis::driver as redis;
use tower_plans::redis::RedisPlanStore;
use tower_plans::store::{Counter, Hold, Line, ReservationId, Seed, Spill, UsageStoreExt};
use tower_plans::{Action, PlanStore, UsageStore};

use crate::cluster::*;
use crate::common::*;
use crate::keys::{hash_tag, TRICKY};

/// How many scripts the usage store has: reserve, commit, release, adjust, set, get, reset,
/// mark.
const SCRIPTS: usize = 8;

/// A command a master ran, as `MONITOR` shows it.
#[derive(Debug)]
pub struct Seen {
    /// The port of the master.
    pub port: u16,
    pub args: Vec<Vec<u8>>,
}

impl Seen {
    fn name(&self) -> String {
        String::from_utf8_lossy(&self.args[0]).to_uppercase()
    }

    fn text(&self, n: usize) -> String {
        String::from_utf8_lossy(&self.args[n]).into_owned()
    }

    /// The script and its keys, for `EVALSHA` and `EVAL`.
    pub fn script(&self) -> Option<(String, Vec<String>)> {
        let sha = match self.name().as_str() {
            "EVALSHA" => self.text(1),
            "EVAL" => redis::Script::new(&self.text(1)).get_hash().to_owned(),
            _ => return None,
        };
        let count: usize = self.text(2).parse().expect("a key count");
        let keys = (3..3 + count).map(|n| self.text(n)).collect();
        Some((sha, keys))
    }
}

/// `MONITOR` on every master of a cluster, collecting what each ran.
pub struct Monitors {
    seen: Arc<Mutex<Vec<Seen>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Monitors {
    /// Starts a monitor on each master.
    pub async fn start(cluster: &RedisCluster) -> Monitors {
        let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
        let mut tasks = Vec::new();
        for port in cluster.masters() {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
            // The monitor sends `MONITOR` itself.
            let monitor = client.get_async_monitor().await.unwrap();
            let seen = Arc::clone(&seen);
            tasks.push(tokio::spawn(async move {
                let mut lines = monitor.into_on_message::<String>();
                while let Some(line) = lines.next().await {
                    if let Some(args) = parse_monitor_line(&line) {
                        seen.lock().unwrap().push(Seen { port, args });
                    }
                }
            }));
        }
        Monitors { seen, tasks }
    }

    /// Sends a last command to each master through `plans` (a read of an unknown user, in
    /// that master's slots), waits until the monitors show them all (then they have shown
    /// everything before), stops the monitors and gives what they saw.
    pub async fn stop(self, cluster: &RedisCluster, plans: &RedisPlanStore) -> Vec<Seen> {
        let sentinels = users_on_each_master(cluster, "sentinel", 1);
        for users in sentinels.values() {
            assert!(plans.user(&users[0]).await.unwrap().is_none());
        }
        let seen = &self.seen;
        let shown = eventually(Duration::from_secs(10), || async {
            let seen = seen.lock().unwrap();
            sentinels.iter().all(|(&port, users)| {
                let key = user_key(&users[0]);
                seen.iter().any(|command| {
                    command.port == port && command.args.iter().any(|a| *a == key.as_bytes())
                })
            })
        })
        .await;
        assert!(
            shown.is_some(),
            "the monitors did not show the last commands"
        );
        for task in &self.tasks {
            task.abort();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_every_script_names_keys_of_one_slot_and_runs_on_its_master() {
    let cluster = RedisCluster::start();
    let masters = cluster.masters();
    let monitors = Monitors::start(&cluster).await;

    let conn = connect_cluster(&cluster).await;
    let usage = conn.usage_store();
    let plans = conn.plan_store();
    // The current month, on Redis's clock: a period's counts expire an hour after it ends.
    let (seconds, _): (u64, u64) = query(masters[0], &redis::cmd("TIME"));
    let month = Period::Month.window(seconds * 1000);
    for id in TRICKY {
        let record = format!(r#"{{"plan": "free", "name": {}}}"#, serde_json::json!(id));
        plans.set_user_json(id, &record).await.unwrap();
        assert!(plans.user(id).await.unwrap().is_some(), "{id:?}");
        for counter in [
            Counter::items(*id, "clients"),
            Counter::action(*id, "tasks", Action::Show),
            Counter::action(*id, "reports", Action::Create).in_period(month),
            Counter::credits(*id, "ai").in_period(month),
            Counter::grant(*id, "ai", *id),
        ] {
            let (kept, released) = (ReservationId::new(), ReservationId::new());
            let lease = Duration::from_secs(60);
            let reserve = usage.reserve_unit(&counter, Some(10), Seed::Count(1), kept, lease);
            assert!(reserve.await.unwrap().is_reserved(), "{id:?}");
            assert_eq!(
                usage.commit_unit(&counter, kept).await.unwrap(),
                2,
                "{id:?}"
            );
            let reserve = usage.reserve_unit(&counter, Some(10), Seed::Count(1), released, lease);
            assert!(reserve.await.unwrap().is_reserved(), "{id:?}");
            usage.release_unit(&counter, released).await.unwrap();
            assert_eq!(
                usage.adjust(&counter, 2, Seed::Count(0)).await.unwrap(),
                4,
                "{id:?}"
            );
            usage.set(&counter, 7).await.unwrap();
            let count = usage.get(&counter).await.unwrap().expect("a count");
            assert_eq!((count.used, count.held), (7, 0), "{id:?}");
            assert!(usage.mark(&counter, "alert:80%").await.unwrap(), "{id:?}");
            assert!(!usage.mark(&counter, "alert:80%").await.unwrap(), "{id:?}");
            usage.reset(&counter).await.unwrap();
        }
        // A whole hold: a period pool spilling over to a grant, and an action, in one script.
        let pool = Counter::credits(*id, "ai").in_period(month);
        let grant = Counter::grant(*id, "ai", *id);
        let images = Counter::action(*id, "images", Action::Create);
        let hold = |units| {
            Hold::new(ReservationId::new())
                .with(
                    Line::new(pool.clone(), units)
                        .limit(Some(4))
                        .grant(Spill::new(grant.clone(), 10)),
                )
                .with(Line::new(images.clone(), 1).limit(Some(5)))
        };
        let (kept, released) = (hold(6), hold(3));
        let lease = Duration::from_secs(60);
        assert!(usage.reserve(&kept, lease).await.unwrap().is_reserved());
        usage.commit(&kept, &[6, 1]).await.unwrap();
        assert!(usage.reserve(&released, lease).await.unwrap().is_reserved());
        usage.release(&released).await.unwrap();
        for (counter, used) in [(&pool, 4), (&grant, 2), (&images, 1)] {
            let count = usage.get(counter).await.unwrap().expect("a count");
            assert_eq!((count.used, count.held), (used, 0), "{id:?} {counter}");
            usage.reset(counter).await.unwrap();
        }
        plans.remove_user(id).await.unwrap();
    }

    let seen = monitors.stop(&cluster, &plans).await;
    let view = cluster.view();
    let mut slots: BTreeMap<String, u16> = BTreeMap::new();
    let mut slot_of = |key: &str| {
        *slots
            .entry(key.to_owned())
            .or_insert_with(|| cluster.keyslot(key))
    };

    // Every script names keys of one slot, and ran on the master that serves it.
    let mut scripts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut ran_on = BTreeSet::new();
    for command in &seen {
        let Some((sha, keys)) = command.script() else {
            continue;
        };
        assert!(!keys.is_empty(), "a script without keys: {command:?}");
        let slot = slot_of(&keys[0]);
        for key in &keys {
            assert_eq!(
                slot_of(key),
                slot,
                "{key} is not in the slot of {}",
                keys[0]
            );
        }
        let master = view
            .iter()
            .find(|line| line.is_master() && line.serves(slot))
            .expect("a master for the slot");
        assert_eq!(
            master.port, command.port,
            "slot {slot} ran elsewhere: {command:?}"
        );
        ran_on.insert(command.port);
        scripts
            .entry(sha)
            .or_default()
            .insert(hash_tag(&keys[0]).to_owned());
    }
    assert_eq!(scripts.len(), SCRIPTS, "one SHA1 per script: {scripts:?}");
    for (sha, tags) in &scripts {
        assert_eq!(
            tags.len(),
            TRICKY.len(),
            "script {sha} ran for every user: {tags:?}"
        );
    }
    assert_eq!(
        ran_on,
        masters.iter().copied().collect(),
        "the scripts ran on every master"
    );

    // Every key of a user (the record, the counts, the reservations) is in the user's slot.
    let mut tags: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for command in &seen {
        for arg in &command.args[1..] {
            let arg = String::from_utf8_lossy(arg);
            if arg.starts_with("test:{") {
                let slot = slot_of(&arg);
                tags.entry(hash_tag(&arg).to_owned())
                    .or_default()
                    .insert(slot);
            }
        }
    }
    assert!(tags.len() >= TRICKY.len(), "{tags:?}");
    for (tag, slots) in &tags {
        assert_eq!(
            slots.len(),
            1,
            "the keys of {{{tag}}} are in slots {slots:?}"
        );
    }
}

/// The arguments of a `MONITOR` line: `<time> [<db> <client>] "arg" "arg" ...`, each argument
/// quoted, with `\\`, `\"`, `\n`, `\r`, `\t`, `\a`, `\b` and `\xHH` escapes.
pub fn parse_monitor_line(line: &str) -> Option<Vec<Vec<u8>>> {
    let rest = &line[line.find("] ")? + 2..];
    let bytes = rest.as_bytes();
    let mut args = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        i += 1;
        let mut arg = Vec::new();
        while i < bytes.len() && bytes[i] != b'"' {
            if bytes[i] == b'\\' && i + 1 < bytes.len() {
                i += 1;
                match bytes[i] {
                    b'n' => arg.push(b'\n'),
                    b'r' => arg.push(b'\r'),
                    b't' => arg.push(b'\t'),
                    b'a' => arg.push(7),
                    b'b' => arg.push(8),
                    b'x' => {
                        let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                        arg.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 2;
                    }
                    other => arg.push(other),
                }
            } else {
                arg.push(bytes[i]);
            }
            i += 1;
        }
        args.push(arg);
        i += 1;
    }
    (!args.is_empty()).then_some(args)
}

#[test]
fn monitor_lines_are_read_with_their_escapes() {
    let line = r#"1700000000.123456 [0 127.0.0.1:5000] "EVALSHA" "ab\"c" "1" "k\\ey" "\xc3\xab\n""#;
    assert_eq!(
        parse_monitor_line(line).unwrap(),
        vec![
            b"EVALSHA".to_vec(),
            b"ab\"c".to_vec(),
            b"1".to_vec(),
            b"k\\ey".to_vec(),
            "ë\n".as_bytes().to_vec(),
        ]
    );
    assert!(parse_monitor_line("OK").is_none());
}

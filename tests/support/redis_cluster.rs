//! A real Redis Cluster for the Redis tests: three masters with one replica each, six
//! `redis-server` processes on free loopback ports, each in its own directory under one
//! temporary directory, joined with `redis-cli --cluster create`, and stopped (processes killed,
//! directory removed) on drop.
//!
//! The nodes run with a short `cluster-node-timeout` (a failed master's replica takes over in a
//! few seconds), `cluster-require-full-coverage no` (the other masters keep serving while a
//! master is down), `cluster-replica-validity-factor 0` (a replica always may take over) and
//! without persistence.
//!
//! Without `redis-server` or `redis-cli` on the `PATH`, or when the cluster does not come up,
//! starting one panics with a message that says why: the cluster tests never pass by skipping.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tower_plans::redis::driver as redis;

/// How long a node may miss the others' pings before they count it as failed.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(2000);

/// How many processes the cluster runs: three masters, one replica each.
const NODES: usize = 6;

/// How long starting the cluster, or a failover, may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// A running cluster of a test.
pub struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

/// One `redis-server` of the cluster.
struct Node {
    port: u16,
    bus_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// One line of `CLUSTER NODES`, as the harness reads it (independently of the crate).
#[derive(Clone, Debug)]
pub struct NodeLine {
    pub id: String,
    pub port: u16,
    pub flags: Vec<String>,
    pub master_id: Option<String>,
    pub slots: Vec<(u16, u16)>,
}

impl NodeLine {
    pub fn is_master(&self) -> bool {
        self.flags.iter().any(|flag| flag == "master")
    }

    pub fn is_failed(&self) -> bool {
        self.flags
            .iter()
            .any(|flag| flag == "fail" || flag == "fail?")
    }

    pub fn serves(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|&(start, end)| start <= slot && slot <= end)
    }
}

impl RedisCluster {
    /// Starts six nodes, joins them into three masters with one replica each, and waits until
    /// every node says `cluster_state:ok`, knows all six, and every replica is in sync.
    ///
    /// # Panics
    /// When `redis-server` or `redis-cli` is not installed, or the cluster does not come up.
    pub fn start() -> RedisCluster {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "tower-plans-cluster-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory for the cluster");
        let mut cluster = RedisCluster {
            dir,
            nodes: Vec::new(),
        };
        for n in 0..NODES {
            let node_dir = cluster.dir.join(format!("node-{n}"));
            std::fs::create_dir_all(&node_dir).expect("create a node's directory");
            let node = Node::start(node_dir);
            cluster.nodes.push(node);
        }
        cluster.create();
        cluster.wait_until_ready();
        cluster
    }

    /// The URLs of the running nodes.
    pub fn urls(&self) -> Vec<String> {
        self.running().map(url).collect()
    }

    /// The ports of the running nodes.
    pub fn running(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .filter(|node| node.child.is_some())
            .map(|node| node.port)
    }

    /// The cluster as a running node sees it.
    pub fn view(&self) -> Vec<NodeLine> {
        let port = self.running().next().expect("a running node");
        self.view_from(port)
    }

    /// The cluster as the node on `port` sees it.
    pub fn view_from(&self, port: u16) -> Vec<NodeLine> {
        let text: String = query(port, redis::cmd("CLUSTER").arg("NODES"));
        parse_nodes(&text)
    }

    /// The ports of the masters that serve slots, sorted.
    pub fn masters(&self) -> Vec<u16> {
        let mut masters: Vec<u16> = self
            .view()
            .into_iter()
            .filter(|line| line.is_master() && !line.is_failed() && !line.slots.is_empty())
            .map(|line| line.port)
            .collect();
        masters.sort_unstable();
        masters
    }

    /// The slot of `key`, as the cluster computes it.
    pub fn keyslot(&self, key: &str) -> u16 {
        let port = self.running().next().expect("a running node");
        query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
    }

    /// The port of the master that serves `key`.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot = self.keyslot(key);
        self.view()
            .into_iter()
            .find(|line| line.is_master() && line.serves(slot))
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
            .port
    }

    /// The port of the replica of the master on `port`.
    pub fn replica_of(&self, port: u16) -> u16 {
        let view = self.view();
        let master = view
            .iter()
            .find(|line| line.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"));
        view.iter()
            .find(|line| line.master_id.as_deref() == Some(master.id.as_str()))
            .unwrap_or_else(|| panic!("the master on {port} has no replica"))
            .port
    }

    /// Waits until a replica of the node on `port` has acknowledged every write the node made
    /// so far: its offset in the node's `INFO replication` reaches the node's own. (`WAIT` on a
    /// connection of its own would not do: it waits only for that connection's writes, and a
    /// replica that had just come online, still applying the writes buffered during its first
    /// sync, lost them when its master was killed.)
    pub fn sync_replicas(&self, port: u16) {
        let info = |port| -> String { query(port, redis::cmd("INFO").arg("replication")) };
        let field = |line: &str, name: &str| -> Option<u64> {
            line.split([':', ','])
                .find_map(|part| part.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
        };
        let target = info(port)
            .lines()
            .find_map(|line| {
                line.strip_prefix("master_repl_offset:")?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("the node on {port} gives no replication offset"));
        let deadline = Instant::now() + PATIENCE;
        loop {
            let acked = info(port)
                .lines()
                .filter(|line| line.starts_with("slave") && line.contains("state=online"))
                .filter_map(|line| field(line, "offset"))
                .max();
            if acked.is_some_and(|acked| acked >= target) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no replica of {port} acknowledged offset {target} within {PATIENCE:?}: {acked:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the node on `port` at once (SIGKILL), as a crash would.
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"));
        node.stop();
    }

    /// Waits until the slots of the master on `dead` (killed) are served by another node, as
    /// every running node sees it, and every running node says `cluster_state:ok`. Answers the
    /// port of the new master.
    pub fn wait_for_failover(&self, dead: u16, slot: u16) -> u16 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let masters: Vec<Option<u16>> = self
                .running()
                .map(|port| {
                    self.view_from(port)
                        .into_iter()
                        .find(|line| line.is_master() && !line.is_failed() && line.serves(slot))
                        .map(|line| line.port)
                })
                .collect();
            let agreed = masters.first().copied().flatten();
            if let Some(new) = agreed {
                if new != dead
                    && masters.iter().all(|master| *master == Some(new))
                    && self.running().all(state_ok)
                {
                    return new;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no replica took over slot {slot} from {dead} within {PATIENCE:?}: {masters:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many subscribers `channel` has on each running node (`PUBSUB NUMSUB`).
    pub fn subscribers(&self, channel: &str) -> Vec<(u16, i64)> {
        self.running()
            .map(|port| {
                let (_, count): (String, i64) =
                    query(port, redis::cmd("PUBSUB").arg("NUMSUB").arg(channel));
                (port, count)
            })
            .collect()
    }

    /// `redis-cli --cluster create`: the first three nodes become masters.
    fn create(&self) {
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &self.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let output = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output();
        let output = match output {
            Ok(output) => output,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-cli is not installed: the cluster tests start a real cluster and never \
                 skip. Install it with `apt-get install -y redis-server` (Debian/Ubuntu)."
            ),
            Err(error) => panic!("could not run redis-cli --cluster create: {error}"),
        };
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed with {}:\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Waits until every node says `cluster_state:ok`, sees three masters that serve slots and
    /// one replica of each, and every replica is in sync with its master.
    fn wait_until_ready(&self) {
        let deadline = Instant::now() + PATIENCE;
        while !self.nodes.iter().all(|node| self.is_ready(node.port)) {
            assert!(
                Instant::now() < deadline,
                "the cluster in {} did not become ready within {PATIENCE:?}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn is_ready(&self, port: u16) -> bool {
        let Ok(text) = try_query::<String>(port, redis::cmd("CLUSTER").arg("NODES")) else {
            return false;
        };
        let view = parse_nodes(&text);
        let masters: Vec<&NodeLine> = view
            .iter()
            .filter(|line| line.is_master() && !line.slots.is_empty())
            .collect();
        let paired = masters.iter().all(|master| {
            view.iter()
                .filter(|line| line.master_id.as_deref() == Some(master.id.as_str()))
                .count()
                == 1
        });
        let Some(me) = view
            .iter()
            .find(|line| line.flags.iter().any(|f| f == "myself"))
        else {
            return false;
        };
        let in_sync = me.is_master()
            || try_query::<String>(port, redis::cmd("INFO").arg("replication"))
                .is_ok_and(|info| info.contains("master_link_status:up"));
        view.len() == NODES && masters.len() == 3 && paired && in_sync && state_ok(port)
    }
}

impl Node {
    /// Starts a node on free ports, trying other ports when the chosen ones were taken.
    fn start(dir: PathBuf) -> Node {
        let mut last = String::new();
        for _ in 0..5 {
            let (port, bus_port) = free_ports();
            let mut node = Node {
                port,
                bus_port,
                dir: dir.clone(),
                child: None,
            };
            match node.spawn() {
                Ok(()) => return node,
                Err(error) => last = error,
            }
        }
        panic!(
            "could not start a cluster node in {}: {last}",
            dir.display()
        );
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--cluster-port", &self.bus_port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args([
                "--cluster-node-timeout",
                &NODE_TIMEOUT.as_millis().to_string(),
            ])
            .args(["--cluster-require-full-coverage", "no"])
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--save", "", "--appendonly", "no"])
            // A replica's first sync starts at once, rather than after 5 seconds.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--daemonize", "no", "--loglevel", "notice"])
            .args(["--logfile", "redis.log", "--dir"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed: the cluster tests start a real cluster and \
                 never skip. Install it with `apt-get install -y redis-server` (Debian/Ubuntu)."
            ),
            Err(error) => panic!("could not start redis-server: {error}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if try_query::<String>(self.port, &redis::cmd("PING")).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "redis-server exited at start with {status}: {}",
                        log_tail(&self.dir)
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        Err(format!(
            "redis-server did not answer on port {} within 10 seconds: {}",
            self.port,
            log_tail(&self.dir)
        ))
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Two loopback ports that were free a moment ago: the node's and its cluster bus's.
fn free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let (a, b) = (bind(), bind());
    let port = |listener: &TcpListener| listener.local_addr().expect("a local address").port();
    (port(&a), port(&b))
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

/// Runs `cmd` on the node on `port`, panicking when it fails.
pub fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> T {
    try_query(port, cmd).unwrap_or_else(|error| {
        let words: Vec<String> = cmd
            .args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                redis::Arg::Cursor => "<cursor>".to_owned(),
            })
            .collect();
        panic!("`{}` on port {port}: {error}", words.join(" "))
    })
}

fn try_query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(url(port))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    cmd.query(&mut conn)
}

fn state_ok(port: u16) -> bool {
    try_query::<String>(port, redis::cmd("CLUSTER").arg("INFO"))
        .is_ok_and(|info| info.contains("cluster_state:ok"))
}

/// The end of a node's log, for a message.
fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// `CLUSTER NODES`: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch>
/// <link> <slot> ...`.
fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            let endpoint = fields[1].split(['@', ',']).next()?;
            let port = endpoint.rsplit_once(':')?.1.parse().ok()?;
            let slots = fields[8..]
                .iter()
                .filter(|slot| !slot.starts_with('['))
                .filter_map(|slot| match slot.split_once('-') {
                    Some((start, end)) => Some((start.parse().ok()?, end.parse().ok()?)),
                    None => {
                        let slot = slot.parse().ok()?;
                        Some((slot, slot))
                    }
                })
                .collect();
            Some(NodeLine {
                id: fields[0].to_owned(),
                port,
                flags: fields[2].split(',').map(str::to_owned).collect(),
                master_id: (fields[3] != "-").then(|| fields[3].to_owned()),
                slots,
            })
        })
        .collect()
}

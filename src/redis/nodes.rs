//! [`ClusterNodes`]: the nodes of a Redis Cluster that the invalidator may subscribe on, read from
//! `CLUSTER NODES`.

use std::hash::BuildHasher;
use std::sync::Arc;

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{ConnectionAddr, ConnectionInfo, RedisResult};

/// The address of one node, as the cluster announces it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Node {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Where the invalidator of a cluster subscribes: any node carries every `PUBLISH` of the
/// cluster, so it picks a healthy one from the cluster's current view, and the nodes it was
/// opened with when the cluster cannot be asked.
#[derive(Clone)]
pub(crate) struct ClusterNodes {
    conn: ClusterConnection,
    /// The nodes the connection was opened with; the first one's settings (credentials,
    /// database, TLS) are used for every node.
    seeds: Arc<[ConnectionInfo]>,
}

impl ClusterNodes {
    pub(crate) fn new(conn: ClusterConnection, seeds: Arc<[ConnectionInfo]>) -> Self {
        Self { conn, seeds }
    }

    /// The nodes to try, in order: the healthy nodes of the cluster's view, from a place that
    /// differs from one instance to the next (so that the instances' subscriptions spread over
    /// the nodes), then the seeds.
    pub(crate) async fn candidates(&self, attempt: u64) -> Vec<Node> {
        let mut nodes = match self.healthy().await {
            Ok(nodes) => nodes,
            Err(error) => {
                tracing::debug!(%error, "could not read the cluster's nodes; trying the seeds");
                Vec::new()
            }
        };
        if !nodes.is_empty() {
            let start = spread(attempt) % nodes.len();
            nodes.rotate_left(start);
        }
        for seed in self.seeds.iter() {
            if let Some(node) = tcp_node(&seed.addr) {
                if !nodes.contains(&node) {
                    nodes.push(node);
                }
            }
        }
        nodes
    }

    /// The healthy nodes of the cluster, as one node sees them: known, reachable from it and
    /// not failing, masters and replicas alike, sorted.
    pub(crate) async fn healthy(&self) -> RedisResult<Vec<Node>> {
        Ok(parse_cluster_nodes(&self.cluster_nodes().await?))
    }

    /// Whether the cluster, as one node (any) sees it, says that `node` left it (see
    /// [`has_left`]).
    pub(crate) async fn has_left(&self, node: &Node) -> RedisResult<bool> {
        Ok(has_left(&self.cluster_nodes().await?, node))
    }

    /// `CLUSTER NODES`, asked of any node.
    async fn cluster_nodes(&self) -> RedisResult<String> {
        let mut conn = self.conn.clone();
        let mut command = redis::cmd("CLUSTER");
        command.arg("NODES");
        let any = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        let answer = conn.route_command(&command, any).await?;
        redis::FromRedisValue::from_owned_redis_value(answer)
    }

    /// How to connect to `node`: its address with the first seed's settings.
    pub(crate) fn connection_info(&self, node: &Node) -> ConnectionInfo {
        node_info(self.seeds.first(), node)
    }
}

/// `node`'s address with `seed`'s settings (credentials, database, TLS).
fn node_info(seed: Option<&ConnectionInfo>, node: &Node) -> ConnectionInfo {
    let Some(seed) = seed else {
        return ConnectionInfo {
            addr: ConnectionAddr::Tcp(node.host.clone(), node.port),
            redis: redis::RedisConnectionInfo::default(),
        };
    };
    let addr = match &seed.addr {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: node.host.clone(),
            port: node.port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(node.host.clone(), node.port),
    };
    ConnectionInfo {
        addr,
        redis: seed.redis.clone(),
    }
}

/// A number that differs between instances and attempts, to start the list of nodes at.
fn spread(attempt: u64) -> usize {
    let hash = std::collections::hash_map::RandomState::new().hash_one(attempt);
    // Truncation is fine: only the remainder by the number of nodes is used.
    hash as usize
}

fn tcp_node(addr: &ConnectionAddr) -> Option<Node> {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => Some(Node {
            host: host.clone(),
            port: *port,
        }),
        _ => None,
    }
}

/// The healthy nodes of a `CLUSTER NODES` answer, sorted. A node flagged `fail`, `fail?`,
/// `handshake` or `noaddr`, or whose link is not `connected`, is left out.
pub(crate) fn parse_cluster_nodes(text: &str) -> Vec<Node> {
    let mut nodes: Vec<Node> = text
        .lines()
        .filter_map(parse_line)
        .filter(|line| {
            let unhealthy = line
                .flags
                .split(',')
                .any(|flag| matches!(flag, "fail" | "fail?" | "handshake" | "noaddr"));
            !unhealthy && line.link == "connected"
        })
        .map(|line| line.node)
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// Whether a `CLUSTER NODES` answer says that `node` has left the cluster: it is not listed, or
/// the cluster agreed that it failed (`fail`; a suspicion, `fail?`, is not enough). The answer
/// of `node` itself never does.
pub(crate) fn has_left(text: &str, node: &Node) -> bool {
    let mut lines = text.lines().filter_map(parse_line);
    !lines.any(|line| {
        // A node's view of itself says nothing of whether the others still count it in.
        let flags = || line.flags.split(',');
        line.node == *node
            && (flags().any(|flag| flag == "myself") || !flags().any(|flag| flag == "fail"))
    })
}

/// One line of `CLUSTER NODES`: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent>
/// <pong-recv> <config-epoch> <link-state> <slot> ...`; `None` for a line that does not read as
/// a node with an address.
struct Line<'a> {
    node: Node,
    flags: &'a str,
    link: &'a str,
}

fn parse_line(line: &str) -> Option<Line<'_>> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [_id, address, flags, _master, _ping, _pong, _epoch, link, ..] = fields[..] else {
        return None;
    };
    let endpoint = address.split(['@', ',']).next()?;
    let (host, port) = endpoint.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if host.is_empty() || port == 0 {
        return None;
    }
    Some(Line {
        node: Node {
            host: host.to_owned(),
            port,
        },
        flags,
        link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: u16) -> Node {
        Node {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn healthy_nodes_are_read_from_cluster_nodes() {
        let text = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,node-4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master,fail - 1426238316232 1426238316232 3 disconnected 10923-16383
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 slave,fail? 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238316232 5 connected
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:30006@31006 slave 292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 0 1426238317741 6 disconnected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
a1b2 :0@0 noaddr,master - 0 0 0 disconnected
b2c3 127.0.0.1:30009@31009 handshake - 0 0 0 connected
c3d4 ::1:30010@31010 master - 0 0 7 connected
too short
";
        assert_eq!(
            parse_cluster_nodes(text),
            vec![
                node("127.0.0.1", 30001),
                node("127.0.0.1", 30002),
                node("127.0.0.1", 30004),
                node("::1", 30010),
            ]
        );
        assert!(parse_cluster_nodes("").is_empty());
        assert!(!has_left(text, &node("127.0.0.1", 30001)));
        // Suspected by one node only: not gone yet.
        assert!(!has_left(text, &node("127.0.0.1", 30005)));
        assert!(has_left(text, &node("127.0.0.1", 30003)));
        assert!(has_left(text, &node("127.0.0.1", 30099)));
        let forgotten = "a1 127.0.0.1:30001@31001 myself,master,fail - 0 0 1 connected 0-5460";
        assert!(!has_left(forgotten, &node("127.0.0.1", 30001)));
        assert!(has_left(forgotten, &node("127.0.0.1", 30002)));
        assert!(parse_cluster_nodes("x 127.0.0.1:notaport@1 master - 0 0 1 connected").is_empty());
    }

    #[test]
    fn a_node_takes_the_first_seeds_settings() {
        let seed: ConnectionInfo = "redis://user:secret@10.0.0.1:7000/".parse().unwrap();
        let info = node_info(Some(&seed), &node("10.0.0.2", 7001));
        assert_eq!(info.addr, ConnectionAddr::Tcp("10.0.0.2".to_owned(), 7001));
        assert_eq!(info.redis.username.as_deref(), Some("user"));
        assert_eq!(info.redis.password.as_deref(), Some("secret"));
        let tls = ConnectionInfo {
            addr: ConnectionAddr::TcpTls {
                host: "10.0.0.1".to_owned(),
                port: 7000,
                insecure: true,
                tls_params: None,
            },
            redis: redis::RedisConnectionInfo::default(),
        };
        let info = node_info(Some(&tls), &node("10.0.0.3", 7002));
        assert!(matches!(
            info.addr,
            ConnectionAddr::TcpTls { ref host, port: 7002, insecure: true, .. } if host == "10.0.0.3"
        ));
        let info = node_info(None, &node("10.0.0.4", 7003));
        assert_eq!(info.addr, ConnectionAddr::Tcp("10.0.0.4".to_owned(), 7003));
    }
}

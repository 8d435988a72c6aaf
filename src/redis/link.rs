//! [`Link`]: what the stores and the invalidator send their commands over, one Redis or a
//! cluster, and [`LuaScript`]: a script sent by its SHA1, routed by its first key.

use redis::aio::{ConnectionLike, ConnectionManager};
#[cfg(feature = "redis-cluster")]
use redis::{
    cluster_async::ClusterConnection,
    cluster_routing::{RoutingInfo, SingleNodeRoutingInfo},
};
use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisFuture, RedisResult, Script, Value};

/// The connection of the stores and of the invalidator's publishing: one Redis (a
/// [`ConnectionManager`]) or, with the `redis-cluster` feature, a cluster, whose client sends
/// every command to the node that serves its first key and follows the cluster as it changes.
///
/// Cloning is cheap: clones share the connection.
#[derive(Clone)]
pub(crate) enum Link {
    /// One Redis.
    Single(ConnectionManager),
    /// A Redis Cluster.
    #[cfg(feature = "redis-cluster")]
    Cluster(ClusterConnection),
}

impl From<ConnectionManager> for Link {
    fn from(manager: ConnectionManager) -> Self {
        Link::Single(manager)
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::Single(manager) => manager.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Link::Cluster(cluster) => cluster.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Single(manager) => manager.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Link::Cluster(cluster) => cluster.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(manager) => manager.get_db(),
            #[cfg(feature = "redis-cluster")]
            Link::Cluster(cluster) => cluster.get_db(),
        }
    }
}

impl Link {
    /// Publishes `payload` on the pub/sub `channel`, answering how many subscribers got it (on a
    /// cluster, those of the node that took it).
    ///
    /// A cluster carries a `PUBLISH` to the subscribers of every node, whichever node takes it,
    /// so it goes to any reachable node rather than to the one that serves the channel name's
    /// slot: publishing does not wait for one shard's failover.
    pub(crate) async fn publish(&mut self, channel: &str, payload: &str) -> RedisResult<i64> {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(channel).arg(payload);
        match self {
            Link::Single(manager) => publish.query_async(manager).await,
            #[cfg(feature = "redis-cluster")]
            Link::Cluster(cluster) => {
                let any = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                let answer = cluster.route_command(&publish, any).await?;
                i64::from_owned_redis_value(answer)
            }
        }
    }

    /// Runs `writes`, each a command on one key, answering nothing. On one Redis they are one
    /// transaction. A cluster has no transaction across hash slots, and the keys of different
    /// users are in different slots: there each command is sent on its own, all at once, and
    /// some may be applied when another fails.
    pub(crate) async fn write_all(&mut self, writes: Vec<Cmd>) -> RedisResult<()> {
        match self {
            Link::Single(manager) => {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for write in writes {
                    pipe.add_command(write).ignore();
                }
                pipe.query_async(manager).await
            }
            #[cfg(feature = "redis-cluster")]
            Link::Cluster(cluster) => {
                let sends = writes.into_iter().map(|write| {
                    let mut cluster = cluster.clone();
                    async move { write.query_async::<()>(&mut cluster).await }
                });
                futures::future::try_join_all(sends).await.map(drop)
            }
        }
    }
}

/// A Lua script, sent with `EVALSHA` and, when the node that serves its first key does not
/// have it yet (a restarted node, a replica just promoted), with `EVAL` and its body, to the
/// same node, which keeps it for the next `EVALSHA`.
///
/// A script names every key it touches in `KEYS`, and they all share the hash slot of the first,
/// so that a cluster runs it on one node.
pub(crate) struct LuaScript {
    script: Script,
    code: String,
}

impl LuaScript {
    /// The script whose source is `code`.
    pub(crate) fn new(code: String) -> Self {
        Self {
            script: Script::new(&code),
            code,
        }
    }

    /// An invocation without keys or arguments yet.
    pub(crate) fn prepare_invoke(&self) -> Invocation<'_> {
        Invocation {
            script: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// One call of a [`LuaScript`]: its keys (`KEYS`) and arguments (`ARGV`).
pub(crate) struct Invocation<'a> {
    script: &'a LuaScript,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Invocation<'_> {
    /// Adds a key (`KEYS[n]`); the first decides the node of a cluster.
    pub(crate) fn key(&mut self, key: impl redis::ToRedisArgs) -> &mut Self {
        key.write_redis_args(&mut self.keys);
        self
    }

    /// Adds an argument (`ARGV[n]`).
    pub(crate) fn arg(&mut self, arg: impl redis::ToRedisArgs) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    /// Runs the script on `link`: `EVALSHA`, then `EVAL` when Redis does not know the script.
    pub(crate) async fn invoke_async<T: FromRedisValue>(&self, link: &mut Link) -> RedisResult<T> {
        match self
            .command("EVALSHA", self.script.script.get_hash())
            .query_async(link)
            .await
        {
            Err(error) if error.kind() == ErrorKind::NoScriptError => {
                self.command("EVAL", &self.script.code)
                    .query_async(link)
                    .await
            }
            result => result,
        }
    }

    /// `EVALSHA sha` or `EVAL code`, then the keys and the arguments. A cluster client routes
    /// both by their first key.
    fn command(&self, name: &str, script: &str) -> Cmd {
        let mut cmd = redis::cmd(name);
        cmd.arg(script).arg(self.keys.len());
        for key in &self.keys {
            cmd.arg(key.as_slice());
        }
        for arg in &self.args {
            cmd.arg(arg.as_slice());
        }
        cmd
    }
}

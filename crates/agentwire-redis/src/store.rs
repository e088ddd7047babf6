//! Where commands go: one Redis (a reconnecting multiplexed connection) or a Redis Cluster (the
//! redis crate's async cluster client, which follows `MOVED`/`ASK` and refreshes its slot map
//! after a failover).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::RedisBrokerError;

/// How long one Redis command may take before it counts as a failure.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// The URL scheme of a Redis Cluster: `redis+cluster://host1:port,host2:port`.
pub(crate) const CLUSTER_SCHEME: &str = "redis+cluster://";

/// A broker URL, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One Redis (`redis://`, `rediss://`, `redis+unix://`).
    Single(String),
    /// Seed nodes of a cluster, each as a `redis://` URL.
    Cluster(Vec<String>),
}

impl Target {
    /// Parses a broker URL; `redis+cluster://[user:pass@]h1:p1,h2:p2` lists seed nodes.
    pub(crate) fn parse(url: &str) -> Result<Target, RedisBrokerError> {
        let invalid = |cause: &str| RedisBrokerError::InvalidUrl {
            url: url.to_owned(),
            cause: cause.to_owned(),
        };
        let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) else {
            return Ok(Target::Single(url.to_owned()));
        };
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (format!("{auth}@"), hosts),
            None => (String::new(), rest),
        };
        let hosts = hosts.trim_end_matches('/');
        let seeds: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{auth}{h}"))
            .collect();
        if seeds.is_empty() {
            return Err(invalid(
                "no cluster node listed (redis+cluster://host:port,host:port)",
            ));
        }
        if hosts.contains('/') || hosts.contains('?') {
            return Err(invalid("a cluster URL takes no database or options"));
        }
        Ok(Target::Cluster(seeds))
    }
}

/// The command connection: cheap to clone, reconnects by itself.
#[derive(Clone)]
pub(crate) enum Store {
    /// One Redis.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl Store {
    /// Connects to one Redis.
    pub(crate) async fn single(client: redis::Client) -> redis::RedisResult<Store> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        Ok(Store::Single(
            ConnectionManager::new_with_config(client, config).await?,
        ))
    }

    /// Connects to a cluster through its seed nodes.
    pub(crate) async fn cluster(seeds: &[String]) -> redis::RedisResult<Store> {
        let client = cluster_builder(seeds).build()?;
        Ok(Store::Cluster(client.get_async_connection().await?))
    }
}

/// The cluster client's settings shared by the command and the pub/sub connections. A few
/// retries with short waits ride out a failover (`CLUSTERDOWN`, a dead primary) without holding
/// an append for long.
pub(crate) fn cluster_builder(seeds: &[String]) -> redis::cluster::ClusterClientBuilder {
    ClusterClient::builder(seeds.to_vec())
        .connection_timeout(COMMAND_TIMEOUT)
        .response_timeout(COMMAND_TIMEOUT)
        .retries(6)
        .min_retry_wait(50)
        .max_retry_wait(500)
}

/// The pub/sub client of a cluster: RESP3, pushes (shard messages, subscription confirmations,
/// disconnections) to `pushes`.
pub(crate) async fn cluster_pubsub(
    seeds: &[String],
    pushes: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
) -> redis::RedisResult<ClusterConnection> {
    cluster_builder(seeds)
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(pushes)
        .build()?
        .get_async_connection()
        .await
}

impl ConnectionLike for Store {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Store::Single(c) => c.req_packed_command(cmd),
            Store::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Store::Single(c) => c.req_packed_commands(cmd, offset, count),
            Store::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Store::Single(c) => c.get_db(),
            Store::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_list_their_seed_nodes() {
        assert_eq!(
            Target::parse("redis+cluster://10.0.0.1:7000,10.0.0.2:7001").unwrap(),
            Target::Cluster(vec![
                "redis://10.0.0.1:7000".into(),
                "redis://10.0.0.2:7001".into()
            ])
        );
        assert_eq!(
            Target::parse("redis+cluster://:secret@h1:7000,h2:7000/").unwrap(),
            Target::Cluster(vec![
                "redis://:secret@h1:7000".into(),
                "redis://:secret@h2:7000".into()
            ])
        );
        assert_eq!(
            Target::parse("redis://127.0.0.1:6379/2").unwrap(),
            Target::Single("redis://127.0.0.1:6379/2".into())
        );
        assert!(Target::parse("redis+cluster://").is_err());
        assert!(Target::parse("redis+cluster://h1:7000/3").is_err());
    }
}

//! Private `redis-server` processes on free ports — a single server or a 3-primary, 3-replica
//! cluster — killed by PID (and their directories removed) when dropped; Redis's own counters
//! (`INFO commandstats`, `INFO cpu`). Standard library only, so the workspace tests can include
//! it too (`#[path]`). Whether Redis and `redis-server` are there is the harness's question
//! (`tests/harness`: `shared_redis_ready`, `redis_server_ready`, `redis_cluster_ready`).
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A raw RESP command over TCP (no client library), for setup and checks.
pub fn raw(port: u16, args: &[&str]) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(cmd.as_bytes()).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let started = Instant::now();
    loop {
        let n = s.read(&mut buf).ok()?;
        out.extend_from_slice(&buf[..n]);
        if n == 0 || complete(&out) || started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Whether a simple or bulk reply is complete.
fn complete(reply: &[u8]) -> bool {
    match reply.first() {
        Some(b'$') => {
            let Some(end) = reply.windows(2).position(|w| w == b"\r\n") else {
                return false;
            };
            let len: i64 = std::str::from_utf8(&reply[1..end])
                .unwrap()
                .parse()
                .unwrap();
            len < 0 || reply.len() >= end + 2 + len as usize + 2
        }
        Some(_) => reply.ends_with(b"\r\n"),
        None => false,
    }
}

/// A free port whose cluster bus port (+10000) is free too.
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port < 55000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

/// One `redis-server` process, killed (by its PID) with its directory removed when dropped.
pub struct RedisProc {
    pub port: u16,
    child: Child,
    dir: PathBuf,
    cluster: bool,
}

impl RedisProc {
    pub fn start(cluster: bool) -> RedisProc {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("agentwire-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Self::spawn(port, &dir, cluster);
        let proc = RedisProc {
            port,
            child,
            dir,
            cluster,
        };
        proc.wait_up();
        proc
    }

    /// Starts the server again on its port and directory (a cluster node rejoins with its
    /// `nodes.conf`, as a replica when it was failed over).
    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(self.port, &self.dir, self.cluster);
        self.wait_up();
    }

    fn wait_up(&self) {
        let started = Instant::now();
        while raw(self.port, &["PING"]).is_none_or(|r| !r.starts_with("+PONG")) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server on {} not up",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(port: u16, dir: &std::path::Path, cluster: bool) -> Child {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                .args(["--cluster-config-file", "nodes.conf"]);
        }
        cmd.spawn().expect("redis-server starts")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if self.child.try_wait().is_ok_and(|status| status.is_none()) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.child.id().to_string()])
                .status();
        }
        let _ = self.child.wait();
    }

    /// Calls per command since the last `CONFIG RESETSTAT`.
    pub fn command_calls(&self) -> BTreeMap<String, u64> {
        let info = raw(self.port, &["INFO", "commandstats"]).unwrap_or_default();
        info.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("cmdstat_")?;
                let (name, stats) = rest.split_once(':')?;
                let calls = stats
                    .strip_prefix("calls=")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .collect()
    }

    /// Microseconds spent running scripts (`EVALSHA`/`EVAL` in `INFO commandstats`, which
    /// include the commands they call) since the last `CONFIG RESETSTAT`: Redis's work on the
    /// appends without its network I/O.
    pub fn script_usec(&self) -> u64 {
        let info = raw(self.port, &["INFO", "commandstats"]).unwrap_or_default();
        info.lines()
            .filter_map(|l| {
                let stats = l
                    .strip_prefix("cmdstat_evalsha:")
                    .or_else(|| l.strip_prefix("cmdstat_eval:"))?;
                stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("usec="))?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    /// `used_cpu_sys + used_cpu_user`, seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let info = raw(self.port, &["INFO", "cpu"]).unwrap_or_default();
        info.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                matches!(k, "used_cpu_sys" | "used_cpu_user")
                    .then(|| v.trim().parse::<f64>().ok())?
            })
            .sum()
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Commands that count as the broker's work (not the test's own probes).
pub fn broker_calls(calls: &BTreeMap<String, u64>) -> u64 {
    calls
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "info"
                    | "config|resetstat"
                    | "ping"
                    | "client|setinfo"
                    | "hello"
                    | "cluster|slots"
                    | "cluster|nodes"
                    | "cluster|shards"
                    | "subscribe"
                    | "ssubscribe"
                    | "script|load"
            )
        })
        .map(|(_, n)| n)
        .sum()
}

/// A 3-primary, 3-replica Redis Cluster of private processes.
pub struct Cluster {
    pub nodes: Vec<RedisProc>,
}

impl Cluster {
    pub fn start() -> Cluster {
        let nodes: Vec<RedisProc> = (0..6).map(|_| RedisProc::start(true)).collect();
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster").arg("create");
        for n in &nodes {
            cmd.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = cmd
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Cluster { nodes };
        cluster.wait_ok(Duration::from_secs(20));
        // A replica that has not synced with its primary yet refuses to take over.
        let started = Instant::now();
        while !cluster.nodes.iter().all(|n| {
            raw(n.port, &["INFO", "replication"]).is_some_and(|i| {
                i.contains("connected_slaves:1") || i.contains("master_link_status:up")
            })
        }) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "replicas did not sync"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// Waits until every live node reports `cluster_state:ok` and every slot has a primary.
    pub fn wait_ok(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            if self.is_ok() {
                return;
            }
            assert!(started.elapsed() < limit, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until [`Self::failed_over`].
    pub fn wait_failover(&self, killed: usize, limit: Duration) {
        let started = Instant::now();
        while !self.failed_over(killed) {
            assert!(started.elapsed() < limit, "no failover of node {killed}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The killed node `killed` serves no slot any more (its replica took over) and the cluster
    /// is ok again.
    pub fn failed_over(&self, killed: usize) -> bool {
        let killed_port = format!(":{}@", self.nodes[killed].port);
        let serves_slots = |nodes: &str| {
            nodes.lines().any(|l| {
                let fields: Vec<&str> = l.split(' ').collect();
                fields.get(1).is_some_and(|a| a.contains(&killed_port)) && fields.len() > 8
            })
        };
        let others = self
            .nodes
            .iter()
            .filter(|n| n.port != self.nodes[killed].port);
        let moved = others
            .filter_map(|n| raw(n.port, &["CLUSTER", "NODES"]))
            .all(|nodes| !serves_slots(&nodes));
        moved && self.is_ok()
    }

    /// Every live node reports `cluster_state:ok` with all slots served.
    pub fn is_ok(&self) -> bool {
        self.live_ports().iter().all(|p| {
            raw(*p, &["CLUSTER", "INFO"]).is_some_and(|i| {
                i.contains("cluster_state:ok") && i.contains("cluster_slots_ok:16384")
            })
        })
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| raw(n.port, &["PING"]).is_some())
            .map(|n| n.port)
            .collect()
    }

    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.nodes[..3]
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The index of the node that is the primary for `key` now.
    pub fn primary_of(&self, key: &str) -> usize {
        let port = self.nodes.iter().find_map(|n| {
            let slot: u16 = raw(n.port, &["CLUSTER", "KEYSLOT", key])?
                .trim_start_matches(':')
                .trim()
                .parse()
                .ok()?;
            let nodes = raw(n.port, &["CLUSTER", "NODES"])?;
            nodes.lines().find_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                if !f.get(2)?.contains("master") || f.get(2)?.contains("fail") {
                    return None;
                }
                let owns = f[8..].iter().any(|r| match r.split_once('-') {
                    Some((a, b)) => {
                        a.parse::<u16>().is_ok_and(|a| a <= slot)
                            && b.parse::<u16>().is_ok_and(|b| slot <= b)
                    }
                    None => r.parse::<u16>() == Ok(slot),
                });
                owns.then(|| {
                    f[1].split('@')
                        .next()?
                        .rsplit(':')
                        .next()?
                        .parse::<u16>()
                        .ok()
                })?
            })
        });
        let port = port.expect("a primary owns the slot");
        self.nodes.iter().position(|n| n.port == port).unwrap()
    }

    /// Sum of broker command calls over the primaries.
    pub fn broker_calls(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| broker_calls(&n.command_calls()))
            .sum()
    }
}

/// A name no other run of the tests uses.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{name}-{}-{nanos:x}-{n}", std::process::id())
}

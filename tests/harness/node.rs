//! One real `agentwire serve` process on an ephemeral port, for the suites that run several
//! nodes (scale-out on Redis, Redis Cluster failover). Killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `agentwire` binary next to the test binary, built first when it is missing.
pub(crate) fn agentwire_binary() -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("agentwire");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "agentwire-server", "--bin", "agentwire"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "building the agentwire binary");
    }
    bin
}

/// A running node: its process and the address it listens on.
pub(crate) struct Node {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
}

impl Node {
    /// Starts a node on `broker` with `env` on top of the suites' defaults (JSON logs, no health
    /// cache, the `demo` agent without pauses) and waits for its `agentwire ready` log line.
    pub(crate) fn start(broker: &str, env: &[(&str, &str)]) -> Node {
        let mut cmd = Command::new(agentwire_binary());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--broker", broker])
            .env("RUST_LOG", "info")
            .env("AGENTWIRE_AGENTS__DEMO__STEP_DELAY", "0s")
            .env("AGENTWIRE_AGENTS__DEMO__TOKEN_DELAY", "0s")
            .env("AGENTWIRE_HEALTH__CACHE", "0s")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("agentwire starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let started = Instant::now();
        let mut seen = Vec::new();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!(
                    "the node exited before it was ready; its log:\n{}",
                    seen.join("\n")
                );
            };
            seen.push(line.clone());
            if line.contains("agentwire ready") {
                let log: Value = serde_json::from_str(&line).unwrap();
                break log["fields"]["listen"].as_str().unwrap().parse().unwrap();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "node not ready: {line}"
            );
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Node { child, addr }
    }

    /// `ws://<addr>/ws?<query>`.
    pub(crate) fn ws(&self, query: &str) -> String {
        format!("ws://{}/ws?{query}", self.addr)
    }

    /// `http://<addr><path>`.
    pub(crate) fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Kills the node with SIGKILL, as a crash would.
    pub(crate) fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

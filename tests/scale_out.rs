//! Scale-out on Redis (issue 4): several real `agentwire` processes sharing the Redis at
//! `REDIS_URL` (default `redis://127.0.0.1:6379`). When it does not answer they start a private
//! `redis-server` on a free port; without that binary they are reported as ignored with the
//! reason — unless `AGENTWIRE_REQUIRE_REDIS=1` (CI), which makes them fail. Runs on the
//! `libtest-mimic` harness (`tests/harness`) so an ignored test reads as ignored.

#[allow(dead_code)] // each suite uses part of the shared harness
mod harness;

use harness::node::Node;
use harness::{
    REQUIRE_REDIS, redis_server_ready, shared_redis_ready as redis_ready,
    shared_redis_url as redis_url,
};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agentwire_test::WsClient;
use serde_json::json;

fn main() -> std::process::ExitCode {
    harness::run(vec![
        harness::trial(
            "a_user_on_node_a_receives_a_run_started_on_node_b_with_identical_seqs",
            REQUIRE_REDIS,
            redis_ready,
            a_user_on_node_a_receives_a_run_started_on_node_b_with_identical_seqs,
        ),
        harness::trial(
            "killing_a_node_mid_stream_loses_nothing_the_client_resumes_on_another_node",
            REQUIRE_REDIS,
            redis_ready,
            killing_a_node_mid_stream_loses_nothing_the_client_resumes_on_another_node,
        ),
        harness::trial(
            "isolation_holds_across_nodes",
            REQUIRE_REDIS,
            redis_ready,
            isolation_holds_across_nodes,
        ),
        harness::trial(
            "redis_down_makes_nodes_unready_then_they_recover_without_losing_acknowledged_events",
            REQUIRE_REDIS,
            redis_server_ready,
            redis_down_makes_nodes_unready_then_they_recover_without_losing_acknowledged_events,
        ),
    ])
}

/// A user name no other test run uses, so tests share one Redis safely.
fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        agentwire_core::RunId::generate().as_str()[2..10].to_owned()
    )
}

async fn a_user_on_node_a_receives_a_run_started_on_node_b_with_identical_seqs() {
    let (a, b) = (
        Node::start(&redis_url(), &[]),
        Node::start(&redis_url(), &[]),
    );
    let user = unique("pat");
    let mut on_a = WsClient::connect(&a.ws(&format!("user={user}")))
        .await
        .unwrap();
    let mut on_b = WsClient::connect(&b.ws(&format!("user={user}")))
        .await
        .unwrap();
    assert_eq!(
        on_a.hello["data"]["epoch"], on_b.hello["data"]["epoch"],
        "one stream, one epoch"
    );

    let (ack, from_b) = on_b.run("q1", "demo", "what is 6*7").await;
    let mut from_a = Vec::new();
    while from_a.len() < from_b.len() {
        let f = on_a.next_json().await.expect("node A stays connected");
        if f.get("seq").is_some() {
            from_a.push(f);
        }
    }
    assert_eq!(
        from_a, from_b,
        "identical frames, seqs included, on both nodes"
    );
    assert_eq!(from_a[0]["run_id"], ack["run_id"]);
    assert_eq!(from_a.last().unwrap()["type"], "agent_completed");
    let seqs: Vec<u64> = from_a.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    // And the other way round: a run on A continues the same stream on B.
    let (_, more) = on_a.run("q2", "echo", "again").await;
    assert_eq!(more[0]["seq"].as_u64(), Some(seqs.len() as u64 + 1));
}

async fn killing_a_node_mid_stream_loses_nothing_the_client_resumes_on_another_node() {
    let env = [
        ("AGENTWIRE_LIMITS__MESSAGES_PER_SECOND", "100000"),
        ("AGENTWIRE_LIMITS__BURST", "100000"),
        ("AGENTWIRE_LIMITS__MAX_RUNS_PER_USER", "100000"),
        ("AGENTWIRE_HISTORY__MAX_EVENTS", "50000"),
        // Both clients read only after all 3,000 runs are sent: their queues must hold the
        // 15,000 events (~2 MB) or node A closes them as slow consumers (4008) first.
        ("AGENTWIRE_LIMITS__QUEUE_BYTES", "67108864"),
    ];
    let mut a = Node::start(&redis_url(), &env);
    let b = Node::start(&redis_url(), &env);
    let user = unique("streamer");
    let mut reader = WsClient::connect(&a.ws(&format!("user={user}")))
        .await
        .unwrap();
    let epoch = reader.hello["data"]["epoch"].as_str().unwrap().to_owned();

    // A second connection of the same user fires 3,000 echo runs (15,000 events) at node A.
    let mut driver = WsClient::connect(&a.ws(&format!("user={user}")))
        .await
        .unwrap();
    for i in 0..3000 {
        driver
            .send_json(json!({"type": "user_message", "id": format!("d{i}"), "agent": "echo", "content": format!("n{i}")}))
            .await;
    }
    // Wait until A accepted ≥ 10,000 events (the driver sees them too), then read some on the
    // reader and kill A while it is still streaming.
    let mut accepted = 0;
    while accepted < 10_000 {
        let f = driver.next_json().await.expect("driver connected");
        if let Some(seq) = f["seq"].as_u64() {
            accepted = seq;
        }
    }
    let mut last = 0u64;
    while last < 2_000 {
        let f = reader.next_json().await.expect("reader connected");
        if let Some(seq) = f["seq"].as_u64() {
            assert_eq!(seq, last + 1);
            last = seq;
        }
    }
    a.kill9();
    let resumed_from = last;
    // The client lost its node at `last`; what A had not delivered yet is only in Redis now.
    drop(reader);
    assert!(
        last < accepted,
        "the kill happened mid-stream ({last} of {accepted})"
    );

    // Resume on B: every event after `last`, exactly once, in order, up to the head.
    let mut resumed =
        WsClient::connect(&b.ws(&format!("user={user}&last_seq={last}&epoch={epoch}")))
            .await
            .unwrap();
    assert_eq!(
        resumed.hello["data"]["resumed"]["from_seq"].as_u64(),
        Some(last + 1)
    );
    let head = resumed.hello["data"]["last_seq"].as_u64().unwrap();
    assert!(head >= 10_000, "head {head}");
    while last < head {
        let f = resumed.next_json().await.expect("node B streams the rest");
        assert_ne!(f["type"], "replay_gap", "history holds everything");
        if let Some(seq) = f["seq"].as_u64() {
            assert_eq!(seq, last + 1, "exactly once, in order");
            last = seq;
        }
    }
    println!(
        "kill -9: node A died after accepting {accepted}+ events; the client resumed on B from {resumed_from} to {head}"
    );
}

async fn isolation_holds_across_nodes() {
    let env = [("AGENTWIRE_LIMITS__MAX_RUNS_PER_USER", "50")];
    let nodes = [
        Node::start(&redis_url(), &env),
        Node::start(&redis_url(), &env),
    ];
    let tag = unique("iso");
    let mut tasks = Vec::new();
    for u in 0..20 {
        let user = format!("{tag}-{u}");
        let (url_a, url_b) = (
            nodes[0].ws(&format!("user={user}")),
            nodes[1].ws(&format!("user={user}")),
        );
        tasks.push(tokio::spawn(async move {
            let mut a = WsClient::connect(&url_a).await.unwrap();
            let mut b = WsClient::connect(&url_b).await.unwrap();
            for r in 0..5 {
                let c = if (u + r) % 2 == 0 { &mut a } else { &mut b };
                c.send_json(json!({"type": "user_message", "id": format!("r{r}"), "agent": "echo", "content": user.clone()})).await;
            }
            for c in [&mut a, &mut b] {
                let mut seen = 0;
                while seen < 25 {
                    let f = c.next_json().await.unwrap();
                    if let Some(seq) = f["seq"].as_u64() {
                        seen += 1;
                        assert_eq!(seq, seen, "{user}: one stream across nodes");
                        if f["type"] == "agent_started" {
                            assert_eq!(f["data"]["input"], user.as_str(), "{user} got another user's run");
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// A private Redis with an append-only file, so a restart keeps what was acknowledged.
struct PrivateRedis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    fn start(port: u16, dir: tempfile::TempDir) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
            ])
            .args([
                "--appendfsync",
                "always",
                "--dir",
                dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let url = format!("redis://127.0.0.1:{port}");
        let started = Instant::now();
        while !harness::redis_answers(&url) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "private redis did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis { child, port, dir }
    }

    fn stop(mut self) -> (u16, tempfile::TempDir) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        (
            self.port,
            std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()),
        )
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn ready_status(node: &Node) -> u16 {
    match reqwest::get(node.http("/health/ready")).await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn wait_for_status(node: &Node, want: u16, within: Duration) {
    let started = Instant::now();
    loop {
        let got = ready_status(node).await;
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < within,
            "/health/ready stayed {got}, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn redis_down_makes_nodes_unready_then_they_recover_without_losing_acknowledged_events() {
    let port = harness::free_port();
    let redis = PrivateRedis::start(port, tempfile::tempdir().unwrap());
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let node = Node::start(&url, &[]);
    wait_for_status(&node, 200, Duration::from_secs(10)).await;
    let mut c = WsClient::connect(&node.ws("user=durable")).await.unwrap();
    let epoch = c.hello["data"]["epoch"].as_str().unwrap().to_owned();
    let (_, first) = c.run("before", "echo", "kept").await;
    assert_eq!(first.len(), 5);

    let (port, dir) = redis.stop();
    wait_for_status(&node, 503, Duration::from_secs(10)).await;
    let redis = PrivateRedis::start(port, dir);
    wait_for_status(&node, 200, Duration::from_secs(20)).await;

    // The connection may have been dropped while Redis was away: resume on a fresh one.
    let mut c = WsClient::connect(&node.ws(&format!("user=durable&last_seq=0&epoch={epoch}")))
        .await
        .unwrap();
    for seq in 1..=5 {
        let f = c.next_json().await.unwrap();
        assert_eq!(
            f["seq"].as_u64(),
            Some(seq),
            "acknowledged events survived: {f}"
        );
    }
    let (_, after) = c.run("after", "echo", "new").await;
    assert_eq!(
        after[0]["seq"].as_u64(),
        Some(6),
        "the stream goes on where it was"
    );
    drop(redis);
}

//! Two real `agentwire` nodes on a Redis Cluster the test starts itself (3 primaries, 3
//! replicas, `redis-server` processes on free ports, killed by PID afterwards): a chaos client
//! that disconnects and resumes at random on either node receives every event exactly once
//! while the primary of its stream is killed and its replica takes over. With
//! `redis.wait_replicas = 1` nothing is lost; without it, any loss is announced by a
//! `replay_gap` and nothing else is lost. Without `redis-server`/`redis-cli` the tests are
//! reported as ignored with the reason, unless `AGENTWIRE_REQUIRE_REDIS=1` (CI) makes them fail.
//! Runs on the `libtest-mimic` harness (`tests/harness`).

#[allow(dead_code)] // each suite uses part of the shared harness
mod harness;
#[path = "../crates/agentwire-redis/tests/support/procs.rs"]
mod procs;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use harness::node::Node;
use procs::{Cluster, unique};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// A small deterministic generator (the seed is printed, so a failure can be replayed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What the chaos client saw, over all its connections.
#[derive(Default)]
struct Seen {
    last: u64,
    epoch: Option<String>,
    events: u64,
    gaps: Vec<(u64, u64)>,
    connections: u32,
}

impl Seen {
    /// Checks one frame against the guarantee: each event exactly once, in order, and a hole
    /// only where a `replay_gap` announces it. Returns the stream head on `connection_established`.
    fn take(&mut self, frame: &Value) -> Option<u64> {
        match frame["type"].as_str() {
            Some("connection_established") => {
                let epoch = frame["data"]["epoch"].as_str().unwrap().to_owned();
                let first = self.epoch.get_or_insert_with(|| epoch.clone());
                assert_eq!(
                    *first, epoch,
                    "the stream keeps its epoch through the failover"
                );
                return frame["data"]["last_seq"].as_u64();
            }
            Some("replay_gap") => {
                let gap = &frame["data"];
                let (from, to) = (
                    gap["from_seq"].as_u64().unwrap(),
                    gap["to_seq"].as_u64().unwrap(),
                );
                assert_eq!(
                    from,
                    self.last + 1,
                    "a gap starts right after the last event: {frame}"
                );
                self.gaps.push((from, to));
                self.last = to;
            }
            _ => {
                if let Some(seq) = frame["seq"].as_u64() {
                    assert_eq!(
                        seq,
                        self.last + 1,
                        "event {seq} after {}: {frame}",
                        self.last
                    );
                    self.last = seq;
                    self.events += 1;
                }
            }
        }
        None
    }
}

/// One connection to `node` resuming after what was seen, read for `hold` (or until `until`
/// is reached); returns the head the server announced.
async fn visit(
    node: &Node,
    user: &str,
    seen: &mut Seen,
    hold: Duration,
    until: u64,
) -> Option<u64> {
    // Always a resume: the first connection from 0, so the stream is checked from its start.
    let mut query = format!("user={user}&last_seq={}", seen.last);
    if let Some(epoch) = &seen.epoch {
        query.push_str(&format!("&epoch={epoch}"));
    }
    let url = format!("ws://{}/ws?{query}", node.addr);
    // A raw client: during the failover a node may refuse the attach and close at once (1011),
    // which is not a failure of the guarantee.
    let Ok(Ok((mut ws, _))) = tokio::time::timeout(
        Duration::from_secs(3),
        tokio_tungstenite::connect_async(url),
    )
    .await
    else {
        return None;
    };
    seen.connections += 1;
    let mut head = None;
    let deadline = tokio::time::Instant::now() + hold;
    while head.is_none() || seen.last < until {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).expect("JSON frame");
                if let Some(h) = seen.take(&frame) {
                    head = Some(h);
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) | Err(_) => break,
        }
    }
    head
}

/// Starts echo runs on the two nodes in turn until `stop`, counting the accepted and refused.
async fn drive_runs(
    nodes: Arc<[Node; 2]>,
    user: String,
    stop: Arc<AtomicBool>,
    started: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
) {
    let http = reqwest::Client::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let node = &nodes[(i % 2) as usize];
        let url = format!("http://{}/v1/runs?user={user}", node.addr);
        let body = json!({"agent": "echo", "content": format!("run {i}")});
        let ok = http
            .post(url)
            .json(&body)
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 202);
        (if ok { &started } else { &refused }).fetch_add(1, Ordering::Relaxed);
        i += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Resumes on the nodes in turn until everything up to the stream's head was seen; the head.
/// Bounded in time, not in attempts: right after a failover a node may refuse attaches (1011)
/// until its cluster client has reconnected, which takes longer on a loaded machine.
async fn catch_up(nodes: &[Node; 2], user: &str, seen: &mut Seen) -> u64 {
    let mut head = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    for attempt in 0.. {
        let node = &nodes[attempt % 2];
        match visit(node, user, seen, Duration::from_secs(10), head.max(1)).await {
            Some(h) => head = head.max(h),
            None => tokio::time::sleep(Duration::from_millis(500)).await,
        }
        if head > 0 && seen.last >= head {
            return head;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "could not catch up to {head} in 90 s (at {}, {attempt} attempts)",
            seen.last
        );
    }
    unreachable!()
}

/// Connects to a random node, reads for a random while, disconnects, resumes elsewhere — and
/// kills the stream's primary after 2 s; returns 3 s after the replica took over (the old primary
/// restarted as a replica when `wait_replicas` needs one).
async fn chaos_client(
    nodes: &[Node; 2],
    user: &str,
    seen: &mut Seen,
    mut rng: Rng,
    cluster: &mut Cluster,
    primary: usize,
    wait_replicas: u32,
) {
    let begin = Instant::now();
    let mut killed = false;
    let mut recovered_at = None;
    loop {
        let node = &nodes[rng.below(2) as usize];
        let hold = Duration::from_millis(50 + rng.below(400));
        visit(node, user, seen, hold, u64::MAX).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if !killed && begin.elapsed() > Duration::from_secs(2) {
            cluster.nodes[primary].kill();
            killed = true;
            println!("killed the primary at event {}", seen.last);
        }
        if killed && recovered_at.is_none() && cluster.failed_over(primary) {
            if wait_replicas > 0 {
                // The promoted replica needs a replica of its own to acknowledge writes.
                cluster.nodes[primary].restart();
            }
            recovered_at = Some(Instant::now());
            println!(
                "failover done at event {} after {:?}",
                seen.last,
                begin.elapsed()
            );
        }
        if recovered_at.is_some_and(|at| at.elapsed() > Duration::from_secs(3)) {
            break;
        }
        assert!(
            begin.elapsed() < Duration::from_secs(45),
            "the failover did not finish"
        );
    }
}

async fn chaos_through_failover(wait_replicas: u32) {
    let mut cluster = Cluster::start();
    let wait = wait_replicas.to_string();
    let env = [
        ("AGENTWIRE_REDIS__WAIT_REPLICAS", wait.as_str()),
        ("AGENTWIRE_REDIS__WAIT_TIMEOUT", "500ms"),
        ("AGENTWIRE_LIMITS__MAX_RUNS_PER_USER", "100000"),
        ("AGENTWIRE_HISTORY__MAX_EVENTS", "100000"),
    ];
    let nodes = Arc::new([
        Node::start(&cluster.url(), &env),
        Node::start(&cluster.url(), &env),
    ]);
    let user = unique("chaos");
    let primary = cluster.primary_of(&format!("aw:{{{user}}}:seq"));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("chaos seed {seed}");

    // Runs started on either node, ~40 a second, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let (started, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let driver = tokio::spawn(drive_runs(
        nodes.clone(),
        user.clone(),
        stop.clone(),
        started.clone(),
        refused.clone(),
    ));

    let mut seen = Seen::default();
    chaos_client(
        &nodes,
        &user,
        &mut seen,
        Rng(seed),
        &mut cluster,
        primary,
        wait_replicas,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    driver.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let head = catch_up(&nodes, &user, &mut seen).await;
    let gap_total: u64 = seen.gaps.iter().map(|(f, t)| t + 1 - f).sum();
    println!(
        "wait {wait_replicas}: {} runs started ({} refused), {} connections, {} events, head {head}, gaps {:?}",
        started.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        seen.connections,
        seen.events,
        seen.gaps
    );
    assert!(seen.events > 100, "the stream moved");
    assert_eq!(seen.last, head, "caught up to the head");
    assert_eq!(
        seen.events + gap_total,
        head,
        "every seq received once or announced as a gap"
    );
    if wait_replicas > 0 {
        assert!(
            seen.gaps.is_empty(),
            "with the replica wait nothing is lost: {:?}",
            seen.gaps
        );
    }
}

fn main() -> std::process::ExitCode {
    harness::run(vec![
        harness::trial(
            "chaos_client_through_a_failover_with_the_replica_wait_loses_nothing",
            harness::REQUIRE_REDIS,
            harness::redis_cluster_ready,
            chaos_client_through_a_failover_with_the_replica_wait_loses_nothing,
        ),
        harness::trial(
            "chaos_client_through_a_failover_without_the_wait_sees_any_loss_as_a_gap",
            harness::REQUIRE_REDIS,
            harness::redis_cluster_ready,
            chaos_client_through_a_failover_without_the_wait_sees_any_loss_as_a_gap,
        ),
    ])
}

async fn chaos_client_through_a_failover_with_the_replica_wait_loses_nothing() {
    chaos_through_failover(1).await;
}

async fn chaos_client_through_a_failover_without_the_wait_sees_any_loss_as_a_gap() {
    chaos_through_failover(0).await;
}

//! The broker on a Redis Cluster the test starts itself: 3 primaries, 3 replicas, private
//! `redis-server` processes on free ports (killed by PID afterwards). Two brokers play two
//! agentwire nodes.
//!
//! Runs on the `libtest-mimic` harness of the root `tests/harness`: without `redis-server` and
//! `redis-cli` the tests are reported as ignored with the reason, unless
//! `AGENTWIRE_REQUIRE_REDIS=1` (CI) makes them fail.

#[allow(dead_code)] // each suite uses part of the shared harness
#[path = "../../../tests/harness/mod.rs"]
mod harness;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentwire_bridge::{Broker, HistoryConfig};
use agentwire_core::{ReplayGap, UserId};
use agentwire_redis::{FAILOVER_SEQ_JUMP, RedisBroker, RedisOptions};
use harness::REQUIRE_REDIS;
use support::*;

fn main() -> std::process::ExitCode {
    harness::run(vec![
        harness::trial(
            "cluster_delivers_across_nodes_and_keeps_live_traffic_on_the_owning_shard",
            REQUIRE_REDIS,
            harness::redis_cluster_ready,
            cluster_delivers_across_nodes_and_keeps_live_traffic_on_the_owning_shard,
        ),
        harness::trial(
            "with_the_replica_wait_a_failover_loses_no_acknowledged_event",
            REQUIRE_REDIS,
            harness::redis_cluster_ready,
            with_the_replica_wait_a_failover_loses_no_acknowledged_event,
        ),
        harness::trial(
            "without_the_replica_wait_a_failover_shows_any_loss_as_a_gap",
            REQUIRE_REDIS,
            harness::redis_cluster_ready,
            without_the_replica_wait_a_failover_shows_any_loss_as_a_gap,
        ),
    ])
}

/// One node: a broker and the recorder its live feed delivers into.
async fn node(url: &str, wait_replicas: u32) -> (Arc<RedisBroker>, Arc<Recorder>) {
    let history = HistoryConfig {
        max_events: 20_000,
        ..HistoryConfig::default()
    };
    let options = RedisOptions::new(history)
        .wait_replicas(wait_replicas)
        .wait_timeout(Duration::from_millis(500));
    let live = recorder();
    let broker = RedisBroker::connect_with(url, options, live.clone())
        .await
        .unwrap();
    (broker, live)
}

/// Users whose streams live on distinct primaries, one per primary.
fn users_on_distinct_shards(cluster: &Cluster) -> Vec<(UserId, usize)> {
    let mut by_shard = BTreeMap::new();
    for i in 0.. {
        let user = unique(&format!("s{i}"));
        by_shard
            .entry(cluster.primary_of(&format!("aw:{{{user}}}:seq")))
            .or_insert(user);
        if by_shard.len() == 3 {
            break;
        }
    }
    by_shard
        .into_iter()
        .map(|(shard, u)| (UserId::new(u).unwrap(), shard))
        .collect()
}

/// Sharded pub/sub: a user's channel is subscribed, and published to, only on its shard. The
/// first user is held by two nodes, the second by one, the third by none; each got 20 events.
fn check_sharded_pubsub(cluster: &Cluster, users: &[(UserId, usize)]) {
    let (alice, bob) = (&users[0].0, &users[1].0);
    for (user, shard) in users {
        let channel = format!("aw:{{{user}}}:live");
        for (i, n) in cluster.nodes.iter().enumerate() {
            let reply = raw(n.port, &["PUBSUB", "SHARDNUMSUB", &channel]).unwrap();
            let subscribers: u64 = reply
                .lines()
                .last()
                .unwrap()
                .trim_start_matches(':')
                .parse()
                .unwrap();
            let expected = match () {
                _ if i != *shard => 0,
                _ if user == alice => 2,
                _ if user == bob => 1,
                _ => 0,
            };
            assert_eq!(subscribers, expected, "{channel} on node {i}");
        }
    }
    let spublish: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|n| n.command_calls().get("spublish").copied().unwrap_or(0))
        .collect();
    let shards: Vec<usize> = users.iter().map(|(_, s)| *s).collect();
    for (i, calls) in spublish.iter().enumerate() {
        let expected = if shards.contains(&i) { 20 } else { 0 };
        assert!(
            *calls <= expected,
            "node {i} published {calls} times: {spublish:?}"
        );
    }
}

async fn cluster_delivers_across_nodes_and_keeps_live_traffic_on_the_owning_shard() {
    let cluster = Cluster::start();
    let ((a, rec_a), (b, rec_b)) = (node(&cluster.url(), 0).await, node(&cluster.url(), 0).await);
    let users = users_on_distinct_shards(&cluster);
    let (alice, bob, carol) = (&users[0].0, &users[1].0, &users[2].0);
    // Node A holds alice; node B holds alice and bob; nobody holds carol.
    a.subscribe(alice).await.unwrap();
    b.subscribe(alice).await.unwrap();
    b.subscribe(bob).await.unwrap();
    for n in &cluster.nodes {
        raw(n.port, &["CONFIG", "RESETSTAT"]).unwrap();
    }
    for i in 0..20 {
        // Cross-node: alice's events appended on B reach A, bob's appended on A reach B.
        b.append(alice, &delta(&format!("alice-{i}")), MAX_EVENT)
            .await
            .unwrap();
        a.append(bob, &delta(&format!("bob-{i}")), MAX_EVENT)
            .await
            .unwrap();
        a.append(carol, &delta(&format!("carol-{i}")), MAX_EVENT)
            .await
            .unwrap();
    }
    let one_to_20: Vec<u64> = (1..=20).collect();
    assert_eq!(rec_a.wait_for(alice, 20).await, one_to_20);
    assert_eq!(rec_b.wait_for(alice, 20).await, one_to_20);
    assert_eq!(rec_b.wait_for(bob, 20).await, one_to_20);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rec_a.seqs_of(bob).is_empty(), "node A does not follow bob");
    assert!(rec_a.seqs_of(carol).is_empty() && rec_b.seqs_of(carol).is_empty());
    for (text, user) in [("alice-7", alice), ("bob-7", bob)] {
        assert!(rec_b.text_of(user, 8).unwrap().contains(text));
    }
    check_sharded_pubsub(&cluster, &users);
    println!(
        "cluster: redis commands per event {:.2} (60 events, one per batch)",
        cluster.broker_calls() as f64 / 60.0
    );
    // A burst from concurrent publishers goes out in batches; every frame still carries its seq.
    let burst: Vec<_> = (0..40)
        .map(|i| {
            let (node, user) = (
                if i % 2 == 0 { a.clone() } else { b.clone() },
                alice.clone(),
            );
            tokio::spawn(async move {
                node.append(&user, &delta(&format!("burst-{i}")), MAX_EVENT)
                    .await
            })
        })
        .collect();
    for t in burst {
        t.await.unwrap().unwrap();
    }
    let all: Vec<u64> = (1..=60).collect();
    assert_eq!(rec_a.wait_for(alice, 60).await, all);
    for seq in 1..=60 {
        let text = rec_a.text_of(alice, seq).unwrap();
        assert!(text.contains(&format!("\"seq\":{seq},")), "{text}");
    }
}

/// Appends from two nodes to one stream while the stream's primary is killed and its replica
/// takes over.
struct Failover {
    /// Acknowledged appends: (seq, tag).
    acked: Vec<(u64, String)>,
    /// The whole stream, read afterwards.
    slice: agentwire_bridge::StreamSlice,
    node: Arc<RedisBroker>,
    user: UserId,
    /// Kept alive while the test reads (its processes die when it is dropped).
    cluster: Cluster,
}

async fn append_through_failover(wait_replicas: u32) -> Failover {
    let mut cluster = Cluster::start();
    let (a, b) = (
        node(&cluster.url(), wait_replicas).await.0,
        node(&cluster.url(), wait_replicas).await.0,
    );
    let user = UserId::new(unique("failover")).unwrap();
    let primary = cluster.primary_of(&format!("aw:{{{user}}}:seq"));
    let killed_at = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    // Two nodes append in turn until 100 events after the kill were acknowledged (or 40 s).
    let appender = tokio::spawn({
        let (a, b, user, killed_at) = (a.clone(), b.clone(), user.clone(), killed_at.clone());
        async move {
            let (mut acked, mut failed) = (Vec::new(), 0);
            let started = Instant::now();
            let after_kill = |acked: &Vec<(u64, String)>| {
                let k = killed_at.load(std::sync::atomic::Ordering::SeqCst);
                acked.iter().filter(|(s, _)| *s > k).count()
            };
            for i in 0.. {
                if after_kill(&acked) >= 100 || started.elapsed() > Duration::from_secs(40) {
                    break;
                }
                let tag = format!("e{i}");
                let via = if i % 2 == 0 { &a } else { &b };
                match tokio::time::timeout(
                    Duration::from_secs(3),
                    via.append(&user, &delta(&tag), MAX_EVENT),
                )
                .await
                {
                    Ok(Ok(seq)) => acked.push((seq, tag)),
                    Ok(Err(e)) => {
                        failed += 1;
                        if failed <= 5 || failed % 20 == 0 {
                            println!("append {i} failed after {:?}: {e}", started.elapsed());
                        }
                    }
                    Err(_) => {
                        failed += 1;
                        println!("append {i} timed out after {:?}", started.elapsed());
                    }
                }
            }
            (acked, failed)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = a.read_after(&user, 0, None, 0.into()).await.unwrap().head;
    cluster.nodes[primary].kill();
    killed_at.store(before, std::sync::atomic::Ordering::SeqCst);
    tokio::task::block_in_place(|| cluster.wait_failover(primary, Duration::from_secs(20)));
    if wait_replicas > 0 {
        // The promoted replica has no replica of its own until the old primary comes back.
        cluster.nodes[primary].restart();
    }
    let (acked, failed) = appender.await.unwrap();
    println!(
        "failover (wait {wait_replicas}): {} acknowledged, {failed} failed",
        acked.len()
    );
    assert!(
        acked.iter().filter(|(s, _)| *s > before).count() >= 100,
        "appends resumed after the failover"
    );
    let slice = read_all(&a, &user).await;
    Failover {
        acked,
        slice,
        node: a,
        user,
        cluster,
    }
}

async fn with_the_replica_wait_a_failover_loses_no_acknowledged_event() {
    let Failover { acked, slice, .. } = append_through_failover(1).await;
    let held: BTreeMap<u64, String> = slice
        .frames
        .iter()
        .map(|f| (f.seq(), String::from_utf8_lossy(f.bytes()).into_owned()))
        .collect();
    assert_eq!(slice.gap, None, "nothing missing from the stream");
    let seqs: Vec<u64> = held.keys().copied().collect();
    assert_eq!(
        seqs,
        (1..=slice.head).collect::<Vec<_>>(),
        "gap-free after the failover"
    );
    for (seq, tag) in &acked {
        let text = held
            .get(seq)
            .unwrap_or_else(|| panic!("acknowledged seq {seq} lost"));
        assert!(
            text.contains(&format!("\"{tag}\"")),
            "seq {seq} holds {tag}: {text}"
        );
    }
}

async fn without_the_replica_wait_a_failover_shows_any_loss_as_a_gap() {
    let Failover {
        acked,
        slice,
        node,
        user,
        cluster: _cluster,
    } = append_through_failover(0).await;
    let held: BTreeMap<u64, String> = slice
        .frames
        .iter()
        .map(|f| (f.seq(), String::from_utf8_lossy(f.bytes()).into_owned()))
        .collect();
    // The new primary skipped FAILOVER_SEQ_JUMP seqs: whatever the old one did not replicate
    // lies in that range, which a resume reports as a gap; nothing outside it is missing.
    let first = *held.keys().next().unwrap();
    assert_eq!(first, 1);
    let mut holes = Vec::new();
    let mut prev = 0;
    for seq in held.keys() {
        if *seq != prev + 1 {
            holes.push((prev + 1, seq - 1));
        }
        prev = *seq;
    }
    assert_eq!(
        holes.len(),
        1,
        "one skipped range after the failover: {holes:?}"
    );
    let (from, to) = holes[0];
    assert!(to + 1 - from >= FAILOVER_SEQ_JUMP, "{holes:?}");
    let resumed = read_from(&node, &user, from - 1, 10).await;
    assert_eq!(
        resumed.gap,
        Some(ReplayGap {
            from_seq: from,
            to_seq: to
        }),
        "a resume before the range is told of the gap"
    );
    assert_eq!(resumed.frames[0].seq(), to + 1);
    for (seq, tag) in &acked {
        match held.get(seq) {
            Some(text) => assert!(
                text.contains(&format!("\"{tag}\"")),
                "seq {seq} holds {tag}: {text}"
            ),
            None => assert!(
                (from..=to).contains(seq),
                "acknowledged seq {seq} lost outside the gap"
            ),
        }
    }
}

/// The stream after `after`; the cluster client may need a moment to find the new primary.
async fn read_from(
    node: &RedisBroker,
    user: &UserId,
    after: u64,
    limit: usize,
) -> agentwire_bridge::StreamSlice {
    let started = Instant::now();
    loop {
        match node.read_after(user, after, None, limit.into()).await {
            Ok(slice) => return slice,
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                println!("read after the failover: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot read after the failover: {e}"),
        }
    }
}

/// The whole stream, page by page (a page stops before a skipped range), as one slice.
async fn read_all(node: &RedisBroker, user: &UserId) -> agentwire_bridge::StreamSlice {
    let mut all = read_from(node, user, 0, 100_000).await;
    loop {
        let after = all.frames.last().map_or(0, |f| f.seq());
        if after >= all.head {
            return all;
        }
        let page = read_from(node, user, after, 100_000).await;
        let next = page.gap.map_or(after, |g| g.to_seq);
        assert!(
            next > after || !page.frames.is_empty(),
            "no progress at {after}"
        );
        all.frames.extend(page.frames);
    }
}

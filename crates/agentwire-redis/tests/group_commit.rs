//! Group commit on the shared Redis at `REDIS_URL` (one or two brokers — two nodes — on one
//! stream) and, on a private `redis-server`, what it costs in Redis commands per event.
//!
//! Runs on the `libtest-mimic` harness of the root `tests/harness`: when `REDIS_URL`'s Redis does
//! not answer the tests start a private `redis-server`; without that binary they are reported as
//! ignored with the reason, unless `AGENTWIRE_REQUIRE_REDIS=1` (CI) makes them fail.

#[path = "group_commit/fail_stop.rs"]
mod fail_stop;
#[allow(dead_code)] // each suite uses part of the shared harness
#[path = "../../../tests/harness/mod.rs"]
mod harness;
mod support;

use std::sync::Arc;

use agentwire_bridge::{BridgeError, Broker, HistoryConfig};
use agentwire_core::UserId;
use agentwire_redis::{RedisBroker, RedisOptions};
use harness::{REQUIRE_REDIS, shared_redis_url as redis_url};
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use support::*;

fn main() -> std::process::ExitCode {
    harness::run(vec![
        harness::trial(
            "seqs_are_gap_free_and_published_in_order_under_concurrent_publishers",
            REQUIRE_REDIS,
            harness::shared_redis_ready,
            seqs_are_gap_free_and_published_in_order_under_concurrent_publishers,
        ),
        harness::trial(
            "two_nodes_eight_publishers_each_on_one_stream",
            REQUIRE_REDIS,
            harness::shared_redis_ready,
            two_nodes_eight_publishers_each_on_one_stream,
        ),
        harness::trial(
            "redis_commands_per_event_are_reported",
            REQUIRE_REDIS,
            harness::redis_server_ready,
            redis_commands_per_event_are_reported,
        ),
        harness::trial(
            "a_skipped_seq_range_reads_as_a_replay_gap",
            REQUIRE_REDIS,
            harness::shared_redis_ready,
            a_skipped_seq_range_reads_as_a_replay_gap,
        ),
        harness::trial(
            "the_count_bound_counts_events_not_seqs_across_a_seq_jump",
            REQUIRE_REDIS,
            harness::shared_redis_ready,
            the_count_bound_counts_events_not_seqs_across_a_seq_jump,
        ),
        harness::trial(
            "an_event_over_max_bytes_is_refused_and_takes_no_seq",
            REQUIRE_REDIS,
            harness::shared_redis_ready,
            an_event_over_max_bytes_is_refused_and_takes_no_seq,
        ),
        harness::trial(
            "a_failed_append_stops_its_runs_later_events_until_acknowledged",
            REQUIRE_REDIS,
            harness::shared_redis_ready,
            fail_stop::a_failed_append_stops_its_runs_later_events_until_acknowledged,
        ),
        harness::trial(
            "a_stream_is_capped_in_bytes_as_well_as_in_events",
            REQUIRE_REDIS,
            harness::shared_redis_ready,
            a_stream_is_capped_in_bytes_as_well_as_in_events,
        ),
    ])
}

/// `n` brokers (nodes), each with the recorder its live feed delivers into.
async fn brokers(url: &str, prefix: &str, n: usize) -> Vec<(Arc<RedisBroker>, Arc<Recorder>)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let options = RedisOptions::new(HistoryConfig::default()).prefix(prefix);
        let live = recorder();
        let broker = RedisBroker::connect_with(url, options, live.clone())
            .await
            .unwrap();
        out.push((broker, live));
    }
    out
}

/// `publishers` tasks spread over `nodes` brokers each append `per` events to one stream, one
/// after the other; all run at once. Every seq 1..=N is given exactly once, each publisher's seqs
/// rise, every node's live feed delivers 1..=N in order with the event that got each seq, and
/// history holds the same.
async fn concurrent_publishers(nodes: usize, publishers: usize, per: usize) {
    let prefix = unique("gc");
    let (brokers, sinks): (Vec<_>, Vec<_>) = brokers(&redis_url(), &prefix, nodes)
        .await
        .into_iter()
        .unzip();
    let user = UserId::new(unique("u")).unwrap();
    for b in &brokers {
        b.subscribe(&user).await.unwrap();
    }
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let broker = brokers[p % nodes].clone();
        let user = user.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            if p % 2 == 1 {
                // Pipelined, as a run's emitter does: every append is made before the first is
                // stored; each one's place is fixed by its call.
                let pending: Vec<_> = (0..per)
                    .map(|i| {
                        let tag = format!("p{p}-e{i}");
                        (broker.append(&user, &delta(&tag), MAX_EVENT), tag)
                    })
                    .collect();
                for (stored, tag) in pending {
                    got.push((stored.await.unwrap(), tag));
                }
            } else {
                for i in 0..per {
                    let tag = format!("p{p}-e{i}");
                    got.push((
                        broker.append(&user, &delta(&tag), MAX_EVENT).await.unwrap(),
                        tag,
                    ));
                }
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "a publisher's seqs rise: {got:?}"
        );
        all.extend(got);
    }
    let total = publishers * per;
    let mut seqs: Vec<u64> = all.iter().map(|(s, _)| *s).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=total as u64).collect::<Vec<_>>(),
        "gap-free, each seq once"
    );
    for sink in &sinks {
        let live = sink.wait_for(&user, total).await;
        assert_eq!(
            live,
            (1..=total as u64).collect::<Vec<_>>(),
            "live order is seq order"
        );
        for (seq, tag) in &all {
            let text = sink.text_of(&user, *seq).unwrap();
            assert!(
                text.contains(&format!("\"{tag}\"")),
                "seq {seq} carries {tag}: {text}"
            );
            assert!(text.contains(&format!("\"seq\":{seq},")), "{text}");
        }
    }
    let slice = brokers[0]
        .read_after(&user, 0, None, (total + 10).into())
        .await
        .unwrap();
    let held: Vec<u64> = slice.frames.iter().map(|f| f.seq()).collect();
    assert_eq!(held, (1..=total as u64).collect::<Vec<_>>());
    assert_eq!((slice.head, slice.gap), (total as u64, None));
    brokers[0].remove(&user).await.unwrap();
}

/// The property test (proptest: 6 cases of 1–2 nodes, 1–8 publishers, 1–40 events each), run
/// on a blocking thread since proptest's runner is synchronous; a failing case is shrunk and
/// reported as the `proptest!` macro does.
async fn seqs_are_gap_free_and_published_in_order_under_concurrent_publishers() {
    let runtime = tokio::runtime::Handle::current();
    let result = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(ProptestConfig {
            cases: 6,
            source_file: Some(file!()),
            ..ProptestConfig::default()
        });
        let strategy = (1usize..=2, 1usize..=8, 1usize..=40);
        let result = runner.run(&strategy, |(nodes, publishers, per)| {
            runtime.block_on(concurrent_publishers(nodes, publishers, per));
            Ok::<(), TestCaseError>(())
        });
        result.map_err(|e| format!("{e}\n{runner}"))
    })
    .await
    .expect("the property test's thread");
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

async fn two_nodes_eight_publishers_each_on_one_stream() {
    concurrent_publishers(2, 16, 50).await;
}

/// Redis commands per event (from `INFO commandstats` of a private server) while 8 users each
/// get events from 8 concurrent publishers, and Redis CPU per event (`INFO cpu`). Printed; the
/// commands per batch are asserted (the batch sizes, and so the count per event, depend on
/// timing).
async fn redis_commands_per_event_are_reported() {
    let server = RedisProc::start(false);
    let broker = brokers(&server.url(), "aw", 1).await.remove(0).0;
    let users: Vec<UserId> = (0..8)
        .map(|i| UserId::new(format!("user{i}")).unwrap())
        .collect();
    raw(server.port, &["CONFIG", "RESETSTAT"]).unwrap();
    let cpu = server.cpu_seconds();
    let mut tasks = Vec::new();
    for user in &users {
        for p in 0..8 {
            let (broker, user) = (broker.clone(), user.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..50 {
                    broker
                        .append(&user, &delta(&format!("{p}-{i}")), MAX_EVENT)
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let events = (8 * 8 * 50) as f64;
    let calls = server.command_calls();
    let per_event = broker_calls(&calls) as f64 / events;
    let cpu_us = (server.cpu_seconds() - cpu) * 1e6 / events;
    let script_us = server.script_usec() as f64 / events;
    println!(
        "redis commands per event: {per_event:.2} ({calls:?}); redis cpu per event: {cpu_us:.1} us \
         (in scripts: {script_us:.1} us)"
    );
    let script_calls = ["evalsha", "eval"]
        .iter()
        .map(|c| calls.get(*c).copied().unwrap_or(0))
        .sum::<u64>();
    println!(
        "events per script call (batch size): {:.1}",
        events / script_calls as f64
    );
    // A batch of any size costs the script call, HMGET, XADD, HSET and PUBLISH; a new stream
    // adds DEL and two PEXPIREs (the node's first refresh of the user); a script the server did
    // not know yet costs a failed EVALSHA before its EVAL. Nothing is per event.
    let batches = calls.get("publish").copied().unwrap_or(0);
    assert_eq!(
        calls.get("xadd").copied(),
        Some(batches),
        "one XADD per batch"
    );
    let retries = calls.get("eval").copied().unwrap_or(0);
    let new_streams = users.len() as u64;
    assert!(
        broker_calls(&calls) <= 5 * batches + 3 * new_streams + retries,
        "{calls:?}: more than five commands per batch"
    );
}

/// Seqs skipped by the counter (as after a failover on a cluster) read as a gap on resume.
async fn a_skipped_seq_range_reads_as_a_replay_gap() {
    let prefix = unique("skip");
    let broker = brokers(&redis_url(), &prefix, 1).await.remove(0).0;
    let user = UserId::new(unique("u")).unwrap();
    for i in 0..3 {
        broker
            .append(&user, &delta(&format!("a{i}")), MAX_EVENT)
            .await
            .unwrap();
    }
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: u64 = redis::cmd("HINCRBY")
        .arg(format!("{prefix}:{{{user}}}:m"))
        .arg("seq")
        .arg(1000)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        broker.append(&user, &delta("b"), MAX_EVENT).await.unwrap(),
        1004
    );
    for after in [2, 3] {
        let slice = broker
            .read_after(&user, after, None, 10.into())
            .await
            .unwrap();
        let gap = slice.gap.map(|g| (g.from_seq, g.to_seq));
        if after == 3 {
            assert_eq!(gap, Some((4, 1003)));
            assert_eq!(
                slice.frames.iter().map(|f| f.seq()).collect::<Vec<_>>(),
                vec![1004]
            );
        } else {
            assert_eq!(gap, None, "seq 3 is held");
            let seqs: Vec<u64> = slice.frames.iter().map(|f| f.seq()).collect();
            assert_eq!(seqs, vec![3], "the page stops before the hole");
        }
    }
    broker.remove(&user).await.unwrap();
}

/// A seq jump recorded as the append script records one after a primary change (the meta's
/// epoch field names the first seq after it): `history.max_events` still holds that many
/// events, on both sides of the hole, and a resume sees the trimmed head and the hole as gaps.
async fn the_count_bound_counts_events_not_seqs_across_a_seq_jump() {
    let prefix = unique("jump");
    let history = HistoryConfig {
        max_events: 6,
        ..HistoryConfig::default()
    };
    let options = RedisOptions::new(history).prefix(&prefix);
    let broker = RedisBroker::connect_with(&redis_url(), options, recorder())
        .await
        .unwrap();
    let user = UserId::new(unique("u")).unwrap();
    for i in 0..3 {
        broker
            .append(&user, &delta(&format!("a{i}")), MAX_EVENT)
            .await
            .unwrap();
    }
    let meta = format!("{prefix}:{{{user}}}:m");
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let epoch: String = redis::cmd("HGET")
        .arg(&meta)
        .arg("e")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::pipe()
        .cmd("HINCRBY")
        .arg(&meta)
        .arg("seq")
        .arg(1000)
        .ignore()
        .cmd("HSET")
        .arg(&meta)
        .arg("e")
        .arg(format!("{epoch}//1004"))
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut seqs = Vec::new();
    for i in 0..4 {
        seqs.push(
            broker
                .append(&user, &delta(&format!("b{i}")), MAX_EVENT)
                .await
                .unwrap(),
        );
    }
    assert_eq!(seqs, vec![1004, 1005, 1006, 1007]);
    let page = |after: u64| broker.read_after(&user, after, None, 100.into());
    let slice = page(0).await.unwrap();
    let held: Vec<u64> = slice.frames.iter().map(|f| f.seq()).collect();
    assert_eq!(held, vec![2, 3], "six events held: 2, 3 and 1004..=1007");
    assert_eq!(slice.gap.map(|g| (g.from_seq, g.to_seq)), Some((1, 1)));
    let slice = page(3).await.unwrap();
    let held: Vec<u64> = slice.frames.iter().map(|f| f.seq()).collect();
    assert_eq!(held, vec![1004, 1005, 1006, 1007]);
    assert_eq!(slice.gap.map(|g| (g.from_seq, g.to_seq)), Some((4, 1003)));
    broker.remove(&user).await.unwrap();
}

/// `history.max_bytes` on Redis: after every append the stream holds exactly the newest entries
/// within both bounds — at most `max_events` entries and `max_bytes` bytes of frames, the newest
/// always — whether the count trim or the byte trim decides (the count trim only raises the
/// floor the script's byte count starts from); and a read stops before the entry that would pass
/// its byte limit.
async fn a_stream_is_capped_in_bytes_as_well_as_in_events() {
    const MAX_EVENTS: usize = 6;
    const MAX_BYTES: usize = 1000;
    let history = HistoryConfig {
        max_events: MAX_EVENTS,
        max_bytes: MAX_BYTES,
        ..HistoryConfig::default()
    };
    let options_prefix = unique("bytes");
    let options = RedisOptions::new(history).prefix(&options_prefix);
    let broker = RedisBroker::connect_with(&redis_url(), options, recorder())
        .await
        .unwrap();
    let user = UserId::new(unique("u")).unwrap();
    // Small runs (the count decides), large ones (the bytes decide) and one event larger than
    // the whole bound (held alone).
    let sizes = (0..60).map(|i| match i {
        25 => 1500,
        i if (i / 10) % 2 == 0 => 20 + i % 7,
        i => 250 + 13 * (i % 5),
    });
    let mut lens: Vec<usize> = Vec::new();
    for (i, size) in sizes.enumerate() {
        let event = delta(&"x".repeat(size));
        let seq = broker.append(&user, &event, MAX_EVENT).await.unwrap();
        assert_eq!(seq, i as u64 + 1);
        lens.push(event.envelope_len(seq));
        let (mut held, mut bytes) = (0, 0);
        while held < lens.len().min(MAX_EVENTS)
            && (held == 0 || bytes + lens[lens.len() - 1 - held] <= MAX_BYTES)
        {
            bytes += lens[lens.len() - 1 - held];
            held += 1;
        }
        let slice = broker.read_after(&user, 0, None, 100.into()).await.unwrap();
        let got: Vec<u64> = slice.frames.iter().map(|f| f.seq()).collect();
        let want: Vec<u64> = (seq + 1 - held as u64..=seq).collect();
        assert_eq!(got, want, "after seq {seq}");
        assert_eq!(slice.frames.iter().map(|f| f.len()).sum::<usize>(), bytes);
    }
    // Trimmed entries leave Redis too (at most 16 trimmed events linger there).
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let entries: usize = redis::cmd("XLEN")
        .arg(format!("{}:{{{user}}}:h", options_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(entries <= MAX_EVENTS + 16, "{entries} entries in Redis");
    // A read with a byte limit: the entries that fit it, at least one.
    let all = broker.read_after(&user, 0, None, 100.into()).await.unwrap();
    let first_two: usize = all.frames[..2].iter().map(|f| f.len()).sum();
    for (bytes, want) in [(first_two, 2), (first_two - 1, 1), (1, 1)] {
        let limit = agentwire_bridge::ReadLimit::events(100).bytes(bytes);
        let slice = broker.read_after(&user, 0, None, limit).await.unwrap();
        assert_eq!(slice.frames.len(), want, "a read of at most {bytes} bytes");
    }
    broker.remove(&user).await.unwrap();
}

/// The size bound is measured on the frame the broker writes, its seq counted at the largest:
/// an event exactly at `max_bytes` is stored, one byte more is refused with `EventTooLarge`, is
/// not stored and takes no seq.
async fn an_event_over_max_bytes_is_refused_and_takes_no_seq() {
    let options = RedisOptions::new(HistoryConfig::default()).prefix(&unique("size"));
    let broker = RedisBroker::connect_with(&redis_url(), options, recorder())
        .await
        .unwrap();
    let user = UserId::new(unique("u")).unwrap();
    let max = delta(&"x".repeat(500)).envelope_len(u64::MAX);
    assert_eq!(
        broker.append(&user, &delta(&"x".repeat(500)), max).await,
        Ok(1)
    );
    let over = delta(&"x".repeat(501));
    assert_eq!(
        broker.append(&user, &over, max).await,
        Err(BridgeError::EventTooLarge { size: max + 1, max })
    );
    assert_eq!(broker.append(&user, &delta("small"), max).await, Ok(2));
    let slice = broker.read_after(&user, 0, None, 10.into()).await.unwrap();
    assert_eq!(
        slice.frames.iter().map(|f| f.seq()).collect::<Vec<_>>(),
        [1, 2]
    );
}

//! Delivery guarantees under failure (issue 3): resume after random disconnects, slow consumers,
//! gaps, cancel, limits, heartbeats and graceful shutdown — real server, real sockets.

use std::time::{Duration, Instant};

use agentwire_core::{UserContext, UserId};
use agentwire_test::{TestServer, WsClient, test_config};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A tiny deterministic PRNG (xorshift) so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Publishes one run of `events` events (started, thinking…, completed) for `user` through the
/// real emitter path, pacing itself so live delivery and replays interleave.
async fn produce(server: &TestServer, user: &str, events: u64) {
    let factory = server.state.ready().executor().factory().clone();
    let ctx = UserContext::new_run(UserId::new(user).unwrap(), None, None);
    let run = factory.begin_run(ctx, "chaos").unwrap();
    run.started(None).await.unwrap();
    for i in 1..events - 1 {
        run.thinking(format!("step {i}"), None).await.unwrap();
        if i % 250 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    run.completed(json!("done")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_every_seq_arrives_exactly_once_across_200_random_disconnects() {
    const EVENTS: u64 = 100_000;
    let mut config = test_config();
    config.history.max_events = 200_000;
    let server = TestServer::start_with(config, Vec::new()).await;
    let produce_task = produce(&server, "chaos", EVENTS);
    let consume_task = async {
        let mut rng = Rng(0x5eed_1234_abcd_9876);
        let http = reqwest::Client::new();
        let (mut last, mut epoch): (u64, Option<String>) = (0, None);
        let mut disconnects = 0u32;
        let mut replayed_total = 0u64;
        while last < EVENTS {
            let query = match &epoch {
                Some(e) => format!("user=chaos&last_seq={last}&epoch={e}"),
                // The producer may already be ahead: start from the beginning.
                None => "user=chaos&last_seq=0".to_owned(),
            };
            let mut c = WsClient::connect(&server.ws_url(&query)).await.unwrap();
            let e = c.hello["data"]["epoch"].as_str().unwrap().to_owned();
            assert!(
                epoch.as_ref().is_none_or(|old| *old == e),
                "the epoch never changes here"
            );
            epoch = Some(e);
            if let Some(r) = c.hello["data"]["resumed"].as_object() {
                assert_eq!(r["from_seq"].as_u64(), Some(last + 1));
                replayed_total += r["replayed"].as_u64().unwrap();
            }
            // The producer is far faster than this debug-build reader, so the server may also
            // close it as a slow consumer (4008): that is one more resume, never a lost event.
            let budget = 1 + rng.next(800);
            let mut got = 0;
            while got < budget && last < EVENTS {
                let Some(f) = c.next_json().await else { break };
                assert_ne!(f["type"], "replay_gap", "history holds everything: {f}");
                let Some(seq) = f["seq"].as_u64() else {
                    continue;
                };
                assert_eq!(
                    seq,
                    last + 1,
                    "exactly once, in order (after {disconnects} disconnects)"
                );
                last = seq;
                got += 1;
            }
            if last >= EVENTS {
                break;
            }
            disconnects += 1;
            match rng.next(4) {
                // Abrupt: drop the TCP connection without a close handshake.
                0 | 1 => drop(c),
                // Polite close from the client.
                2 => c.close().await,
                // The server drops it.
                _ => {
                    let r = http
                        .post(server.http_url("/debug/disconnect?user=chaos"))
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success());
                    drop(c);
                }
            }
        }
        (last, disconnects, replayed_total)
    };
    let ((), (last, disconnects, replayed)) = tokio::join!(produce_task, consume_task);
    println!("chaos: {last} events, {disconnects} disconnects, {replayed} replayed on resume");
    assert_eq!(last, EVENTS);
    assert!(disconnects >= 200, "only {disconnects} disconnects");
    server.stop().await;
}

/// Connects with a raw client that completes the handshake and then never reads again.
async fn stalled_client(server: &TestServer, user: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let req = format!(
        "GET /ws?user={user} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
    tcp
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_with_4008_while_others_keep_receiving_then_resumes_everything() {
    let mut config = test_config();
    config.limits.queue_bytes = 64 * 1024;
    config.history.max_events = 5_000;
    // The count decides what history keeps here (5,000 events of ~4.2 KB), not the bytes.
    config.history.max_bytes = 64 << 20;
    let server = TestServer::start_with(config, Vec::new()).await;
    let bridge = server.state.ready().bridge().clone();
    let stalled = stalled_client(&server, "slow").await;
    let mut healthy = server.connect("fast").await;
    wait_until("both attached", || bridge.stats().connections == 2).await;

    let factory = server.state.ready().executor().factory().clone();
    let big = "x".repeat(4096);
    let slow_run = factory
        .begin_run(
            UserContext::new_run(UserId::new("slow").unwrap(), None, None),
            "load",
        )
        .unwrap();
    slow_run.started(None).await.unwrap();
    let fast_run = factory
        .begin_run(
            UserContext::new_run(UserId::new("fast").unwrap(), None, None),
            "load",
        )
        .unwrap();
    fast_run.started(None).await.unwrap();
    // ~40 MB for the stalled user: far over its 64 KiB queue and the kernel's socket buffers.
    for i in 0..10_000u32 {
        slow_run.thinking(big.clone(), Some(i)).await.unwrap();
        if i % 1000 == 0 {
            fast_run.thinking(format!("tick {i}"), None).await.unwrap();
        }
    }
    slow_run.completed(json!("done")).await.unwrap();
    fast_run.completed(json!("done")).await.unwrap();
    // (The memory bound itself is measured on a separate server process in
    // crates/agentwire-server/tests/slow_consumer.rs: this process also runs other tests.)

    // The healthy user got every one of its events meanwhile.
    let mut fast_seen = 0;
    while fast_seen < 12 {
        let f = healthy.next_json().await.unwrap();
        if f.get("seq").is_some() {
            fast_seen += 1;
        }
    }
    // The stalled connection was closed as a slow consumer and detached.
    wait_until("slow consumer detached", || bridge.stats().connections == 1).await;
    drop(stalled);

    // It resumes and gets everything history holds, in order, announced gap first.
    let head = bridge
        .stream_head(&UserId::new("slow").unwrap())
        .await
        .unwrap();
    assert_eq!(head.1, 10_002);
    let mut c =
        WsClient::connect(&server.ws_url(&format!("user=slow&last_seq=0&epoch={}", head.0)))
            .await
            .unwrap();
    let gap = c.next_json().await.unwrap();
    assert_eq!(gap["type"], "replay_gap");
    assert_eq!(gap["data"]["from_seq"], 1);
    let first_held = gap["data"]["to_seq"].as_u64().unwrap() + 1;
    assert_eq!(first_held, 10_002 - 5_000 + 1);
    let mut expected = first_held;
    while expected <= 10_002 {
        let f = c.next_json().await.unwrap();
        assert_eq!(f["seq"].as_u64(), Some(expected));
        expected += 1;
    }
    server.stop().await;
}

#[tokio::test]
async fn the_4008_close_code_reaches_a_client_that_reads_again_later() {
    // A client that pauses (but keeps its socket) past its queue is told why it was closed.
    let mut config = test_config();
    config.limits.queue_bytes = 16 * 1024;
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut c = server.connect("pauser").await;
    let factory = server.state.ready().executor().factory().clone();
    let run = factory
        .begin_run(
            UserContext::new_run(UserId::new("pauser").unwrap(), None, None),
            "load",
        )
        .unwrap();
    run.started(None).await.unwrap();
    for i in 0..20_000u32 {
        run.thinking("y".repeat(1024), Some(i)).await.unwrap();
    }
    run.completed(json!(null)).await.unwrap();
    let mut last = 0;
    while let Some(f) = c.next_json().await {
        if let Some(seq) = f["seq"].as_u64() {
            assert_eq!(seq, last + 1);
            last = seq;
        }
    }
    let close = c.close.expect("closed with a reason");
    assert_eq!(u16::from(close.code), 4008);
    assert!(last < 20_002, "it could not have read everything");
    server.stop().await;
}

#[tokio::test]
async fn resume_reports_gaps_and_treats_a_wrong_epoch_as_a_reset() {
    let mut config = test_config();
    config.history.max_events = 10;
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut c = server.connect("gappy").await;
    for i in 0..4 {
        c.run(&format!("r{i}"), "echo", "x").await; // 20 events; history keeps 10
    }
    let epoch = c.hello["data"]["epoch"].as_str().unwrap().to_owned();
    c.close().await;

    let mut c = WsClient::connect(&server.ws_url(&format!("user=gappy&last_seq=3&epoch={epoch}")))
        .await
        .unwrap();
    assert_eq!(
        c.hello["data"]["resumed"],
        json!({"from_seq": 4, "replayed": 10})
    );
    let gap = c.next_json().await.unwrap();
    assert_eq!(
        gap,
        json!({"type": "replay_gap", "data": {"from_seq": 4, "to_seq": 10}})
    );
    for seq in 11..=20 {
        assert_eq!(c.next_json().await.unwrap()["seq"], seq);
    }
    c.close().await;

    let mut c = WsClient::connect(&server.ws_url("user=gappy&last_seq=15&epoch=stale"))
        .await
        .unwrap();
    assert_eq!(c.hello["data"]["epoch"], epoch.as_str());
    assert_eq!(c.hello["data"]["resumed"]["from_seq"], 1);
    let gap = c.next_json().await.unwrap();
    assert_eq!(gap["data"], json!({"from_seq": 1, "to_seq": 10}));
    assert_eq!(c.next_json().await.unwrap()["seq"], 11);

    // A position ahead of the stream is refused with an error, and the connection goes live.
    let mut c = WsClient::connect(&server.ws_url(&format!("user=gappy&last_seq=99&epoch={epoch}")))
        .await
        .unwrap();
    let err = c.next_json().await.unwrap();
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("error"), Some("invalid_field"))
    );
    let (_, events) = c.run("live", "echo", "x").await;
    assert_eq!(events[0]["seq"], 21);
    server.stop().await;
}

#[tokio::test]
async fn cancel_ends_the_own_run_and_cannot_touch_another_users_run() {
    let mut config = test_config();
    config.agents.demo.step_delay = Duration::from_millis(300);
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut alice = server.connect("alice").await;
    let mut mallory = server.connect("mallory").await;
    alice
        .send_json(
            json!({"type": "user_message", "id": "a1", "content": "what is 2+2", "agent": "demo"}),
        )
        .await;
    let ack = loop {
        let f = alice.next_json().await.unwrap();
        if f["type"] == "ack" {
            break f;
        }
    };
    let run_id = ack["run_id"].as_str().unwrap().to_owned();

    mallory
        .send_json(json!({"type": "cancel", "id": "m1", "run_id": run_id}))
        .await;
    let err = mallory.next_json().await.unwrap();
    assert_eq!(
        (err["code"].as_str(), err["id"].as_str()),
        (Some("run_not_found"), Some("m1"))
    );

    alice
        .send_json(json!({"type": "cancel", "id": "a2", "run_id": run_id}))
        .await;
    let mut events = Vec::new();
    let mut cancel_acked = false;
    loop {
        let f = alice.next_json().await.unwrap();
        if f["type"] == "ack" && f["id"] == "a2" {
            cancel_acked = true;
            continue;
        }
        if f.get("seq").is_some() {
            let done = f["type"] == "agent_error" || f["type"] == "agent_completed";
            events.push(f);
            if done {
                break;
            }
        }
    }
    assert!(cancel_acked);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "agent_error");
    assert_eq!(last["data"]["code"], "cancelled");
    // Every tool call that started was completed before the end.
    let started = events
        .iter()
        .filter(|e| e["type"] == "tool_executing")
        .count();
    let completed = events
        .iter()
        .filter(|e| e["type"] == "tool_completed")
        .count();
    assert_eq!(started, completed);
    server.stop().await;
}

#[tokio::test]
async fn another_users_cancel_does_not_stop_the_run() {
    let mut config = test_config();
    config.agents.demo.step_delay = Duration::from_millis(50);
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut alice = server.connect("alice2").await;
    let mut mallory = server.connect("mallory2").await;
    alice
        .send_json(json!({"type": "user_message", "id": "a1", "content": "2+2"}))
        .await;
    let (ack, events) = {
        let first = loop {
            let f = alice.next_json().await.unwrap();
            if f["type"] == "ack" {
                break f;
            }
        };
        mallory
            .send_json(json!({"type": "cancel", "id": "m", "run_id": first["run_id"]}))
            .await;
        assert_eq!(mallory.next_json().await.unwrap()["code"], "run_not_found");
        let mut events = Vec::new();
        loop {
            let f = alice.next_json().await.unwrap();
            if f.get("seq").is_some() {
                let done = f["type"] == "agent_completed" || f["type"] == "agent_error";
                events.push(f);
                if done {
                    break (first, events);
                }
            }
        }
    };
    assert_eq!(events.last().unwrap()["type"], "agent_completed", "{ack}");
    server.stop().await;
}

#[tokio::test]
async fn flooding_gets_rate_limited_then_closed_with_4029() {
    let mut config = test_config();
    config.limits.messages_per_second = 5;
    config.limits.burst = 5;
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut c = server.connect("flood").await;
    for i in 0..30 {
        c.send_json(json!({"type": "ping", "id": format!("p{i}")}))
            .await;
    }
    let (mut pongs, mut limited) = (0, 0);
    while let Some(f) = c.next_json().await {
        match f["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") => {
                assert_eq!(f["code"], "rate_limited");
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pongs, 5, "the burst is served");
    assert!(limited >= 1, "then frames are refused with rate_limited");
    assert_eq!(u16::from(c.close.unwrap().code), 4029);
    // Other connections are unaffected.
    let mut d = server.connect("flood").await;
    d.send_json(json!({"type": "ping", "id": "ok"})).await;
    assert_eq!(d.next_json().await.unwrap()["type"], "pong");
    server.stop().await;
}

#[tokio::test]
async fn connection_and_run_limits_are_enforced() {
    let mut config = test_config();
    config.limits.max_connections_per_user = 2;
    config.limits.max_runs_per_user = 1;
    config.agents.demo.step_delay = Duration::from_millis(200);
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut a = server.connect("limited").await;
    let _b = server.connect("limited").await;
    let (mut third, _) = tokio_tungstenite::connect_async(server.ws_url("user=limited"))
        .await
        .unwrap();
    match third.next().await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1008);
            assert!(
                frame.reason.contains("max_connections_per_user"),
                "{}",
                frame.reason
            );
        }
        other => panic!("expected a 1008 close, got {other:?}"),
    }

    a.send_json(json!({"type": "user_message", "id": "one", "content": "2+2"}))
        .await;
    a.send_json(json!({"type": "user_message", "id": "two", "content": "3+3"}))
        .await;
    let err = loop {
        let f = a.next_json().await.unwrap();
        if f["type"] == "error" {
            break f;
        }
    };
    assert_eq!(
        (err["code"].as_str(), err["id"].as_str()),
        (Some("too_many_runs"), Some("two"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_silent_peer_is_dropped_after_the_heartbeat_timeout_and_a_live_one_stays() {
    let mut config = test_config();
    config.heartbeat.interval = Duration::from_millis(100);
    config.heartbeat.timeout = Duration::from_millis(400);
    let server = TestServer::start_with(config, Vec::new()).await;
    let bridge = server.state.ready().bridge().clone();
    let silent = stalled_client(&server, "silent").await;
    // A normal client answers pings (tungstenite does while reading).
    let mut live = server.connect("live").await;
    wait_until("both attached", || bridge.stats().connections == 2).await;
    let reader = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_millis(1200);
        while Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(50), live.stream_mut().next()).await;
        }
        live
    });
    wait_until("silent peer dropped", || bridge.stats().connections == 1).await;
    let mut live = reader.await.unwrap();
    assert_eq!(
        bridge.stats().connections,
        1,
        "the live client is still attached"
    );
    live.send_json(json!({"type": "ping", "id": "still"})).await;
    assert_eq!(live.next_json().await.unwrap()["id"], "still");
    drop(silent);
    server.stop().await;
}

#[tokio::test]
async fn websocket_pings_get_their_pongs_between_server_frames_and_a_client_close_gets_1000() {
    let server = TestServer::start().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("user=pinger"))
        .await
        .unwrap();
    // Pongs are written by the writer task between its own frames: interleave both and check
    // that every frame parses and every pong carries its ping's payload, in order.
    for i in 0..20u8 {
        futures_util::SinkExt::send(&mut ws, Message::Ping(vec![i; 100].into()))
            .await
            .unwrap();
        let ping = json!({"type": "ping", "id": format!("p{i}")}).to_string();
        futures_util::SinkExt::send(&mut ws, Message::text(ping))
            .await
            .unwrap();
    }
    let (mut pongs, mut replies) = (Vec::new(), 0);
    while pongs.len() < 20 || replies < 20 {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Pong(p)))) => pongs.push(p),
            Ok(Some(Ok(Message::Text(t)))) => {
                let f: serde_json::Value = serde_json::from_str(&t).unwrap();
                if f["type"] == "pong" {
                    assert_eq!(f["id"], format!("p{replies}"));
                    replies += 1;
                }
            }
            other => panic!("expected pongs and frames, got {other:?}"),
        }
    }
    for (i, p) in pongs.iter().enumerate() {
        assert_eq!(p.as_ref(), vec![i as u8; 100].as_slice(), "pong {i}");
    }
    ws.close(None).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected the server's close frame, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_runs_then_closes_with_1001() {
    let mut config = test_config();
    config.agents.demo.step_delay = Duration::from_millis(150);
    config.agents.demo.token_delay = Duration::from_millis(5);
    config.shutdown.grace = Duration::from_secs(5);
    config.shutdown.timeout = Duration::from_secs(8);
    let mut server = TestServer::start_with(config, Vec::new()).await;
    let ready_url = server.http_url("/health/ready");
    let ws_url = server.ws_url("user=late");
    let mut clients = Vec::new();
    for u in 0..3 {
        let mut c = server.connect(&format!("mid{u}")).await;
        c.send_json(json!({"type": "user_message", "id": "q", "content": "what is 6*7"}))
            .await;
        clients.push(c);
    }
    tokio::time::sleep(Duration::from_millis(100)).await; // runs are mid-way
    let began = Instant::now();
    server.begin_stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        reqwest::get(&ready_url).await.unwrap().status().as_u16(),
        503,
        "unready at once"
    );
    match tokio_tungstenite::connect_async(&ws_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 503),
        Err(_) => {} // the listener may already be closed
        Ok(_) => panic!("no new connections while draining"),
    }
    for mut c in clients {
        let mut types = Vec::new();
        while let Some(f) = c.next_json().await {
            if f.get("seq").is_some() {
                types.push(f["type"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(types.first().map(String::as_str), Some("agent_started"));
        assert_eq!(
            types.last().map(String::as_str),
            Some("agent_completed"),
            "the run finished: {types:?}"
        );
        assert_eq!(u16::from(c.close.expect("a close frame").code), 1001);
    }
    server.join().await;
    assert!(
        began.elapsed() < Duration::from_secs(8),
        "within shutdown.timeout"
    );
}

//! Cancel, limits, heartbeats and graceful shutdown (issue 3) — real server, real sockets.

use std::time::{Duration, Instant};

use agentwire_test::{TestServer, test_config};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::reliability::{stalled_client, wait_until};

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

//! A user sends a message; the run's events arrive in grammar order with seq +1 each.

use agentwire_test::TestServer;
use serde_json::{Value, json};

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn assert_consecutive(events: &[Value], first: u64) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e["seq"].as_u64(),
            Some(first + i as u64),
            "seq of event {i}: {e}"
        );
    }
}

#[tokio::test]
async fn echo_run_delivers_the_five_lifecycle_events_in_order() {
    let server = TestServer::start().await;
    let mut c = server.connect("alice").await;
    assert_eq!(c.hello["data"]["user_id"], "alice");
    assert_eq!(c.hello["data"]["last_seq"], 0);
    assert!(
        c.hello.get("seq").is_none(),
        "connection_established has no seq"
    );

    let (ack, events) = c.run("req-1", "echo", "hello").await;
    assert_eq!(ack["id"], "req-1");
    assert!(ack["run_id"].as_str().unwrap().starts_with("r_"));
    assert_eq!(
        types(&events),
        [
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_completed"
        ]
    );
    assert_consecutive(&events, 1);
    for e in &events {
        assert_eq!(e["run_id"], ack["run_id"]);
        assert_eq!(e["thread_id"], ack["thread_id"]);
        assert_eq!(e["agent"], "echo");
        assert!(e["ts"].as_u64().unwrap() > 1_700_000_000_000);
    }
    assert_eq!(events[0]["data"]["input"], "hello");
    assert_eq!(events[2]["data"]["call_id"], events[3]["data"]["call_id"]);
    assert_eq!(events[3]["data"]["ok"], true);
    assert!(events[3]["data"]["duration_ms"].is_u64());
    assert_eq!(events[4]["data"]["result"], "hello");

    // A second run continues the same stream, in the same thread when asked.
    c.send_json(
        json!({"type": "user_message", "id": "req-2", "agent": "echo", "content": "again",
        "thread_id": ack["thread_id"]}),
    )
    .await;
    let (ack2, events2) = c.until_run_ends("req-2").await;
    assert_eq!(ack2["thread_id"], ack["thread_id"]);
    assert_consecutive(&events2, 6);
    server.stop().await;
}

#[tokio::test]
async fn demo_run_thinks_calls_tools_and_streams_its_answer() {
    let server = TestServer::start().await;
    let mut c = server.connect("bob").await;
    let (_ack, events) = c.run("q", "demo", "What is 6 * 7?").await;
    let t = types(&events);
    assert_eq!(t.first(), Some(&"agent_started"));
    assert_eq!(t.last(), Some(&"agent_completed"));
    assert_eq!(t.iter().filter(|t| **t == "agent_thinking").count(), 3);
    let tools: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "tool_executing")
        .map(|e| e["data"]["tool"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["clock", "calculator"]);
    let calc = events
        .iter()
        .find(|e| e["type"] == "tool_completed" && e["data"]["tool"] == "calculator")
        .unwrap();
    assert_eq!(calc["data"]["result"], 42);
    let answer: String = events
        .iter()
        .filter(|e| e["type"] == "agent_message_delta")
        .map(|e| e["data"]["delta"].as_str().unwrap())
        .collect();
    assert!(answer.starts_with("6 * 7 = 42"), "{answer}");
    assert_eq!(
        events.last().unwrap()["data"]["result"]["answer"],
        answer.as_str()
    );
    // Every tool_executing is completed before the terminal event, and seqs have no hole.
    assert_consecutive(&events, 1);
    server.stop().await;
}

#[tokio::test]
async fn one_user_on_two_connections_sees_the_same_events_with_the_same_seqs() {
    let server = TestServer::start().await;
    let mut a = server.connect("carol").await;
    let mut b = server.connect("carol").await;
    let (_, events_a) = a.run("r1", "echo", "twice").await;
    let mut events_b = Vec::new();
    while events_b.len() < events_a.len() {
        let f = b.next_json().await.unwrap();
        if f.get("seq").is_some() {
            events_b.push(f);
        }
    }
    assert_eq!(events_a, events_b, "identical frames, seqs included");
    server.stop().await;
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let server = TestServer::start().await;
    let mut c = server.connect("dave").await;
    c.send_json(json!({"type": "ping", "id": "p1"})).await;
    assert_eq!(
        c.next_json().await.unwrap(),
        json!({"type": "pong", "id": "p1"})
    );
    server.stop().await;
}

//! Per-event and per-page bounds in bytes, against the real `agentwire` process on loopback: one
//! largest event size refused with `payload_too_large` on every way in, and `/v1/events` pages
//! capped in bytes that continue exactly where the last one stopped. (History capped in bytes, on
//! both brokers: `tests/history_bytes.rs` in the workspace.)

mod support;

use agentwire_core::{AgentStarted, EventKind, RunEvent, RunId, ThreadId, unix_millis};
use futures_util::SinkExt;
use serde_json::{Value, json};
use support::{Server, echo_run, next_json, send_message};
use tokio_tungstenite::tungstenite::Message;

const MAX_EVENT: usize = 32 * 1024;
const API_KEY: &str = "a-test-api-key-of-enough-bytes";

fn start(history_bytes: usize, page_bytes: usize) -> Server {
    let (history_bytes, page_bytes) = (history_bytes.to_string(), page_bytes.to_string());
    Server::start(&[
        ("AGENTWIRE_LIMITS__MAX_EVENT_BYTES", &MAX_EVENT.to_string()),
        ("AGENTWIRE_HISTORY__MAX_BYTES", &history_bytes),
        ("AGENTWIRE_LIMITS__EVENTS_PAGE_BYTES", &page_bytes),
        ("AGENTWIRE_LIMITS__MESSAGES_PER_SECOND", "10000"),
        ("AGENTWIRE_LIMITS__BURST", "10000"),
        ("AGENTWIRE_API_KEY", API_KEY),
    ])
}

/// `n` echo runs of `user` with the contents `content(i)`; every event's exact JSON, by seq - 1.
async fn echo_runs(
    server: &Server,
    user: &str,
    n: usize,
    content: impl Fn(usize) -> String,
) -> Vec<String> {
    let (mut ws, _) = server.ws(user, "").await;
    let mut events = Vec::new();
    for i in 0..n {
        for (text, frame) in echo_run(&mut ws, &format!("c{i}"), &content(i)).await {
            assert_eq!(frame["seq"].as_u64(), Some(events.len() as u64 + 1));
            events.push(text);
        }
    }
    events
}

/// The length `content` of an `echo` run's `agent_started` takes for that event to be exactly
/// `max` bytes (its seq counted at 20 digits): ids of the lengths the server generates.
fn content_len_for_started_of(max: usize) -> usize {
    let event = RunEvent {
        run_id: RunId::generate(),
        thread_id: ThreadId::generate(),
        agent: "echo".into(),
        ts: unix_millis(),
        kind: EventKind::AgentStarted(AgentStarted {
            input: Some(String::new()),
        }),
    };
    max - event.envelope_len(u64::MAX)
}

async fn post(url: String, auth: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(key) = auth {
        request = request.bearer_auth(key);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `POST /v1/runs`, `POST /agui/{agent}` and `POST /v1/publish` refuse an event over the limit
/// with 413 `payload_too_large`; a refused publish takes no seq and its run goes on.
async fn http_ways_in_refuse_it(server: &Server, too_big: &str) {
    // `POST /v1/runs` and `POST /agui/{agent}`: 413 with the same code.
    let (status, body) = post(
        server.url("/v1/runs?user=big"),
        None,
        json!({"agent": "echo", "content": too_big}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body:.300}"
    );
    let input = json!({"threadId": "t-big", "runId": "r-big", "state": {}, "tools": [], "context": [],
        "forwardedProps": {}, "messages": [{"id": "u1", "role": "user", "content": too_big}]});
    let (status, body) = post(server.url("/agui/echo?user=big"), None, input).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body:.300}"
    );

    // `POST /v1/publish`: the oversized delta is refused, takes no seq, and the run goes on.
    let publish = |kind: &str, data: Value| {
        let event = json!({"user_id": "big", "run_id": "r_ext", "thread_id": "t_ext", "agent": "py", "type": kind, "data": data});
        post(server.url("/v1/publish"), Some(API_KEY), event)
    };
    let (status, first) = publish("agent_started", json!({})).await;
    assert_eq!(status, 200, "{first}");
    let delta = json!({"message_id": "m", "delta": too_big});
    let (status, body) = publish("agent_message_delta", delta).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body:.300}"
    );
    let (status, last) = publish("agent_completed", json!({"result": "ok"})).await;
    assert_eq!(status, 200, "{last}");
    assert_eq!(
        last["seq"].as_u64(),
        Some(first["seq"].as_u64().unwrap() + 1)
    );
}

#[tokio::test]
async fn the_largest_event_is_refused_with_payload_too_large_on_every_way_in() {
    let server = start(8 << 20, 1 << 20);
    let too_big = "x".repeat(MAX_EVENT + 1);

    // `/ws`: a user_message whose content cannot fit one event (the frame itself is within
    // limits.max_frame_bytes): an error frame, no run; the connection goes on.
    let (mut ws, _) = server.ws("big", "").await;
    send_message(&mut ws, "c1", "echo", &too_big).await;
    let refused = next_json(&mut ws).await.unwrap();
    assert_eq!(refused["type"], "error", "{refused:.300}");
    assert_eq!(
        (refused["code"].as_str(), refused["id"].as_str()),
        (Some("payload_too_large"), Some("c1"))
    );
    println!("/ws: {}", refused["message"]);

    // An agent's event: the run's agent_started fits exactly, echo's tool_executing carrying
    // the same text does not. The run ends with agent_error payload_too_large.
    let content = "y".repeat(content_len_for_started_of(MAX_EVENT));
    let frames = echo_run(&mut ws, "c2", &content).await;
    let types: Vec<&str> = frames
        .iter()
        .map(|(_, f)| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["agent_started", "agent_thinking", "agent_error"]);
    let (started, json) = &frames[0];
    let seq_digits = json["seq"].to_string().len();
    assert_eq!(
        started.len(),
        MAX_EVENT - (20 - seq_digits),
        "agent_started at the limit"
    );
    let error = &frames[2].1["data"];
    assert_eq!(error["code"], "payload_too_large", "{error:.300}");
    println!("agent: {}", error["message"]);
    // One byte more content, and the run is refused before it starts.
    send_message(&mut ws, "c3", "echo", &format!("{content}y")).await;
    assert_eq!(
        next_json(&mut ws).await.unwrap()["code"],
        "payload_too_large"
    );
    assert_eq!(echo_run(&mut ws, "c4", "still served").await.len(), 5);

    http_ways_in_refuse_it(&server, &too_big).await;
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn events_pages_are_capped_in_bytes_streamed_and_continue_exactly() {
    const PAGE: usize = 40_000;
    let server = start(8 << 20, PAGE);
    // 20 runs of 100 to 9,000 bytes of content: 100 events of mixed sizes, ~400 KB.
    let events = echo_runs(&server, "pg", 20, |i| "p".repeat(100 + i * 4567 % 9000)).await;
    let head = events.len() as u64;

    let (gap, pages) = server.pages("pg", "").await;
    assert_eq!(gap, Value::Null);
    println!(
        "/v1/events with events_page_bytes = {PAGE}: {} pages of {:?} bytes",
        pages.len(),
        pages.iter().map(|p| p.bytes()).collect::<Vec<_>>()
    );
    let mut after = 0;
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(page.head, head);
        assert_eq!(
            page.seqs.first(),
            Some(&(after + 1)),
            "page {i} starts after next_after"
        );
        assert_eq!(page.next_after, *page.seqs.last().unwrap());
        assert!(page.bytes() <= PAGE, "page {i}: {} bytes", page.bytes());
        if let Some(next) = pages.get(i + 1) {
            // Stopped exactly where the next event would have passed the cap.
            assert!(
                page.bytes() + next.events[0].len() > PAGE,
                "page {i} stopped early"
            );
        }
        after = page.next_after;
    }
    assert_eq!(after, head);
    let listed: Vec<&String> = pages.iter().flat_map(|p| &p.events).collect();
    assert_eq!(listed.len(), events.len());
    assert!(
        listed.iter().zip(&events).all(|(a, b)| *a == b),
        "every event once, in order, as sent on /ws"
    );

    // `limit` still counts events; the body is streamed (chunked), not sent with a length.
    let r = reqwest::get(server.url("/v1/events?user=pg&after=10&limit=7"))
        .await
        .unwrap();
    assert_eq!(r.headers().get("content-length"), None);
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    let page = support::Page::parse(&r.text().await.unwrap());
    assert_eq!((page.seqs, page.next_after), ((11..=17).collect(), 17));
    // Caught up: an empty page whose next_after is the head.
    let r = reqwest::get(server.url(&format!("/v1/events?user=pg&after={head}")))
        .await
        .unwrap();
    let page = support::Page::parse(&r.text().await.unwrap());
    assert_eq!(
        (page.events.len(), page.next_after, page.head),
        (0, head, head)
    );
}

/// A raw WebSocket text frame over the size limit still closes with 1009: the frame bound stays
/// the transport's, the event bound the stream's.
#[tokio::test]
async fn frames_over_the_frame_limit_still_close_with_1009() {
    let server = start(8 << 20, 1 << 20);
    let (mut ws, _) = server.ws("frames", "").await;
    let huge = json!({"type": "user_message", "id": "c", "content": "z".repeat(70_000)});
    let _ = ws.send(Message::text(huge.to_string())).await;
    let close = loop {
        match futures_util::StreamExt::next(&mut ws).await {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            _ => break None,
        }
    };
    assert_eq!(close, Some(1009));
}

//! agentwire's own data as durable streams: a run, read by offset and followed by the stock
//! client across forced disconnects.

use super::*;

/// The user's event stream: a long-poll at its tail (the offset of `last_seq`) wakes with the
/// next run's first event.
async fn a_long_poll_at_the_tail_wakes_with_the_next_run(
    server: &TestServer,
    ada: &mut agentwire_test::WsClient,
    last_seq: u64,
) {
    let http = reqwest::Client::new();
    let tail = http
        .head(server.http_url("/ds/agentwire/events?user=ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    let tail = tail.headers()["stream-next-offset"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(tail.ends_with(&format!("{last_seq:016}")));
    let poll = tokio::spawn(
        http.get(server.http_url(&format!(
            "/ds/agentwire/events?user=ada&offset={tail}&live=long-poll"
        )))
        .send(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, more) = ada.run("r2", "demo", "again").await;
    let polled = poll.await.unwrap().unwrap();
    assert_eq!(polled.status(), 200);
    let woke: Vec<serde_json::Value> = polled.json().await.unwrap();
    assert_eq!(
        woke[0], more[0],
        "the long-poll returns the next run's first event"
    );
}

pub(crate) async fn a_run_is_a_read_only_durable_stream_whose_offsets_are_seqs() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let mut ada = server.connect("ada").await;
    let (ack, events) = ada.run("r1", "demo", "what is 6*7?").await;
    let run_id = ack["run_id"].as_str().unwrap().to_owned();
    let run_url =
        |query: &str| server.http_url(&format!("/ds/agentwire/runs/{run_id}?user=ada{query}"));

    // Catch-up from the start: the run's events, in order, then EOF (the run ended).
    let read = http.get(run_url("&offset=-1")).send().await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["content-type"], "application/json");
    let next = read.headers()["stream-next-offset"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        read.headers()["stream-closed"],
        "true",
        "a finished run is a closed stream"
    );
    let got: Vec<serde_json::Value> = read.json().await.unwrap();
    assert_eq!(got, events, "the same events /ws delivered");
    let last_seq = events.last().unwrap()["seq"].as_u64().unwrap();
    assert!(
        next.ends_with(&format!("{last_seq:016}")),
        "the offset is the last seq: {next}"
    );

    // Resuming after the second event returns the rest; offsets map to seqs.
    let second = events[1]["seq"].as_u64().unwrap();
    let resumed: Vec<serde_json::Value> = get_json(
        &http,
        run_url(&format!("&offset=0000000000000000_{second:016}")),
    )
    .await;
    assert_eq!(resumed, events[2..]);

    // Read-only; and another user's run is not visible.
    let append = http
        .post(run_url(""))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(append.status(), 405);
    let bob: Vec<serde_json::Value> = get_json(
        &http,
        server.http_url(&format!("/ds/agentwire/runs/{run_id}?user=bob&offset=-1")),
    )
    .await;
    assert!(bob.is_empty(), "bob's stream has no events of ada's run");

    a_long_poll_at_the_tail_wakes_with_the_next_run(&server, &mut ada, last_seq).await;
    ada.close().await;
    server.stop().await;
}

/// How long the server keeps an SSE response open in the forced-disconnect test.
pub(crate) const SSE_LIFETIME: Duration = Duration::from_millis(1200);

pub(crate) async fn the_stock_client_follows_a_run_across_forced_disconnects() {
    let dir = suite_dir();
    let mut config = agentwire_test::test_config();
    // A demo run paced to last ~3 s, and SSE responses the server ends every 1.2 s: the client
    // must reconnect at its offset at least twice during the run. (Under 1 s the client counts
    // each as a "short connection" and, after three, @durable-streams/client 0.2.7 ends the
    // stream instead of falling back to long-poll: docs/durable-streams.md.)
    config.agents.demo = Default::default();
    config.agents.demo.token_delay = Duration::from_millis(200);
    config.durable_streams.sse_lifetime = SSE_LIFETIME;
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut ada = server.connect("ada").await;
    ada.send_json(serde_json::json!({
        "type": "user_message", "id": "f1", "agent": "demo", "content": "tell me a story"
    }))
    .await;
    // Events may come before the ack: keep every event frame, filter by the run afterwards.
    let mut frames = Vec::new();
    let ack = loop {
        let frame = ada.next_json().await.expect("the ack");
        if frame["type"] == "ack" {
            break frame;
        }
        frames.push(frame);
    };
    let run_id = ack["run_id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let mut node = Command::new("node");
    node.current_dir(&dir)
        .arg("follow_run.mjs")
        .arg(server.http_url(&format!("/ds/agentwire/runs/{run_id}?user=ada")));
    let client = tokio::spawn(harness::run_bounded(node, SUITE_TIMEOUT));
    while !frames.last().is_some_and(|f: &serde_json::Value| {
        f["run_id"] == run_id.as_str()
            && matches!(f["type"].as_str(), Some("agent_completed" | "agent_error"))
    }) {
        frames.push(ada.next_json().await.expect("the run's events"));
    }
    let events: Vec<serde_json::Value> = frames
        .into_iter()
        .filter(|f| f.get("seq").is_some() && f["run_id"] == run_id.as_str())
        .collect();
    let output = client.await.unwrap();
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "status {:?}\n{}",
        output.status,
        plain(&output.stderr)
    );
    let received: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("the client prints the events as JSON");
    assert_eq!(
        received,
        events,
        "every event exactly once, in order; client stderr:\n{}",
        plain(&output.stderr)
    );
    assert!(
        took > SSE_LIFETIME * 2,
        "the run outlived at least two SSE responses ({took:?})"
    );
    ada.close().await;
    server.stop().await;
}

//! The HTTP API of SPEC §5 over real HTTP: runs, cancel, events, the SSE stream with resume,
//! publish with the API key and the grammar, error bodies, and the AG-UI endpoint.

use std::time::Duration;

use agentwire_startup::{AgentwireConfig, AuthMode};
use agentwire_test::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

const API_KEY: &str = "test-api-key-0123456789";
const WAIT: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

async fn server_with_key() -> TestServer {
    let mut config = agentwire_test::test_config();
    config.api_key = Some(API_KEY.into());
    TestServer::start_with(config, Vec::new()).await
}

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let body = r.json::<Value>().await.expect("a JSON body");
    (status, body)
}

/// Asserts an error body `{error:{code,message}}` with `status` and `code`.
fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

/// Polls `/v1/events` until the run's terminal event is in history; returns that run's events.
async fn run_events(server: &TestServer, user: &str, run_id: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let url = server.http_url(&format!("/v1/events?user={user}&after=0"));
        let (status, page) = json_of(client().get(url).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let events: Vec<Value> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["run_id"] == run_id)
            .cloned()
            .collect();
        if events
            .last()
            .is_some_and(|e| matches!(e["type"].as_str(), Some("agent_completed" | "agent_error")))
        {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {run_id} did not end: {page}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads a raw SSE response: parsed events as (id, event name, data).
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

#[derive(Debug)]
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: Value,
}

impl SseReader {
    fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), StatusCode::OK);
        let ct = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` when the stream ended.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, None, Vec::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                    }
                }
                if data.is_empty() {
                    continue; // a comment (keepalive)
                }
                let data = serde_json::from_str(&data.join("\n")).expect("JSON data");
                return Some(SseEvent { id, event, data });
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("an SSE chunk within the timeout")
                .expect("the stream reads");
            match chunk {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                None => return None,
            }
        }
    }
}

#[tokio::test]
async fn runs_start_and_their_events_page_through_v1_events() {
    let server = TestServer::start().await;
    let http = client();
    let r = http
        .post(server.http_url("/v1/runs?user=hana"))
        .json(&json!({"agent": "echo", "content": "hello"}))
        .send()
        .await
        .unwrap();
    let (status, started) = json_of(r).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    assert!(started["thread_id"].as_str().unwrap().starts_with("t_"));

    let events = run_events(&server, "hana", &run_id).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_completed"
        ]
    );
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[0]["thread_id"], started["thread_id"]);

    // `after` pages: only what follows, with the head and the next offset.
    let url = server.http_url("/v1/events?user=hana&after=3");
    let (_, page) = json_of(http.get(url).send().await.unwrap()).await;
    assert_eq!(page["head"], 5);
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["events"][0]["seq"], 4);
    assert_eq!(page["next_after"], 5);
    assert!(page["gap"].is_null());
    // Another user's history is not hana's.
    let (_, other) = json_of(
        http.get(server.http_url("/v1/events?user=ivan"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(other["events"], json!([]));

    // Unknown or malformed run ids are 404 run_not_found.
    let cancel = |user: &str, id: &str| {
        http.post(server.http_url(&format!("/v1/runs/{id}/cancel?user={user}")))
            .send()
    };
    let unknown = json_of(cancel("hana", "r_nope").await.unwrap()).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "run_not_found");
    let invalid = json_of(cancel("hana", "bad%20id").await.unwrap()).await;
    assert_error(&invalid, StatusCode::NOT_FOUND, "run_not_found");
    server.stop().await;
}

#[tokio::test]
async fn only_the_owner_can_cancel_a_run_and_it_ends_with_cancelled() {
    let mut config = agentwire_test::test_config();
    config.agents.demo = agentwire_agent_registry::DemoSettings::default();
    let server = TestServer::start_with(config, Vec::new()).await;
    let http = client();
    let (_, started) = json_of(
        http.post(server.http_url("/v1/runs?user=jo"))
            .json(&json!({"agent": "demo", "content": "slowly"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let run_id = started["run_id"].as_str().unwrap();
    let theirs = http
        .post(server.http_url(&format!("/v1/runs/{run_id}/cancel?user=ivan")))
        .send()
        .await
        .unwrap();
    assert_error(
        &json_of(theirs).await,
        StatusCode::NOT_FOUND,
        "run_not_found",
    );
    let r = http
        .post(server.http_url(&format!("/v1/runs/{run_id}/cancel?user=jo")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let events = run_events(&server, "jo", run_id).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "agent_error");
    assert_eq!(last["data"]["code"], "cancelled");
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_json_error_bodies() {
    let mut config = agentwire_test::test_config();
    config.limits.max_body_bytes = 1024;
    let server = TestServer::start_with(config, Vec::new()).await;
    let http = client();
    let runs = server.http_url("/v1/runs?user=kim");

    let bad = http
        .post(&runs)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(&json_of(bad).await, StatusCode::BAD_REQUEST, "bad_json");

    let missing = http
        .post(&runs)
        .json(&json!({"agent": "echo"}))
        .send()
        .await
        .unwrap();
    assert_error(
        &json_of(missing).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );

    let big = "x".repeat(4096);
    let too_big = http
        .post(&runs)
        .json(&json!({"agent": "echo", "content": big}))
        .send()
        .await
        .unwrap();
    assert_error(
        &json_of(too_big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );

    let unknown = http
        .post(&runs)
        .json(&json!({"agent": "nobody", "content": "hi"}))
        .send()
        .await
        .unwrap();
    assert_error(
        &json_of(unknown).await,
        StatusCode::NOT_FOUND,
        "unknown_agent",
    );

    let anonymous = http
        .post(server.http_url("/v1/runs"))
        .json(&json!({"agent": "echo", "content": "hi"}))
        .send()
        .await
        .unwrap();
    assert_error(
        &json_of(anonymous).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    for path in ["/v1/events", "/v1/stream"] {
        let r = http.get(server.http_url(path)).send().await.unwrap();
        assert_error(&json_of(r).await, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let r = http
        .post(server.http_url("/agui/demo"))
        .json(&json!({"threadId": "t", "runId": "r", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_error(&json_of(r).await, StatusCode::UNAUTHORIZED, "unauthorized");
    server.stop().await;
}

#[tokio::test]
async fn jwt_auth_applies_to_the_http_api() {
    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";
    let mut config = agentwire_test::test_config();
    config.auth.mode = AuthMode::Jwt;
    config.auth.jwt_secret = Some(SECRET.into());
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut minting = AgentwireConfig::default();
    minting.auth.jwt_secret = Some(SECRET.into());
    let token = agentwire_server::Authenticator::from_config(&minting)
        .mint("lee", Duration::from_secs(60))
        .unwrap();
    let http = client();
    // Dev auth is off: ?user= alone is refused.
    let r = http
        .get(server.http_url("/v1/events?user=lee"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .post(server.http_url("/v1/runs"))
        .bearer_auth(&token)
        .json(&json!({"agent": "echo", "content": "jwt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = http
        .get(server.http_url(&format!("/v1/events?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn sse_stream_delivers_events_with_ids_and_resumes_from_last_event_id() {
    let server = TestServer::start().await;
    let http = client();
    let mut sse = SseReader::new(
        http.get(server.http_url("/v1/stream?user=mia"))
            .send()
            .await
            .unwrap(),
    );
    let hello = sse.next().await.unwrap();
    assert_eq!(hello.data["type"], "connection_established");
    assert_eq!(hello.data["data"]["user_id"], "mia");
    assert!(hello.id.is_none());
    let epoch = hello.data["data"]["epoch"].as_str().unwrap().to_owned();

    let start = |content: &str| {
        http.post(server.http_url("/v1/runs?user=mia"))
            .json(&json!({"agent": "echo", "content": content}))
            .send()
    };
    assert_eq!(start("one").await.unwrap().status(), StatusCode::ACCEPTED);
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let e = sse.next().await.unwrap();
        assert_eq!(e.id.as_deref(), Some(e.data["seq"].to_string().as_str()));
        seen.push(e.data);
    }
    assert_eq!(seen[0]["type"], "agent_started");
    assert_eq!(seen[4]["type"], "agent_completed");
    drop(sse);

    // Offline: a second run. Reconnecting with Last-Event-ID: 3 replays 4.. exactly once.
    assert_eq!(start("two").await.unwrap().status(), StatusCode::ACCEPTED);
    let deadline = tokio::time::Instant::now() + WAIT;
    while server
        .state
        .ready()
        .bridge()
        .stream_head(&"mia".parse_user())
        .await
        .unwrap()
        .1
        < 10
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut resumed = SseReader::new(
        http.get(server.http_url(&format!("/v1/stream?user=mia&epoch={epoch}")))
            .header("Last-Event-ID", "3")
            .send()
            .await
            .unwrap(),
    );
    let hello = resumed.next().await.unwrap();
    assert_eq!(hello.data["data"]["resumed"]["from_seq"], 4);
    assert_eq!(hello.data["data"]["resumed"]["replayed"], 7);
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        while ids.len() < 7 {
            ids.push(resumed.next().await.unwrap().id.unwrap());
        }
        ids
    };
    assert_eq!(ids, ["4", "5", "6", "7", "8", "9", "10"]);
    // ?last_seq= works as well, and live events follow the replay.
    let mut by_query = SseReader::new(
        http.get(server.http_url("/v1/stream?user=mia&last_seq=9"))
            .send()
            .await
            .unwrap(),
    );
    by_query.next().await.unwrap();
    assert_eq!(by_query.next().await.unwrap().id.as_deref(), Some("10"));
    assert_eq!(start("three").await.unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(by_query.next().await.unwrap().id.as_deref(), Some("11"));
    assert_eq!(resumed.next().await.unwrap().id.as_deref(), Some("11"));

    // A garbage Last-Event-ID is a 422, not a silent replay from 0.
    let r = http
        .get(server.http_url("/v1/stream?user=mia"))
        .header("Last-Event-ID", "abc")
        .send()
        .await
        .unwrap();
    assert_error(
        &json_of(r).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    drop((resumed, by_query));
    server.stop().await;
}

#[tokio::test]
async fn sse_stream_detaches_when_the_client_goes_away() {
    let server = TestServer::start().await;
    let before = server.state.ready().bridge().stats().connections;
    let mut sse = SseReader::new(
        client()
            .get(server.http_url("/v1/stream?user=ned"))
            .send()
            .await
            .unwrap(),
    );
    sse.next().await.unwrap();
    assert_eq!(
        server.state.ready().bridge().stats().connections,
        before + 1
    );
    drop(sse);
    let deadline = tokio::time::Instant::now() + WAIT;
    // The server notices at its next write; a published event makes it write.
    let runs = server.http_url("/v1/runs?user=ned");
    client()
        .post(&runs)
        .json(&json!({"agent": "echo", "content": "x"}))
        .send()
        .await
        .unwrap();
    while server.state.ready().bridge().stats().connections > before {
        assert!(tokio::time::Instant::now() < deadline, "not detached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

trait ParseUser {
    fn parse_user(&self) -> agentwire_core::UserId;
}

impl ParseUser for str {
    fn parse_user(&self) -> agentwire_core::UserId {
        agentwire_core::UserId::new(self).unwrap()
    }
}

async fn publish(server: &TestServer, key: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut r = client().post(server.http_url("/v1/publish")).json(&body);
    if let Some(key) = key {
        r = r.bearer_auth(key);
    }
    json_of(r.send().await.unwrap()).await
}

fn event(run: &str, t: &str, data: Value) -> Value {
    json!({"user_id": "ola", "run_id": run, "thread_id": "t_ext", "agent": "py", "type": t, "data": data})
}

#[tokio::test]
async fn publish_streams_an_external_run_to_the_users_websocket() {
    let server = server_with_key().await;
    let mut ws = server.connect("ola").await;
    let run = [
        event("r_ext1", "agent_started", json!({"input": "hi"})),
        event(
            "r_ext1",
            "agent_thinking",
            json!({"thought": "hm", "step": 1}),
        ),
        event(
            "r_ext1",
            "tool_executing",
            json!({"call_id": "c1", "tool": "search", "args": {"q": "x"}}),
        ),
        event(
            "r_ext1",
            "tool_completed",
            json!({"call_id": "c1", "tool": "search", "ok": true, "result": [1], "duration_ms": 3}),
        ),
        event(
            "r_ext1",
            "agent_message_delta",
            json!({"message_id": "m1", "delta": "done"}),
        ),
        event(
            "r_ext1",
            "agent_completed",
            json!({"result": "done", "duration_ms": 9}),
        ),
    ];
    for (i, e) in run.iter().enumerate() {
        let (status, body) = publish(&server, Some(API_KEY), e.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["seq"], i as u64 + 1);
    }
    for (i, sent) in run.iter().enumerate() {
        let got = ws.next_json().await.unwrap();
        assert_eq!(got["seq"], i as u64 + 1);
        assert_eq!(got["type"], sent["type"]);
        assert_eq!(got["run_id"], "r_ext1");
        assert_eq!(got["agent"], "py");
    }

    // Out of grammar: after the terminal event, before agent_started, unknown calls.
    let after_end = publish(
        &server,
        Some(API_KEY),
        event("r_ext1", "agent_thinking", json!({"thought": "late"})),
    )
    .await;
    assert_error(&after_end, StatusCode::CONFLICT, "out_of_grammar");
    let not_started = publish(
        &server,
        Some(API_KEY),
        event("r_ext2", "agent_thinking", json!({"thought": "x"})),
    )
    .await;
    assert_error(&not_started, StatusCode::CONFLICT, "out_of_grammar");
    publish(
        &server,
        Some(API_KEY),
        event("r_ext2", "agent_started", json!({})),
    )
    .await;
    let unknown_call = publish(
        &server,
        Some(API_KEY),
        event(
            "r_ext2",
            "tool_completed",
            json!({"call_id": "zz", "tool": "t", "ok": true}),
        ),
    )
    .await;
    assert_error(&unknown_call, StatusCode::CONFLICT, "out_of_grammar");
    // The refused events took no seq.
    let (_, next) = publish(
        &server,
        Some(API_KEY),
        event(
            "r_ext2",
            "agent_error",
            json!({"code": "agent_failed", "message": "x"}),
        ),
    )
    .await;
    assert_eq!(next["seq"], 8);

    // Bad bodies.
    let bad_type = publish(
        &server,
        Some(API_KEY),
        event("r_ext3", "agent_dancing", json!({})),
    )
    .await;
    assert_error(&bad_type, StatusCode::UNPROCESSABLE_ENTITY, "unknown_type");
    let bad_data = publish(
        &server,
        Some(API_KEY),
        event("r_ext3", "tool_executing", json!({})),
    )
    .await;
    assert_error(&bad_data, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let mut reserved = event("r_ext3", "agent_started", json!({}));
    reserved["user_id"] = json!("__health");
    assert_error(
        &publish(&server, Some(API_KEY), reserved).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );

    // Wrong or missing key.
    let wrong = publish(
        &server,
        Some("not-the-key-at-all"),
        event("r_ext4", "agent_started", json!({})),
    )
    .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
    let none = publish(&server, None, event("r_ext4", "agent_started", json!({}))).await;
    assert_error(&none, StatusCode::UNAUTHORIZED, "unauthorized");
    // A user's dev credentials are not the API key.
    let r = client()
        .post(server.http_url("/v1/publish?user=ola"))
        .json(&event("r_ext4", "agent_started", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test]
async fn publish_does_not_exist_without_an_api_key() {
    let server = TestServer::start().await;
    let got = publish(
        &server,
        Some(API_KEY),
        event("r_x", "agent_started", json!({})),
    )
    .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    server.stop().await;
}

#[tokio::test]
async fn agui_streams_a_demo_run_as_ag_ui_events_in_order() {
    let server = TestServer::start().await;
    let input = json!({
        "threadId": "thread-1",
        "runId": "run-1",
        "state": {},
        "tools": [],
        "context": [],
        "forwardedProps": {},
        "messages": [
            {"id": "u1", "role": "user", "content": "What is 6 * 7?"}
        ]
    });
    let r = client()
        .post(server.http_url("/agui/demo?user=pia"))
        .header("accept", "text/event-stream")
        .json(&input)
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::new(r);
    let mut events = Vec::new();
    while let Some(e) = sse.next().await {
        events.push(e);
    }
    let types: Vec<&str> = events
        .iter()
        .map(|e| e.data["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"RUN_STARTED"), "{types:?}");
    assert_eq!(types.last(), Some(&"RUN_FINISHED"), "{types:?}");
    assert_eq!(events[0].data["threadId"], "thread-1");
    assert_eq!(events[0].data["runId"], "run-1");
    let count = |t: &str| types.iter().filter(|x| **x == t).count();
    assert_eq!(count("STEP_STARTED"), 3);
    assert_eq!(count("STEP_FINISHED"), 3);
    assert_eq!(count("TOOL_CALL_START"), 2);
    assert_eq!(count("TOOL_CALL_END"), 2);
    assert_eq!(count("TOOL_CALL_RESULT"), 2);
    assert_eq!(count("TEXT_MESSAGE_START"), 1);
    assert_eq!(count("TEXT_MESSAGE_END"), 1);
    // Every tool call: START, ARGS, END, then its RESULT.
    for (i, t) in types.iter().enumerate() {
        if *t == "TOOL_CALL_START" {
            assert_eq!(types[i + 1..i + 3], ["TOOL_CALL_ARGS", "TOOL_CALL_END"]);
        }
    }
    let answer: String = events
        .iter()
        .filter(|e| e.data["type"] == "TEXT_MESSAGE_CONTENT")
        .map(|e| e.data["delta"].as_str().unwrap())
        .collect();
    assert!(answer.starts_with("6 * 7 = 42"), "{answer}");
    let result = events
        .iter()
        .find(|e| e.data["type"] == "TOOL_CALL_RESULT" && e.data["content"] == "42");
    assert!(result.is_some(), "the calculator's result");
    // Ids: the group of an agentwire event ends with its seq, strictly increasing.
    let ids: Vec<u64> = events
        .iter()
        .filter_map(|e| e.id.as_deref())
        .map(|id| id.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(
        events.last().unwrap().id.as_deref(),
        ids.last().map(u64::to_string).as_deref()
    );
    assert!(events.iter().all(|e| e.event.is_none()));

    // The same run is on the user's native stream, under the AG-UI ids.
    let events = run_events(&server, "pia", "run-1").await;
    assert_eq!(events[0]["thread_id"], "thread-1");

    // Unknown agent and input without a user message are JSON errors, not streams.
    let r = client()
        .post(server.http_url("/agui/nobody?user=pia"))
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_error(&json_of(r).await, StatusCode::NOT_FOUND, "unknown_agent");
    let r = client()
        .post(server.http_url("/agui/demo?user=pia"))
        .json(&json!({"threadId": "t", "runId": "r", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_error(
        &json_of(r).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    server.stop().await;
}

#[tokio::test]
async fn agui_ends_with_run_error_when_the_run_fails() {
    let mut config = agentwire_test::test_config();
    config.agents.demo = agentwire_agent_registry::DemoSettings::default();
    let server = TestServer::start_with(config, Vec::new()).await;
    let input = json!({
        "threadId": "thread-2", "runId": "run-2",
        "messages": [{"id": "u1", "role": "user", "content": "slow"}]
    });
    let r = client()
        .post(server.http_url("/agui/demo?user=quinn"))
        .json(&input)
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::new(r);
    let first = sse.next().await.unwrap();
    assert_eq!(first.data["type"], "RUN_STARTED");
    // Cancel it through the HTTP API, by the AG-UI run id.
    let c = client()
        .post(server.http_url("/v1/runs/run-2/cancel?user=quinn"))
        .send()
        .await
        .unwrap();
    assert_eq!(c.status(), StatusCode::ACCEPTED);
    let mut last = first;
    while let Some(e) = sse.next().await {
        last = e;
    }
    assert_eq!(last.data["type"], "RUN_ERROR", "{:?}", last.data);
    assert_eq!(last.data["code"], "cancelled");
    server.stop().await;
}

#[tokio::test]
async fn agui_resumes_a_run_after_a_reconnect_with_last_event_id() {
    let mut config = agentwire_test::test_config();
    config.agents.demo = agentwire_agent_registry::DemoSettings {
        step_delay: Duration::from_millis(100),
        token_delay: Duration::from_millis(5),
    };
    let server = TestServer::start_with(config, Vec::new()).await;
    let input = json!({
        "threadId": "thread-3", "runId": "run-3",
        "messages": [{"id": "u1", "role": "user", "content": "What is 6 * 7?"}]
    });
    let post = |last_id: Option<String>| {
        let mut r = client()
            .post(server.http_url("/agui/demo?user=rex"))
            .json(&input);
        if let Some(id) = last_id {
            r = r.header("Last-Event-ID", id);
        }
        r.send()
    };
    // Read until the first tool call's group ended, then drop the connection.
    let mut sse = SseReader::new(post(None).await.unwrap());
    let mut first = Vec::new();
    let mut last_id = None;
    loop {
        let e = sse.next().await.unwrap();
        let done = e.data["type"] == "TOOL_CALL_END";
        first.push(e.data["type"].as_str().unwrap().to_owned());
        if e.id.is_some() {
            last_id = e.id;
        }
        if done {
            break;
        }
    }
    drop(sse);
    // The group of tool_executing ends with TOOL_CALL_END, which carries its seq.
    let last_id = last_id.expect("an id was seen");
    let mut resumed = SseReader::new(post(Some(last_id)).await.unwrap());
    let mut rest = Vec::new();
    while let Some(e) = resumed.next().await {
        rest.push(e.data["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        rest.first().map(String::as_str),
        Some("TOOL_CALL_RESULT"),
        "{rest:?}"
    );
    assert_eq!(rest.last().map(String::as_str), Some("RUN_FINISHED"));
    let all: Vec<String> = first.into_iter().chain(rest).collect();
    let count = |t: &str| all.iter().filter(|x| *x == t).count();
    assert_eq!(count("RUN_STARTED"), 1);
    assert_eq!(count("STEP_STARTED"), 3);
    assert_eq!(count("STEP_FINISHED"), 3);
    assert_eq!(count("TOOL_CALL_START"), 2);
    assert_eq!(count("TOOL_CALL_RESULT"), 2);
    assert_eq!(count("TEXT_MESSAGE_START"), 1);
    assert_eq!(count("TEXT_MESSAGE_END"), 1);
    // Only one run ran: a resume starts nothing.
    let events = run_events(&server, "rex", "run-3").await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "agent_started")
            .count(),
        1
    );
    // Resuming a run the user does not have is 404.
    let r = client()
        .post(server.http_url("/agui/demo?user=sam"))
        .header("Last-Event-ID", "1")
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_error(&json_of(r).await, StatusCode::NOT_FOUND, "run_not_found");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_sse_streams_with_a_close_event() {
    let mut server = TestServer::start().await;
    let mut sse = SseReader::new(
        client()
            .get(server.http_url("/v1/stream?user=tia"))
            .send()
            .await
            .unwrap(),
    );
    sse.next().await.unwrap();
    server.begin_stop();
    let close = sse.next().await.expect("a close event");
    assert_eq!(close.event.as_deref(), Some("close"));
    assert_eq!(close.data["code"], 1001);
    assert!(sse.next().await.is_none(), "the stream ends");
    tokio::time::timeout(WAIT, server.join())
        .await
        .expect("shutdown does not wait for the SSE client");
}

//! The HTTP API of SPEC §5 over real HTTP: runs, cancel, events, the SSE stream with resume,
//! publish with the API key and the grammar, error bodies, and the AG-UI endpoint. This module
//! holds the shared helpers; each route group has its own file.

mod agui;
mod expiry;
mod publish;
mod runs;
mod stream;

use std::time::Duration;

use agentwire_test::TestServer;
use reqwest::StatusCode;
use serde_json::Value;

pub(super) const API_KEY: &str = "test-api-key-0123456789";
pub(super) const WAIT: Duration = Duration::from_secs(10);

pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

pub(super) async fn server_with_key() -> TestServer {
    let mut config = agentwire_test::test_config();
    config.api_key = Some(API_KEY.into());
    TestServer::start_with(config, Vec::new()).await
}

pub(super) async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let body = r.json::<Value>().await.expect("a JSON body");
    (status, body)
}

/// Asserts an error body `{error:{code,message}}` with `status` and `code`.
pub(super) fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

/// Polls `/v1/events` until the run's terminal event is in history; returns that run's events.
pub(super) async fn run_events(server: &TestServer, user: &str, run_id: &str) -> Vec<Value> {
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
pub(super) struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

#[derive(Debug)]
pub(super) struct SseEvent {
    pub(super) id: Option<String>,
    pub(super) event: Option<String>,
    pub(super) data: Value,
}

impl SseReader {
    pub(super) fn new(response: reqwest::Response) -> Self {
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
    pub(super) async fn next(&mut self) -> Option<SseEvent> {
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

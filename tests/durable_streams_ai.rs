//! An LLM agent's run read by AI front ends through Durable Streams (docs/durable-streams.md):
//! a live agentwire whose `assistant` agent talks to a scripted OpenAI-compatible model server
//! inside the test (`tests/llm/scripted.rs`, no network); the run is read as
//! - AI SDK UI message stream chunks (`/ds/agentwire/runs/{run_id}/ai-sdk`),
//! - AG-UI events, which TanStack AI reads (`…/ag-ui`),
//!
//! first with plain HTTP (chunk order, offsets shared with the frames view, read-only), then by
//! the published front-end packages (`tests/ai-frontends/read_run.mjs`, pinned in its
//! package-lock.json): the AI SDK's durable-streams transport and `readUIMessageStream` read one
//! run; TanStack AI's durable-streams connection, subscribed live, and its `StreamProcessor`
//! read a second.
//!
//! Runs on the `libtest-mimic` harness (`tests/harness`). The Node test runs `npm ci` in
//! `tests/ai-frontends` itself; without Node it is reported as ignored with the reason, unless
//! `AGENTWIRE_REQUIRE_INTEROP=1` makes it fail.

#[allow(dead_code)] // each suite uses part of the shared harness
mod harness;
#[allow(dead_code)] // this suite uses part of the scripted model server
#[path = "llm/scripted.rs"]
mod scripted;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use agentwire_llm::OpenAiAgentConfig;
use agentwire_startup::AgentDefinition;
use agentwire_test::TestServer;
use serde_json::{Value, json};

use scripted::{ScriptedModel, answer, tool_calls};

const INTEROP: &str = "AGENTWIRE_REQUIRE_INTEROP";

fn frontends_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ai-frontends")
}

fn frontends_ready() -> Result<(), String> {
    harness::npm_ci(&frontends_dir(), "@durable-streams/aisdk-transport")
}

fn main() -> std::process::ExitCode {
    harness::run(vec![
        harness::trial_needing(
            "a_run_reads_as_ai_sdk_chunks_and_ag_ui_events_at_the_same_offsets",
            Vec::new(),
            a_run_reads_as_ai_sdk_chunks_and_ag_ui_events_at_the_same_offsets,
        ),
        harness::trial(
            "the_ai_sdk_and_tanstack_ai_read_an_llm_run_through_durable_streams",
            INTEROP,
            frontends_ready,
            the_ai_sdk_and_tanstack_ai_read_an_llm_run_through_durable_streams,
        ),
    ])
}

/// A model that, in each of `runs` runs, calls the calculator, then answers.
async fn scripted_model(runs: usize) -> ScriptedModel {
    let run = [
        tool_calls(&[("call_calc", "calculator", r#"{"expression": "6 * 7"}"#)]),
        answer("6 * 7 is 42."),
    ];
    ScriptedModel::start(run.iter().cycle().take(2 * runs).cloned().collect()).await
}

/// A live server whose `assistant` agent uses `model`.
async fn server_for(model: &ScriptedModel) -> TestServer {
    let mut config = agentwire_test::test_config();
    let mut agent = OpenAiAgentConfig::new(&model.base_url, "scripted");
    agent.tools = vec!["calculator".into()];
    agent.retry_backoff = Duration::from_millis(10);
    agent.request_timeout = Duration::from_secs(10);
    config
        .agents
        .defined
        .insert("assistant".into(), AgentDefinition::Openai(agent));
    TestServer::start_with(config, Vec::new()).await
}

/// Starts a run of `assistant` for ada over HTTP and waits until its stream is closed.
async fn finished_run(server: &TestServer, http: &reqwest::Client) -> String {
    let started: Value = http
        .post(server.http_url("/v1/runs?user=ada"))
        .json(&json!({"agent": "assistant", "content": "What is 6 * 7?"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = started["run_id"].as_str().expect("a run id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let head = http
            .head(server.http_url(&format!("/ds/agentwire/runs/{run}?user=ada")))
            .send()
            .await
            .unwrap();
        if head.headers().get("stream-closed").is_some() {
            return run;
        }
        assert!(Instant::now() < deadline, "the run did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET` of a run view from `offset`: the messages and `Stream-Next-Offset`.
async fn read(
    server: &TestServer,
    http: &reqwest::Client,
    path: &str,
    offset: &str,
) -> (Vec<Value>, String) {
    let response = http
        .get(server.http_url(&format!("{path}?user=ada&offset={offset}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    assert_eq!(response.headers()["content-type"], "application/json");
    let next = response.headers()["stream-next-offset"]
        .to_str()
        .unwrap()
        .to_owned();
    (response.json().await.unwrap(), next)
}

fn types(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["type"].as_str().unwrap_or("?"))
        .collect()
}

/// The views refuse writes (405), and an unknown view is 404.
async fn views_are_read_only(server: &TestServer, http: &reqwest::Client, frames_path: &str) {
    for method in [reqwest::Method::POST, reqwest::Method::PUT] {
        let write = http
            .request(
                method,
                server.http_url(&format!("{frames_path}/ai-sdk?user=ada")),
            )
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(write.status(), 405);
    }
    let unknown = http
        .get(server.http_url(&format!("{frames_path}/other?user=ada")))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

async fn a_run_reads_as_ai_sdk_chunks_and_ag_ui_events_at_the_same_offsets() {
    let model = scripted_model(1).await;
    let server = server_for(&model).await;
    let http = reqwest::Client::new();
    let run = finished_run(&server, &http).await;
    let frames_path = format!("/ds/agentwire/runs/{run}");
    let (frames, tail) = read(&server, &http, &frames_path, "-1").await;

    let (chunks, next) = read(&server, &http, &format!("{frames_path}/ai-sdk"), "-1").await;
    assert_eq!(next, tail, "the views share the frames view's offsets");
    assert_eq!(
        types(&chunks),
        [
            "start",
            "start-step",
            "tool-input-available",
            "tool-output-available",
            "finish-step",
            "start-step",
            "reasoning-start",
            "reasoning-delta",
            "reasoning-end",
            "text-start",
            "text-delta",
            "text-delta",
            "text-delta",
            "text-delta",
            "text-end",
            "finish-step",
            "finish",
        ],
        "{chunks:#?}"
    );
    assert_eq!(chunks[0]["messageId"], run.as_str());
    assert_eq!(chunks[2]["toolName"], "calculator");
    assert_eq!(chunks[2]["input"], json!({"expression": "6 * 7"}));
    assert_eq!(chunks[3]["output"], 42);
    let text: String = chunks
        .iter()
        .filter(|c| c["type"] == "text-delta")
        .map(|c| c["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "6 * 7 is 42.");

    let (events, next) = read(&server, &http, &format!("{frames_path}/ag-ui"), "-1").await;
    assert_eq!(next, tail);
    assert_eq!(types(&events).first(), Some(&"RUN_STARTED"));
    assert_eq!(types(&events).last(), Some(&"RUN_FINISHED"));
    assert!(types(&events).contains(&"TOOL_CALL_RESULT"), "{events:#?}");

    // From the offset after the tool result (offsets are seqs, docs/durable-streams.md): the
    // chunks of the events after it, from an event boundary.
    let completed = frames
        .iter()
        .find(|f| f["type"] == "tool_completed")
        .unwrap();
    let resume = format!(
        "0000000000000000_{:016}",
        completed["seq"].as_u64().unwrap()
    );
    let (rest, next) = read(&server, &http, &format!("{frames_path}/ai-sdk"), &resume).await;
    assert_eq!(next, tail);
    assert_eq!(
        types(&rest)[..3],
        ["finish-step", "start-step", "reasoning-start"]
    );
    assert_eq!(rest, chunks[4..], "the same chunks as from the start");

    views_are_read_only(&server, &http, &frames_path).await;
    server.stop().await;
}

/// TanStack AI's processor, subscribed live to the second run's AG-UI view, built the same
/// answer: the call with its output and result, then the text. Returns its chunks and parts.
fn check_tanstack_message(read: &Value) -> (&Vec<Value>, &Vec<Value>) {
    let chunks = read["tanstack"]["chunks"].as_array().unwrap();
    assert_eq!(chunks.first().unwrap()["type"], "MESSAGES_SNAPSHOT");
    assert_eq!(chunks.last().unwrap()["type"], "RUN_FINISHED");
    assert_eq!(chunks.last().unwrap()["runId"], read["tanstack"]["runId"]);
    let messages = read["tanstack"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0]["role"], "assistant");
    let parts = messages[0]["parts"].as_array().unwrap();
    let call = parts
        .iter()
        .find(|p| p["type"] == "tool-call")
        .unwrap_or_else(|| panic!("a tool call: {parts:#?}"));
    assert_eq!(call["name"], "calculator");
    assert_eq!(call["input"], json!({"expression": "6 * 7"}));
    assert_eq!(call["output"], 42);
    assert!(
        parts
            .iter()
            .any(|p| p["type"] == "tool-result" && p["content"] == "42"),
        "{parts:#?}"
    );
    let text: String = parts
        .iter()
        .filter(|p| p["type"] == "text")
        .map(|p| p["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "6 * 7 is 42.");
    (chunks, parts)
}

async fn the_ai_sdk_and_tanstack_ai_read_an_llm_run_through_durable_streams() {
    let model = scripted_model(2).await;
    let server = server_for(&model).await;
    let base = server.http_url("");
    let mut node = Command::new("node");
    node.current_dir(frontends_dir()).arg("read_run.mjs").args([
        base.trim_end_matches('/'),
        "ada",
        "assistant",
        "What is 6 * 7?",
    ]);
    let output = harness::run_bounded(node, Duration::from_secs(60)).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "read_run.mjs: {:?}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");

    // The AI SDK built one assistant message: the tool call with its output, then the text.
    let message = &read["aiSdk"]["message"];
    assert_eq!(message["role"], "assistant", "{message:#}");
    assert_eq!(message["id"], read["runId"]);
    let parts = message["parts"].as_array().unwrap();
    let tool = parts
        .iter()
        .find(|p| p["type"] == "dynamic-tool")
        .expect("a tool part");
    assert_eq!(tool["toolName"], "calculator");
    assert_eq!(tool["state"], "output-available");
    assert_eq!(tool["input"], json!({"expression": "6 * 7"}));
    assert_eq!(tool["output"], 42);
    let text: String = parts
        .iter()
        .filter(|p| p["type"] == "text")
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "6 * 7 is 42.");
    assert!(parts.iter().any(|p| p["type"] == "reasoning"), "{parts:#?}");
    assert_eq!(
        read["aiSdk"]["chunks"].as_array().unwrap().last().unwrap()["type"],
        "finish"
    );

    let (chunks, parts) = check_tanstack_message(&read);
    let snapshot = &read["tanstack"]["snapshot"]["messages"];
    assert_eq!(snapshot[0]["parts"][0]["content"], "6 * 7 is 42.");
    println!(
        "ai sdk: {} chunks → {} parts; tanstack ai: {} chunks → {} parts",
        read["aiSdk"]["chunks"].as_array().unwrap().len(),
        message["parts"].as_array().unwrap().len(),
        chunks.len(),
        parts.len()
    );
    server.stop().await;
}

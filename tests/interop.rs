//! Interop with clients in other languages, against the live server:
//! - the published AG-UI client (`@ag-ui/client` from npm, pinned in `tests/interop/`) runs the
//!   `demo` agent over `POST /agui/demo` and its verifier accepts the stream;
//! - `examples/publish_from_python.py` (standard library only) publishes a whole run through
//!   `POST /v1/publish`, and a WebSocket client of that user receives it.
//!
//! The Node test runs `npm ci` in `tests/interop` itself when Node is installed; without Node
//! (or Python for the second test) the test is reported as ignored with the reason, unless
//! `AGENTWIRE_REQUIRE_INTEROP=1` (as `.ci/run` sets), then it fails. Runs on the
//! `libtest-mimic` harness (`tests/harness`) so an ignored test reads as ignored.

#[allow(dead_code)] // each suite uses part of the shared harness
mod harness;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use agentwire_test::TestServer;

/// The longest an external client may run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn report(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn agui_client_ready() -> Result<(), String> {
    harness::npm_ci(&root().join("tests/interop"), "@ag-ui/client")
}

fn python_ready() -> Result<(), String> {
    if harness::program_runs("python3") {
        Ok(())
    } else {
        Err("python3 not found: install Python 3".into())
    }
}

fn node_ready() -> Result<(), String> {
    if harness::program_runs("node") {
        Ok(())
    } else {
        Err("node not found: install Node.js 20 or newer".into())
    }
}

fn main() -> std::process::ExitCode {
    harness::run(vec![
        harness::trial(
            "the_browser_client_stops_and_reports_a_refused_token_instead_of_retrying",
            "AGENTWIRE_REQUIRE_INTEROP",
            node_ready,
            the_browser_client_stops_and_reports_a_refused_token_instead_of_retrying,
        ),
        harness::trial(
            "the_browser_client_refreshes_its_token_before_the_expiry_and_reconnects_after_4001",
            "AGENTWIRE_REQUIRE_INTEROP",
            node_ready,
            the_browser_client_refreshes_its_token_before_the_expiry_and_reconnects_after_4001,
        ),
        harness::trial(
            "the_official_ag_ui_client_accepts_the_agui_stream",
            "AGENTWIRE_REQUIRE_INTEROP",
            agui_client_ready,
            the_official_ag_ui_client_accepts_the_agui_stream,
        ),
        harness::trial(
            "the_python_example_publishes_a_run_a_websocket_client_receives",
            "AGENTWIRE_REQUIRE_INTEROP",
            python_ready,
            the_python_example_publishes_a_run_a_websocket_client_receives,
        ),
    ])
}

async fn the_official_ag_ui_client_accepts_the_agui_stream() {
    let dir = root().join("tests/interop");
    let server = TestServer::start().await;
    let mut node = Command::new("node");
    node.current_dir(&dir)
        .arg("agui.mjs")
        .arg(server.http_url(""))
        .env("SUPPRESS_TRANSFORMATION_WARNINGS", "true");
    let output = harness::run_bounded(node, CLIENT_TIMEOUT).await;
    assert!(output.status.success(), "{}", report(&output));
    server.stop().await;
}

async fn the_python_example_publishes_a_run_a_websocket_client_receives() {
    const KEY: &str = "python-example-key-0123456789";
    let mut config = agentwire_test::test_config();
    config.api_key = Some(KEY.into());
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut ws = server.connect("py-user").await;

    let mut python = Command::new("python3");
    python
        .arg(root().join("examples/publish_from_python.py"))
        .args([
            "--url",
            &server.http_url(""),
            "--key",
            KEY,
            "--user",
            "py-user",
        ]);
    let output = harness::run_bounded(python, CLIENT_TIMEOUT).await;
    assert!(output.status.success(), "{}", report(&output));
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the example prints its run as JSON");

    let mut types = Vec::new();
    loop {
        let frame = ws.next_json().await.expect("the run's events");
        assert_eq!(frame["run_id"], summary["run_id"], "{frame}");
        assert_eq!(frame["agent"], "python-researcher");
        types.push(frame["type"].as_str().unwrap().to_owned());
        if frame["type"] == "agent_completed" {
            assert_eq!(
                frame["seq"],
                *summary["seqs"].as_array().unwrap().last().unwrap()
            );
            break;
        }
    }
    assert_eq!(
        types[..4],
        [
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed"
        ]
    );
    assert!(
        types[4..types.len() - 1]
            .iter()
            .all(|t| t == "agent_message_delta")
    );
    assert_eq!(types.len(), summary["seqs"].as_array().unwrap().len());
    server.stop().await;
}

const JWT_SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

async fn jwt_server() -> TestServer {
    let mut config = agentwire_test::test_config();
    config.auth.mode = agentwire_startup::AuthMode::Jwt;
    config.auth.jwt_secret = Some(JWT_SECRET.into());
    TestServer::start_with(config, Vec::new()).await
}

/// `node` with a WebSocket (Node 20 has it behind a flag; later versions by default), in
/// `tests/interop`.
fn node_with_websocket() -> Command {
    let has_websocket = Command::new("node")
        .args([
            "-e",
            "process.exit(typeof WebSocket === 'undefined' ? 1 : 0)",
        ])
        .status()
        .is_ok_and(|s| s.success());
    let mut node = Command::new("node");
    if !has_websocket {
        node.arg("--experimental-websocket");
    }
    node.current_dir(root().join("tests/interop"));
    node
}

/// `/agentwire.js` in Node (whose WebSocket, like a browser's, hides the 401 of a refused
/// handshake) against a JWT server, with a bad token: see `tests/interop/auth_refusal.mjs`.
async fn the_browser_client_stops_and_reports_a_refused_token_instead_of_retrying() {
    let server = jwt_server().await;
    let mut node = node_with_websocket();
    node.arg("auth_refusal.mjs").arg(server.http_url(""));
    let output = harness::run_bounded(node, CLIENT_TIMEOUT).await;
    assert!(output.status.success(), "{}", report(&output));
    server.stop().await;
}

/// `/agentwire.js` in Node with a token callback against a JWT server, with tokens that expire
/// 1–2 s after they are minted: see `tests/interop/token_refresh.mjs`.
async fn the_browser_client_refreshes_its_token_before_the_expiry_and_reconnects_after_4001() {
    let server = jwt_server().await;
    let mut node = node_with_websocket();
    node.arg("token_refresh.mjs")
        .arg(server.http_url(""))
        .arg(JWT_SECRET);
    let output = harness::run_bounded(node, CLIENT_TIMEOUT).await;
    assert!(output.status.success(), "{}", report(&output));
    server.stop().await;
}

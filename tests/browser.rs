//! The demo page in a real browser: starts a server with the demo agent at a watchable but quick
//! pace and runs `tests/browser/e2e.mjs` (npm's `playwright-core` driving Debian's Chromium)
//! against it. The script sends a question, drops the socket mid-answer through
//! `POST /debug/disconnect`, and checks that the page resumes with every event exactly once;
//! it saves a screenshot to `target/browser/demo.png`. `tests/browser/mcp.mjs` picks an LLM agent
//! whose scripted model calls a tool of the pinned MCP server-everything (over stdio) and checks
//! that the page shows that call like any other tool call (`target/browser/mcp.png`).
//!
//! Needs `/usr/bin/chromium` (or `CHROMIUM_PATH`) and Node; the test runs `npm ci` in
//! `tests/browser` itself. Without Chromium or Node it is reported as ignored with the reason,
//! unless `AGENTWIRE_REQUIRE_BROWSER=1` (set by `.ci/run`), when it fails. Runs on the
//! `libtest-mimic` harness (`tests/harness`) so an ignored test reads as ignored.

#[allow(dead_code)] // each suite uses part of the shared harness
mod harness;
#[allow(dead_code)] // the suite uses the model's replies, not its failure modes
#[path = "llm/scripted.rs"]
mod scripted;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentwire_agent_registry::DemoSettings;
use agentwire_llm::OpenAiAgentConfig;
use agentwire_mcp::McpServerConfig;
use agentwire_startup::AgentDefinition;
use agentwire_test::{TestServer, test_config};
use scripted::{ScriptedModel, answer, tool_calls};

/// The script bounds itself at 90 s; this is the backstop.
const NODE_TIMEOUT: Duration = Duration::from_secs(150);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    PathBuf::from(std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into()))
}

/// Chromium must be installed; Node's packages are installed here when Node is.
fn browser_ready() -> Result<(), String> {
    let chromium = chromium();
    if !chromium.exists() {
        return Err(format!(
            "{} not found: apt-get install -y chromium (or set CHROMIUM_PATH)",
            chromium.display()
        ));
    }
    harness::npm_ci(&browser_dir(), "playwright-core")
}

/// Chromium, and the pinned `@modelcontextprotocol/server-everything` installed in `tests/mcp`.
fn browser_and_server_everything_ready() -> Result<(), String> {
    browser_ready()?;
    harness::npm_ci(&mcp_dir(), "@modelcontextprotocol/server-everything")
}

fn mcp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp")
}

fn no_prerequisites() -> Result<(), String> {
    Ok(())
}

fn main() -> std::process::ExitCode {
    harness::run(vec![
        harness::trial(
            "demo_page_shows_a_run_and_resumes_after_a_drop_in_chromium",
            "AGENTWIRE_REQUIRE_BROWSER",
            browser_ready,
            demo_page_shows_a_run_and_resumes_after_a_drop_in_chromium,
        ),
        harness::trial(
            "demo_page_shows_an_mcp_tool_call_like_any_other_tool_call",
            "AGENTWIRE_REQUIRE_BROWSER",
            browser_and_server_everything_ready,
            demo_page_shows_an_mcp_tool_call_like_any_other_tool_call,
        ),
        harness::trial(
            "demo_page_and_modules_are_served",
            "AGENTWIRE_REQUIRE_BROWSER",
            no_prerequisites,
            demo_page_and_modules_are_served,
        ),
    ])
}

fn run_node(script: &str, dir: &Path, base_url: &str, screenshot: &Path) -> (bool, String) {
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .arg(base_url)
        .arg(screenshot)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait for node").is_some() {
            break;
        }
        if started.elapsed() > NODE_TIMEOUT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("node output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn demo_page_shows_a_run_and_resumes_after_a_drop_in_chromium() {
    let dir = browser_dir();
    let mut config = test_config();
    // Slow enough that a drop lands mid-run, quick enough for a short test.
    config.agents.demo = DemoSettings {
        step_delay: Duration::from_millis(150),
        token_delay: Duration::from_millis(50),
    };
    let server = TestServer::start_with(config, Vec::new()).await;
    let base_url = server.http_url("");
    let (ok, output) = tokio::task::spawn_blocking(move || {
        run_node("e2e.mjs", &dir, &base_url, &screenshot("demo.png"))
    })
    .await
    .expect("node runner");
    println!("{output}");
    assert!(ok, "the browser test failed:\n{output}");
    server.stop().await;
}

/// `<target>/browser/<name>`.
fn screenshot(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target>/tmp")
        .join("browser")
        .join(name)
}

/// An `assistant` whose model calls server-everything's `echo` over stdio, picked on the demo
/// page: the call shows as a tool call under its MCP name, with its result, like any other.
async fn demo_page_shows_an_mcp_tool_call_like_any_other_tool_call() {
    let model = ScriptedModel::start(vec![
        tool_calls(&[(
            "call_echo",
            "mcp__everything__echo",
            r#"{"message": "hello from MCP"}"#,
        )]),
        answer("The MCP server echoed it."),
    ])
    .await;
    let script = mcp_dir()
        .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
        .to_string_lossy()
        .into_owned();
    let mut config = test_config();
    config.mcp.insert(
        "everything".into(),
        McpServerConfig::stdio(["node".to_owned(), script, "stdio".to_owned()]),
    );
    let mut assistant = OpenAiAgentConfig::new(&model.base_url, "scripted");
    assistant.tools = vec!["mcp:everything/echo".into()];
    config
        .agents
        .defined
        .insert("assistant".into(), AgentDefinition::Openai(assistant));
    let server = TestServer::start_with(config, Vec::new()).await;
    let base_url = server.http_url("");
    let (ok, output) = tokio::task::spawn_blocking(move || {
        run_node("mcp.mjs", &browser_dir(), &base_url, &screenshot("mcp.png"))
    })
    .await
    .expect("node runner");
    println!("{output}");
    assert!(ok, "the browser test failed:\n{output}");
    assert_eq!(model.remaining(), 0, "the model was asked twice");
    server.stop().await;
}

/// Without a browser: the page and its two modules are served, with the right types.
async fn demo_page_and_modules_are_served() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    for (path, content_type, needle) in [
        ("/", "text/html", "/demo.js"),
        (
            "/agentwire.js",
            "text/javascript",
            "export class AgentwireClient",
        ),
        ("/demo.js", "text/javascript", "from \"/agentwire.js\""),
    ] {
        let res = http
            .get(server.http_url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "{path}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with(content_type), "{path}: {ct}");
        let body = res.text().await.expect("body");
        assert!(body.contains(needle), "{path} lacks {needle}");
    }
    server.stop().await;
}

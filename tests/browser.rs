//! The demo page in a real browser: starts a server with the demo agent at a watchable but quick
//! pace and runs `tests/browser/e2e.mjs` (npm's `playwright-core` driving Debian's Chromium)
//! against it. The script sends a question, drops the socket mid-answer through
//! `POST /debug/disconnect`, and checks that the page resumes with every event exactly once;
//! it saves a screenshot to `target/browser/demo.png`.
//!
//! Needs `/usr/bin/chromium` (or `CHROMIUM_PATH`) and Node; the test runs `npm ci` in
//! `tests/browser` itself. Without Chromium or Node it is reported as ignored with the reason,
//! unless `AGENTWIRE_REQUIRE_BROWSER=1` (set by `.ci/run`), when it fails. Runs on the
//! `libtest-mimic` harness (`tests/harness`) so an ignored test reads as ignored.

#[allow(dead_code)] // each suite uses part of the shared harness
mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentwire_agent_registry::DemoSettings;
use agentwire_test::{TestServer, test_config};

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
            "demo_page_and_modules_are_served",
            "AGENTWIRE_REQUIRE_BROWSER",
            no_prerequisites,
            demo_page_and_modules_are_served,
        ),
    ])
}

fn run_node(dir: &Path, base_url: &str, screenshot: &Path) -> (bool, String) {
    let mut child = Command::new("node")
        .arg(dir.join("e2e.mjs"))
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
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target>/tmp")
        .to_path_buf();
    let screenshot = target.join("browser/demo.png");
    let base_url = server.http_url("");

    let (ok, output) = tokio::task::spawn_blocking(move || run_node(&dir, &base_url, &screenshot))
        .await
        .expect("node runner");
    println!("{output}");
    assert!(ok, "the browser test failed:\n{output}");
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

//! The demo page in a real browser: starts a server with the demo agent at a watchable but quick
//! pace and runs `tests/browser/e2e.mjs` (npm's `playwright-core` driving Debian's Chromium)
//! against it. The script sends a question, drops the socket mid-answer through
//! `POST /debug/disconnect`, and checks that the page resumes with every event exactly once;
//! it saves a screenshot to `target/browser/demo.png`.
//!
//! Needs `/usr/bin/chromium` (or `CHROMIUM_PATH`), `node`, and `npm ci` in `tests/browser`.
//! Without them the test prints `SKIP: browser test (…)` and passes, unless
//! `AGENTWIRE_REQUIRE_BROWSER=1` (set by `.ci/run`), when it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentwire_agent_registry::DemoSettings;
use agentwire_test::{TestServer, test_config};

/// The script bounds itself at 90 s; this is the backstop.
const NODE_TIMEOUT: Duration = Duration::from_secs(150);

fn missing_prerequisite(dir: &Path, chromium: &Path) -> Option<String> {
    if !chromium.exists() {
        return Some(format!(
            "{} not found: apt-get install -y chromium",
            chromium.display()
        ));
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Some("node not found: install Node.js 20 or newer".into());
    }
    if !dir.join("node_modules/playwright-core").is_dir() {
        return Some(format!(
            "{}/node_modules missing: run `npm ci` there",
            dir.display()
        ));
    }
    None
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_shows_a_run_and_resumes_after_a_drop_in_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = PathBuf::from(
        std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    if let Some(why) = missing_prerequisite(&dir, &chromium) {
        if std::env::var("AGENTWIRE_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("browser test required (AGENTWIRE_REQUIRE_BROWSER=1) but {why}");
        }
        println!("SKIP: browser test ({why})");
        return;
    }

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
#[tokio::test]
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

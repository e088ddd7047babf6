//! `agentwire chat` as a person or a script uses it: a real `agentwire serve` on port 0, and the
//! `agentwire chat` command driven through its standard input.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_agentwire");
const SECRET: &str = "a-test-secret-of-at-least-32-bytes-0123456789";

/// A served `agentwire` process, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("agentwire serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let started = Instant::now();
        let addr = loop {
            let line = lines
                .next()
                .and_then(Result::ok)
                .expect("the server logs until it is ready");
            if line.contains("agentwire ready") {
                let log: Value = serde_json::from_str(&line).unwrap();
                break log["fields"]["listen"].as_str().unwrap().to_owned();
            }
            assert!(started.elapsed() < Duration::from_secs(30), "not ready");
        };
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Server { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `POST /debug/disconnect?user=…`: the server drops the user's connections (close 1012).
    fn disconnect(&self, user: &str) {
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        write!(
            s,
            "POST /debug/disconnect?user={user} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `agentwire chat` with piped standard input, output and error.
fn chat(args: &[&str]) -> Child {
    Command::new(BIN)
        .arg("chat")
        .args(args)
        .env_remove("AGENTWIRE_TOKEN")
        .env_remove("AGENTWIRE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agentwire chat starts")
}

/// Waits for the chat to exit (killing it after 60 s): its status, stdout and stderr.
fn finish(mut child: Child) -> (bool, String, String) {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn chat_prints_a_run_as_a_readable_timeline_and_exits_when_input_ends() {
    let server = Server::start(
        &[],
        &[
            ("AGENTWIRE_AGENTS__DEMO__STEP_DELAY", "0s"),
            ("AGENTWIRE_AGENTS__DEMO__TOKEN_DELAY", "0s"),
        ],
    );
    let mut child = chat(&["--url", &server.url(), "--user", "alice"]);
    writeln!(child.stdin.as_mut().unwrap(), "what is 6*7?").unwrap();
    drop(child.stdin.take());
    let (ok, out, err) = finish(child);
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        !out.contains('\x1b'),
        "no colour when not a terminal:\n{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("-- connected as alice"), "{out}");
    assert!(
        lines[1].starts_with("  #1 demo started: what is 6*7?"),
        "{out}"
    );
    for needle in ["thinking: ", "  → ", "  ← ", "  answer: ", "completed in "] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    assert!(lines.last().unwrap().contains("completed in"), "{out}");
}

#[test]
fn chat_resumes_after_a_forced_disconnect_without_losing_or_repeating_an_event() {
    let server = Server::start(
        &[],
        &[
            ("AGENTWIRE_AGENTS__DEMO__STEP_DELAY", "150ms"),
            ("AGENTWIRE_AGENTS__DEMO__TOKEN_DELAY", "30ms"),
        ],
    );
    let mut child = chat(&["--url", &server.url(), "--user", "bob", "--json"]);
    writeln!(child.stdin.as_mut().unwrap(), "what is 6*7?").unwrap();
    // Read frames as they come; drop the connection once the run is under way.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut frames = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let frame: Value = serde_json::from_str(&line).expect("--json prints JSON frames");
            let _ = tx.send(frame["type"].as_str().unwrap_or("").to_owned());
            frames.push(frame);
        }
        frames
    });
    loop {
        let kind = rx.recv_timeout(Duration::from_secs(30)).expect("a frame");
        if kind == "agent_thinking" {
            break;
        }
    }
    server.disconnect("bob");
    drop(child.stdin.take());
    let (ok, _, err) = finish(child);
    let frames = reader.join().unwrap();
    assert!(ok, "stderr:\n{err}");
    assert!(err.contains("connection lost (close 1012"), "{err}");
    assert!(err.contains("resumed ("), "{err}");
    let hellos: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "connection_established")
        .collect();
    assert_eq!(hellos.len(), 2, "one reconnect: {frames:?}");
    assert!(hellos[1]["data"]["resumed"].is_object(), "{:?}", hellos[1]);
    let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "every event once, in order"
    );
    let last = frames.iter().rev().find(|f| f["seq"].is_u64()).unwrap();
    assert_eq!(last["type"], "agent_completed");
}

#[test]
fn chat_against_a_jwt_server_without_a_token_says_what_to_do_and_with_one_works() {
    let server = Server::start(
        &["--auth", "jwt"],
        &[
            ("AGENTWIRE_AUTH__JWT_SECRET", SECRET),
            ("AGENTWIRE_AGENTS__DEMO__STEP_DELAY", "0s"),
            ("AGENTWIRE_AGENTS__DEMO__TOKEN_DELAY", "0s"),
        ],
    );
    let child = chat(&["--url", &server.url(), "--user", "carol"]);
    let (ok, _, err) = finish(child);
    assert!(!ok);
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(err.contains("--token"), "{err}");

    let token = Command::new(BIN)
        .args(["token", "carol"])
        .env("AGENTWIRE_AUTH__JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap();
    let mut child = chat(&[
        "--url",
        &server.url(),
        "--token",
        token.trim(),
        "-a",
        "echo",
    ]);
    writeln!(child.stdin.as_mut().unwrap(), "hello").unwrap();
    drop(child.stdin.take());
    let (ok, out, err) = finish(child);
    assert!(ok, "{err}");
    assert!(out.contains("echo started: hello"), "{out}");
}

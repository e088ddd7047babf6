//! What the `agentwire` command says when a person gets something wrong: each message names
//! the setting as the person wrote it and says what to do.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_agentwire");

fn run(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("AGENTWIRE_AUTH__JWT_SECRET")
        .envs(envs.iter().copied())
        .output()
        .expect("agentwire runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn listen_takes_a_host_name_and_says_how_to_write_an_address() {
    let (ok, _, err) = run(&["check", "--listen", "localhost:0"], &[]);
    assert!(ok, "localhost is resolved: {err}");
    let (ok, _, err) = run(&["check", "--listen", "not an address"], &[]);
    assert!(!ok);
    assert!(err.contains("write IP:PORT, e.g. 127.0.0.1:8080"), "{err}");
}

#[test]
fn broker_help_mentions_redis() {
    let (ok, out, _) = run(&["serve", "--help"], &[]);
    assert!(ok);
    let broker = out.lines().find(|l| l.contains("--broker")).unwrap();
    assert!(broker.contains("redis://"), "{broker}");
}

#[test]
fn config_errors_name_keys_as_written_and_hint_correctly() {
    let (ok, _, err) = run(&["check"], &[("AGENTWIRE_HISTORY__TTL", "forever")]);
    assert!(!ok);
    assert!(
        err.contains("phase Config: AGENTWIRE_HISTORY__TTL: "),
        "{err}"
    );
    assert!(!err.contains("HISTORY.TTL") && !err.contains("``"), "{err}");

    let (ok, _, err) = run(&["check"], &[("AGENTWIRE_LIMITS__MAX_RUNS_PER_USER", "0")]);
    assert!(!ok);
    assert!(
        err.contains("phase Config: limits.max_runs_per_user: must be at least 1"),
        "{err}"
    );
    assert!(!err.contains("bridge"), "{err}");
}

#[test]
fn token_without_a_secret_says_how_to_make_one() {
    let (ok, _, err) = run(&["token", "alice"], &[]);
    assert!(!ok);
    assert!(err.contains("no JWT secret is configured"), "{err}");
    assert!(err.contains("openssl rand -hex 32"), "{err}");
    assert!(!err.contains("invalid token"), "{err}");
}

#[test]
fn logs_to_a_file_or_pipe_have_no_colour_codes() {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("agentwire ready") || started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains("agentwire ready"), "{log}");
    assert!(!log.contains('\x1b'), "escape codes in a piped log:\n{log}");
}

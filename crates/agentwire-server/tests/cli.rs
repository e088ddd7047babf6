//! The `agentwire` binary as a process: startup failures, `check`, `token`, `serve` + SIGTERM.
//!
//! Runs on `libtest-mimic` (`harness = false`), so a test this machine cannot carry out (the
//! huge-pages test on a kernel that does not show a process's THP state) is reported as ignored
//! with the reason instead of passing.

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStderr, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Trial};
#[cfg(target_os = "linux")]
use libtest_mimic::{Completion, Failed};

const BIN: &str = env!("CARGO_BIN_EXE_agentwire");

/// Trials of plain test functions (a panic fails them), each named after its function.
macro_rules! plain {
    ($($test:ident),* $(,)?) => {
        vec![$(Trial::test(stringify!($test), || {
            $test();
            Ok(())
        })),*]
    };
}

fn main() -> ExitCode {
    #[allow(unused_mut)] // pushed to on Linux only
    let mut trials = plain![
        a_bad_config_file_exits_non_zero_naming_the_phase,
        jwt_without_a_secret_and_dev_auth_off_loopback_are_refused,
        env_overrides_the_file_and_flags_override_env,
        token_mints_a_jwt_with_the_configured_secret,
        serve_becomes_ready_and_exits_zero_on_sigterm,
        json_logs_are_one_object_per_line_and_a_short_metrics_token_is_refused,
        the_bench_subcommand_points_to_the_agentwire_bench_binary,
        check_names_the_llm_agent_whose_model_server_does_not_answer_and_never_the_key,
    ];
    #[cfg(target_os = "linux")]
    trials.push(Trial::ignorable_test(
        "serve_keeps_transparent_huge_pages_off_unless_asked",
        serve_keeps_transparent_huge_pages_off_unless_asked,
    ));
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The last stderr line, which is the one-line startup error.
fn error_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or_default()
}

fn a_bad_config_file_exits_non_zero_naming_the_phase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "listen = 42\n[history]\nmax_events = \"many\"\n").unwrap();
    let (code, _, stderr) = run(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    let line = error_line(&stderr);
    assert!(
        line.starts_with("agentwire: startup failed in phase Config: "),
        "{line}"
    );
    assert!(line.contains("hint: "), "{line}");

    std::fs::write(&path, "unknown_key = true\n").unwrap();
    let (code, _, stderr) = run(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(error_line(&stderr).contains("unknown_key"), "{stderr}");

    let (code, _, stderr) = run(&["check", "--config", "/nonexistent/agentwire.toml"], &[]);
    assert_ne!(code, 0);
    assert!(
        error_line(&stderr).contains("phase Config: config file"),
        "{stderr}"
    );
}

fn jwt_without_a_secret_and_dev_auth_off_loopback_are_refused() {
    let (code, _, stderr) = run(&["check", "--auth", "jwt"], &[]);
    assert_ne!(code, 0);
    assert!(
        error_line(&stderr).contains("phase Config: auth.jwt_secret"),
        "{stderr}"
    );

    let (code, _, stderr) = run(&["check", "--listen", "0.0.0.0:0"], &[]);
    assert_ne!(code, 0);
    assert!(
        error_line(&stderr).contains("--allow-insecure-dev"),
        "{stderr}"
    );
    let (code, _, _) = run(
        &["check", "--listen", "0.0.0.0:0", "--allow-insecure-dev"],
        &[],
    );
    assert_eq!(code, 0);

    let (code, _, stderr) = run(&["check", "--broker", "carrier-pigeon"], &[]);
    assert_ne!(code, 0);
    assert!(error_line(&stderr).contains("phase Broker"), "{stderr}");
}

fn env_overrides_the_file_and_flags_override_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(&path, "[auth]\nmode = \"jwt\"\njwt_secret = \"short\"\n").unwrap();
    // The file's secret is too short...
    let (code, _, stderr) = run(&["check", "-c", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0, "{stderr}");
    // ...env replaces it...
    let env = [(
        "AGENTWIRE_AUTH__JWT_SECRET",
        "0123456789abcdef0123456789abcdef",
    )];
    let (code, stdout, stderr) = run(&["check", "-c", path.to_str().unwrap()], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("all phases passed"));
    // ...and a flag beats both: env asks for a public address (refused with dev auth), the
    // flag puts it back on loopback.
    let env = [("AGENTWIRE_LISTEN", "0.0.0.0:0")];
    let (code, _, stderr) = run(&["check"], &env);
    assert_ne!(code, 0, "{stderr}");
    let (code, _, stderr) = run(&["check", "--listen", "127.0.0.1:0"], &env);
    assert_eq!(code, 0, "{stderr}");
    // A short secret is refused in dev mode too: dev mode verifies tokens with it.
    let (code, _, stderr) = run(&["check"], &[("AGENTWIRE_AUTH__JWT_SECRET", "short")]);
    assert_ne!(code, 0);
    assert!(error_line(&stderr).contains("auth.jwt_secret"), "{stderr}");
    // Unrelated AGENTWIRE_* variables (like the test suite's own) are not config.
    let (code, _, _) = run(&["check"], &[("AGENTWIRE_REQUIRE_REDIS", "1")]);
    assert_eq!(code, 0);
}

fn token_mints_a_jwt_with_the_configured_secret() {
    let env = [(
        "AGENTWIRE_AUTH__JWT_SECRET",
        "0123456789abcdef0123456789abcdef",
    )];
    let (code, stdout, _) = run(&["token", "alice", "--ttl", "10m"], &env);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim().split('.').count(), 3);
    let (code, _, stderr) = run(&["token", "alice", "--ttl", "30"], &env);
    assert_ne!(code, 0, "a duration without a unit is refused");
    assert!(stderr.contains("30"), "{stderr}");
    let (code, _, stderr) = run(&["token", "alice"], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("jwt_secret"), "{stderr}");
}

/// Starts `agentwire serve ARGS` at `RUST_LOG=info` and reads its stderr up to the
/// `agentwire ready` line; returns the child, that line and the rest of the log.
fn serve_until_ready(args: &[&str]) -> (Child, String, Lines<BufReader<ChildStderr>>) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("agentwire ready") => break Some(line),
            Some(Ok(_)) if started.elapsed() < Duration::from_secs(20) => {}
            _ => break None,
        }
    };
    match ready {
        Some(line) => (child, line, lines),
        None => {
            // Not left running when the test fails.
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve {args:?} did not log `agentwire ready` within 20 s");
        }
    }
}

fn serve_becomes_ready_and_exits_zero_on_sigterm() {
    let (mut child, ready, lines) =
        serve_until_ready(&["--listen", "127.0.0.1:0", "--log-format", "json"]);
    let log: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let addr = log["fields"]["listen"].as_str().unwrap().to_owned();
    assert!(log["fields"]["startup_ms"].as_str().is_some());

    let body = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        use std::io::{Read, Write};
        s.write_all(b"GET /health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .join()
    .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("agentwire stopped")),
        "{rest:?}"
    );
}

fn json_logs_are_one_object_per_line_and_a_short_metrics_token_is_refused() {
    let (code, _, stderr) = run(&["check", "--log-format", "json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let phases: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .filter(|v: &serde_json::Value| v["fields"]["message"] == "startup phase done")
        .collect();
    assert_eq!(phases.len(), 6, "{stderr}");
    assert_eq!(phases[0]["fields"]["phase"], "Config");

    let (code, _, stderr) = run(&["check"], &[("AGENTWIRE_METRICS__TOKEN", "short")]);
    assert_ne!(code, 0);
    assert!(
        error_line(&stderr).contains("phase Config: metrics.token"),
        "{stderr}"
    );
}

/// `serve` turns transparent huge pages off for itself unless `--huge-pages` is given, as its
/// `/proc/<pid>/status` shows; ignored with the reason on a kernel that cannot show it.
#[cfg(target_os = "linux")]
fn serve_keeps_transparent_huge_pages_off_unless_asked() -> Result<Completion, Failed> {
    let (code, _, stderr) = run(&["check", "--huge-pages"], &[]);
    assert_eq!(code, 2, "only serve takes --huge-pages: {stderr}");
    if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
        return Ok(Completion::ignored_with(
            "no /sys/kernel/mm/transparent_hugepage: this kernel has no transparent huge pages",
        ));
    }
    for (extra, expected) in [(None, "0"), (Some("--huge-pages"), "1")] {
        let mut args = vec!["--listen", "127.0.0.1:0"];
        args.extend(extra);
        let (mut child, _, _) = serve_until_ready(&args);
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let Some(thp) = status.lines().find_map(|l| l.strip_prefix("THP_enabled:")) else {
            return Ok(Completion::ignored_with(
                "this kernel's /proc/<pid>/status has no THP_enabled line (Linux 5.0 or newer)",
            ));
        };
        assert_eq!(thp.trim(), expected, "serve {args:?}");
    }
    Ok(Completion::Completed)
}

fn the_bench_subcommand_points_to_the_agentwire_bench_binary() {
    let (code, _, stderr) = run(&["bench", "--addr", "127.0.0.1:1", "runs", "-c", "1"], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cargo run --release -p agentwire-bench -- --addr 127.0.0.1:1 runs -c 1"),
        "{stderr}"
    );
}

fn check_names_the_llm_agent_whose_model_server_does_not_answer_and_never_the_key() {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base_url = format!("http://127.0.0.1:{port}/v1");
    let agent = [
        ("AGENTWIRE_AGENTS__OFFLINE__KIND", "openai"),
        ("AGENTWIRE_AGENTS__OFFLINE__BASE_URL", base_url.as_str()),
        ("AGENTWIRE_AGENTS__OFFLINE__MODEL", "m"),
        (
            "AGENTWIRE_AGENTS__OFFLINE__API_KEY_ENV",
            "AGENTWIRE_CLI_TEST_KEY",
        ),
    ];
    let with_key = [
        &agent[..],
        &[("AGENTWIRE_CLI_TEST_KEY", "sk-cli-secret-42")],
    ]
    .concat();
    let (code, stdout, stderr) = run(&["check"], &with_key);
    assert_ne!(code, 0, "{stdout}");
    let line = error_line(&stderr);
    assert!(line.contains("phase Agents: agents.offline"), "{line}");
    assert!(line.contains("/v1/models"), "{line}");
    assert!(!stderr.contains("sk-cli-secret") && !stdout.contains("sk-cli-secret"));

    // The key variable named but not set: refused before anything is reached.
    let (code, _, stderr) = run(&["check"], &agent);
    assert_ne!(code, 0);
    let line = error_line(&stderr);
    assert!(
        line.contains("phase Agents: agents.offline") && line.contains("AGENTWIRE_CLI_TEST_KEY"),
        "{line}"
    );
}

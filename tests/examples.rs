//! Runs every example in `examples/` with `AGENTWIRE_EXAMPLE_SMOKE=1`: each binds port 0 (or no
//! port), exercises itself for real, prints `smoke ok: <name>` and exits 0.
//!
//! `cargo test` builds the examples before it runs integration tests; a binary that is missing
//! or older than its source (e.g. under `cargo test --test examples`) is built with
//! `cargo build --example <name>` first.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one example may take.
const TIMEOUT: Duration = Duration::from_secs(120);

/// `…/target/<profile>/examples/<name>`, from this test's own path
/// (`…/target/<profile>/deps/examples-<hash>`).
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Whether the binary is missing or older than `examples/<name>.rs`.
fn needs_build(name: &str, binary: &std::path::Path) -> bool {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.rs"));
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(binary), modified(&source)) {
        (Some(bin), Some(src)) => bin < src,
        _ => true,
    }
}

fn build(name: &str, binary: &std::path::Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let release = binary
        .parent()
        .and_then(|examples| examples.parent())
        .is_some_and(|profile| profile.ends_with("release"));
    let mut args = vec!["build", "--example", name];
    if release {
        args.push("--release");
    }
    let status = Command::new(cargo)
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --example {name} failed");
}

fn smoke(name: &str) {
    let path = example_path(name);
    if needs_build(name, &path) {
        build(name, &path);
    }
    let mut child = Command::new(&path)
        .env("AGENTWIRE_EXAMPLE_SMOKE", "1")
        .env_remove("AGENTS_FILE")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the example") {
            break Some(status);
        }
        if began.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    let Some(status) = status else {
        panic!(
            "example {name} did not finish within {TIMEOUT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    };
    assert!(
        status.success() && stdout.contains(&format!("smoke ok: {name}")),
        "example {name} failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
fn embed_in_axum() {
    smoke("embed_in_axum");
}

#[test]
fn custom_registry() {
    smoke("custom_registry");
}

#[test]
fn custom_tool() {
    smoke("custom_tool");
}

#[test]
fn bridge_only() {
    smoke("bridge_only");
}

/// Every example in `examples/` has a smoke test above.
#[test]
fn every_example_is_smoke_tested() {
    let this = include_str!("examples.rs");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    for entry in std::fs::read_dir(dir).expect("examples/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(
                this.contains(&format!("smoke(\"{name}\")")),
                "examples/{name}.rs has no smoke test in tests/examples.rs"
            );
            let source = std::fs::read_to_string(&path).unwrap();
            assert!(
                source.starts_with(&format!("//! Run with: cargo run --example {name}")),
                "examples/{name}.rs must start with `//! Run with: cargo run --example {name}`"
            );
            assert!(
                source.contains(&format!("smoke ok: {name}")),
                "examples/{name}.rs must print `smoke ok: {name}` in smoke mode"
            );
        }
    }
}

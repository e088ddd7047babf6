//! The harness of the end-to-end suites whose prerequisites live outside Cargo: Node packages,
//! a browser, a Redis server. They run on `libtest-mimic` (`harness = false` in the root
//! `Cargo.toml`), so a test that cannot run is counted as `ignored, <reason>` in the summary
//! instead of `ok`.
//!
//! Each suite first provisions what it can: `npm ci` into the test's own folder when Node is
//! installed, a private `redis-server` on a free port when `REDIS_URL`'s Redis does not answer.
//! A test is ignored only when a program is truly absent. With its `AGENTWIRE_REQUIRE_*`
//! variable set to `1` (as `.ci/run` does) a missing prerequisite is a failure instead.

pub(crate) mod node;

use std::future::Future;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub(crate) use libtest_mimic::Trial;
use libtest_mimic::{Arguments, Completion, Failed};

/// What a trial's runner returns.
pub(crate) type Outcome = Result<Completion, Failed>;

/// Runs `command` on a blocking thread (the server under test keeps serving on the runtime),
/// killing it after `timeout`, and returns its output.
pub(crate) async fn run_bounded(mut command: Command, timeout: Duration) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the external program starts");
        let deadline = Instant::now() + timeout;
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child
            .wait_with_output()
            .expect("the external program's output")
    })
    .await
    .expect("the external program's thread")
}

/// Runs the trials with the command-line arguments libtest understands (`--ignored`, filters …),
/// then stops the private `redis-server` [`shared_redis_ready`] may have started.
pub(crate) fn run(trials: Vec<Trial>) -> ExitCode {
    let conclusion = libtest_mimic::run(&Arguments::from_args(), trials);
    if let Some(Ok((_, Some(private)))) = SHARED_REDIS.get() {
        private.stop();
    }
    if conclusion.has_failed() {
        ExitCode::from(101)
    } else {
        ExitCode::SUCCESS
    }
}

/// A check that a prerequisite is there: `Err` says what is missing and how to get it.
pub(crate) type Ready = fn() -> Result<(), String>;

/// A trial that runs `body` on its own multi-thread runtime once `ready` says the
/// prerequisites are there; otherwise it is ignored with the reason (or fails when
/// `require_var` is `1`). `ready` runs inside the trial, so `--list` provisions nothing.
pub(crate) fn trial<B, F>(name: &str, require_var: &'static str, ready: Ready, body: B) -> Trial
where
    B: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()>,
{
    trial_needing(name, vec![(require_var, ready)], body)
}

/// [`trial`] with several prerequisites, each with its own `AGENTWIRE_REQUIRE_*` variable,
/// checked in order: the first missing one decides. With none, `body` always runs.
pub(crate) fn trial_needing<B, F>(name: &str, needs: Vec<(&'static str, Ready)>, body: B) -> Trial
where
    B: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()>,
{
    Trial::ignorable_test(name, move || {
        for (require_var, ready) in needs {
            if let Err(reason) = ready() {
                return missing(require_var, reason);
            }
        }
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(body());
        Ok(Completion::Completed)
    })
}

/// A prerequisite is missing: the test is ignored with `reason`, or fails when `require_var`
/// is `1`.
pub(crate) fn missing(require_var: &str, reason: String) -> Outcome {
    if std::env::var(require_var).as_deref() == Ok("1") {
        return Err(format!("{require_var}=1, but {reason}").into());
    }
    Ok(Completion::ignored_with(reason))
}

/// Whether `program --version` runs.
pub(crate) fn program_runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure Node runs and `dir/node_modules/<package>` is installed: runs `npm ci` in `dir`
/// when it is not. `Err` says what is missing and how to get it.
pub(crate) fn npm_ci(dir: &Path, package: &str) -> Result<(), String> {
    // Node first: installed packages are of no use to a test without it.
    if !program_runs("node") {
        return Err("node not found: install Node.js 20 or newer".into());
    }
    // One `npm ci` at a time: trials run in parallel, and `npm ci` first deletes `node_modules`.
    static NPM: Mutex<()> = Mutex::new(());
    let _turn = NPM.lock().unwrap_or_else(|e| e.into_inner());
    let installed = || dir.join("node_modules").join(package).is_dir();
    if installed() {
        return Ok(());
    }
    if !program_runs("npm") {
        return Err("npm not found: install npm (it comes with Node.js)".into());
    }
    eprintln!("provisioning: npm ci in {}", dir.display());
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        // playwright-core only drives a browser; it never downloads one.
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .output()
        .map_err(|e| format!("npm ci in {} could not start: {e}", dir.display()))?;
    if !out.status.success() || !installed() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        return Err(format!(
            "`npm ci` in {} failed ({}): {}",
            dir.display(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    Ok(())
}

/// The variable that makes a missing Redis (or `redis-server`) a failure instead of an ignore.
pub(crate) const REQUIRE_REDIS: &str = "AGENTWIRE_REQUIRE_REDIS";

/// The Redis a suite's tests share, provisioned ([`provision_redis`]) once, by the first test
/// that needs it; [`run`] stops a private one at the end.
static SHARED_REDIS: OnceLock<Result<(String, Option<PrivateRedis>), String>> = OnceLock::new();

/// [`Ready`] for the tests on the shared Redis (then [`shared_redis_url`] names it).
pub(crate) fn shared_redis_ready() -> Result<(), String> {
    SHARED_REDIS
        .get_or_init(provision_redis)
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

/// The shared Redis: `REDIS_URL`'s, or the private one started for this run.
///
/// # Panics
///
/// Before [`shared_redis_ready`] succeeded (a trial's body runs only after it did).
pub(crate) fn shared_redis_url() -> String {
    match SHARED_REDIS.get() {
        Some(Ok((url, _))) => url.clone(),
        _ => unreachable!("shared_redis_ready passed before the test ran"),
    }
}

/// [`Ready`] for the tests that start their own `redis-server`.
pub(crate) fn redis_server_ready() -> Result<(), String> {
    installed("redis-server")
}

/// [`Ready`] for the tests that start their own Redis Cluster: `redis-server` processes,
/// formed with `redis-cli --cluster`.
pub(crate) fn redis_cluster_ready() -> Result<(), String> {
    installed("redis-server").and_then(|()| installed("redis-cli"))
}

/// Whether a program of the `redis-server` package runs.
fn installed(program: &str) -> Result<(), String> {
    if program_runs(program) {
        Ok(())
    } else {
        Err(format!(
            "{program} not found: install it (apt-get install -y redis-server)"
        ))
    }
}

/// `REDIS_URL`, or the default local Redis.
pub(crate) fn configured_redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether Redis answers at `url` (a raw PING over TCP, no client library needed).
pub(crate) fn redis_answers(url: &str) -> bool {
    use std::io::{Read, Write};
    let hostport = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("");
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
    let Ok(mut s) = std::net::TcpStream::connect(hostport) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// A free loopback port (bound and released; a race with another process is unlikely).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A `redis-server` this test process started, without persistence, stopped by [`stop`].
///
/// [`stop`]: PrivateRedis::stop
#[derive(Debug)]
pub(crate) struct PrivateRedis {
    child: Mutex<Option<Child>>,
    /// `redis://127.0.0.1:<port>`.
    pub(crate) url: String,
}

impl PrivateRedis {
    /// Starts `redis-server` on a free port with `extra` arguments; waits until it answers.
    pub(crate) fn start(extra: &[&str]) -> Result<PrivateRedis, String> {
        Self::start_on(free_port(), extra)
    }

    /// Starts `redis-server` on `port` with `extra` arguments; waits until it answers.
    pub(crate) fn start_on(port: u16, extra: &[&str]) -> Result<PrivateRedis, String> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server did not start: {e}"))?;
        let redis = PrivateRedis {
            child: Mutex::new(Some(child)),
            url: format!("redis://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while !redis_answers(&redis.url) {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "redis-server on port {port} did not answer in 10 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    /// Stops the server (SIGTERM, so an append-only file is complete) and waits for it.
    pub(crate) fn stop(&self) {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Redis the Redis-dependent tests use: `REDIS_URL`'s when it answers, else a private
/// `redis-server` when the binary exists. When CI names a `REDIS_URL` and requires Redis
/// (`AGENTWIRE_REQUIRE_REDIS=1`), a silent Redis there is a failure, never replaced.
pub(crate) fn provision_redis() -> Result<(String, Option<PrivateRedis>), String> {
    let url = configured_redis_url();
    if redis_answers(&url) {
        return Ok((url, None));
    }
    let named = std::env::var("REDIS_URL").is_ok();
    if named && std::env::var("AGENTWIRE_REQUIRE_REDIS").as_deref() == Ok("1") {
        return Err(format!("Redis at REDIS_URL={url} does not answer"));
    }
    if !program_runs("redis-server") {
        return Err(format!(
            "no Redis at {url} and no redis-server binary: start Redis and set REDIS_URL, \
             or install redis-server"
        ));
    }
    let private = PrivateRedis::start(&[])
        .map_err(|e| format!("no Redis at {url}, and a private one failed: {e}"))?;
    eprintln!(
        "provisioning: no Redis at {url}; started a private redis-server at {}",
        private.url
    );
    Ok((private.url.clone(), Some(private)))
}

//! Durable Streams (`/ds`, docs/durable-streams.md) against a live agentwire:
//! - the official server conformance suite (`@durable-streams/server-conformance-tests`, pinned
//!   in `tests/durable-streams/package-lock.json`) runs with its own CLI, `--run <base-url>`, and
//!   every case must pass;
//! - authentication: a stream belongs to the user who created it; others get 403, anonymous
//!   requests 401; the per-user stream bound answers 429;
//! - its 6 subscription cases (PROTOCOL.md §6, §7), which the CLI cannot turn on, run through
//!   `tests/durable-streams/subscriptions.test.mjs` (`subscriptions: true`), on both stores;
//! - a subscription belongs to its creator, and (redis) is shared by every node;
//! - `insecure_no_auth` is refused off loopback;
//! - on the redis store (`REDIS_URL`; when it does not answer, a private `redis-server` on a free
//!   port): the suite again, and a stream appended on node A is tailed live (long-poll, SSE) and
//!   read by offset on node B.
//!
//! Runs on the `libtest-mimic` harness (`tests/harness`). The Node tests run `npm ci` in
//! `tests/durable-streams` themselves; without Node (or without Redis and `redis-server`) a test
//! is reported as ignored with the reason, unless `AGENTWIRE_REQUIRE_INTEROP=1`
//! (`AGENTWIRE_REQUIRE_REDIS=1`), as `.ci/run` sets, makes it fail.

#[allow(dead_code)] // each suite uses part of the shared harness
#[path = "../harness/mod.rs"]
mod harness;
mod nodes;
mod ownership;
mod runs;
mod subscriptions;

use harness::{shared_redis_ready as redis_ready, shared_redis_url as redis_url};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use agentwire_test::TestServer;

use nodes::*;
use ownership::*;
use runs::*;
use subscriptions::*;

/// The longest the conformance suite may run (it takes about a minute).
const SUITE_TIMEOUT: Duration = Duration::from_secs(600);

fn suite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/durable-streams")
}

/// Installs the pinned packages (`npm ci`) when they are not there yet.
fn suite_ready() -> Result<(), String> {
    harness::npm_ci(&suite_dir(), "@durable-streams/server-conformance-tests")
}

const INTEROP: &str = "AGENTWIRE_REQUIRE_INTEROP";
const REDIS_NEEDED: &str = harness::REQUIRE_REDIS;

fn main() -> std::process::ExitCode {
    harness::run(vec![
        harness::trial(
            "the_official_conformance_suite_passes_on_the_memory_store",
            INTEROP,
            suite_ready,
            the_official_conformance_suite_passes_on_the_memory_store,
        ),
        harness::trial_needing(
            "the_official_conformance_suite_passes_on_the_redis_store",
            vec![(INTEROP, suite_ready), (REDIS_NEEDED, redis_ready)],
            the_official_conformance_suite_passes_on_the_redis_store,
        ),
        harness::trial(
            "the_subscription_cases_pass_on_the_memory_store",
            INTEROP,
            suite_ready,
            the_subscription_cases_pass_on_the_memory_store,
        ),
        harness::trial_needing(
            "the_subscription_cases_pass_on_the_redis_store",
            vec![(INTEROP, suite_ready), (REDIS_NEEDED, redis_ready)],
            the_subscription_cases_pass_on_the_redis_store,
        ),
        harness::trial_needing(
            "a_subscription_belongs_to_its_creator",
            Vec::new(),
            a_subscription_belongs_to_its_creator,
        ),
        harness::trial(
            "a_subscription_made_on_node_a_wakes_and_is_acked_on_node_b",
            REDIS_NEEDED,
            redis_ready,
            a_subscription_made_on_node_a_wakes_and_is_acked_on_node_b,
        ),
        harness::trial(
            "appended_on_node_a_is_tailed_live_and_by_offset_on_node_b",
            REDIS_NEEDED,
            redis_ready,
            appended_on_node_a_is_tailed_live_and_by_offset_on_node_b,
        ),
        harness::trial_needing(
            "a_stream_belongs_to_its_creator",
            Vec::new(),
            a_stream_belongs_to_its_creator,
        ),
        harness::trial_needing(
            "a_users_request_rate_is_bounded_on_reads_and_control_routes",
            Vec::new(),
            a_users_request_rate_is_bounded_on_reads_and_control_routes,
        ),
        harness::trial_needing(
            "an_oversized_append_is_answered_413_after_its_body_is_read",
            Vec::new(),
            an_oversized_append_is_answered_413_after_its_body_is_read,
        ),
        harness::trial_needing(
            "forged_wake_tokens_are_rate_limited_per_address",
            Vec::new(),
            forged_wake_tokens_are_rate_limited_per_address,
        ),
        harness::trial_needing(
            "a_body_that_stops_arriving_is_a_bad_request",
            Vec::new(),
            a_body_that_stops_arriving_is_a_bad_request,
        ),
        harness::Trial::test("insecure_no_auth_is_refused_off_loopback", || {
            insecure_no_auth_is_refused_off_loopback();
            Ok(())
        }),
        harness::trial_needing(
            "a_run_is_a_read_only_durable_stream_whose_offsets_are_seqs",
            Vec::new(),
            a_run_is_a_read_only_durable_stream_whose_offsets_are_seqs,
        ),
        harness::trial(
            "the_stock_client_follows_a_run_across_forced_disconnects",
            INTEROP,
            suite_ready,
            the_stock_client_follows_a_run_across_forced_disconnects,
        ),
    ])
}

/// The text without ANSI colour sequences (the CLI forces colour on).
fn plain(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `(failed, passed, skipped)` from vitest's summary line
/// `Tests  2 failed | 330 passed | 6 skipped (338)`.
fn counts(output: &str) -> Option<(u32, u32, u32)> {
    let line = output
        .lines()
        .find(|l| l.trim_start().starts_with("Tests "))?;
    let count = |word: &str| {
        line.split('|')
            .find(|part| part.contains(word))
            .and_then(|part| part.split_whitespace().find_map(|w| w.parse().ok()))
            .unwrap_or(0)
    };
    Some((count("failed"), count("passed"), count("skipped")))
}

/// What a vitest run printed: the failed cases (`× <name> <ms>` in the per-case list, or a
/// `FAIL` line) and the summary's counts.
struct VitestRun {
    failures: Vec<String>,
    failed: u32,
    passed: u32,
    skipped: u32,
    stderr: String,
}

impl VitestRun {
    /// # Panics
    /// When the output has no vitest summary line (the run did not get that far).
    fn of(output: &std::process::Output) -> Self {
        let stdout = plain(&output.stdout);
        let stderr = plain(&output.stderr);
        let failures = stdout
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with("FAIL ") || l.starts_with('×'))
            .map(str::to_owned)
            .collect();
        let (failed, passed, skipped) = counts(&stdout).unwrap_or_else(|| {
            panic!(
                "no vitest summary; status {:?}\n{stdout}\n{stderr}",
                output.status
            )
        });
        Self {
            failures,
            failed,
            passed,
            skipped,
            stderr,
        }
    }
}

/// One suite run at a time: two at once on a small shared machine push its timing-based cases
/// (1 s TTLs, 5 s case timeouts) over their limits.
static ONE_SUITE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs the official suite with its CLI against a live server on `config` (auth off, loopback)
/// and asserts every case passes, printing the counts.
async fn conformance(mut config: agentwire_startup::AgentwireConfig, store: &str) {
    let _turn = ONE_SUITE.lock().await;
    config.durable_streams.insecure_no_auth = true;
    // The suite's long-poll cases wait 5 s for a 204; the reference server runs it with 0.5 s.
    config.durable_streams.long_poll_timeout = Duration::from_secs(1);
    let server = TestServer::start_with(config, Vec::new()).await;
    let base = server.http_url("/ds");
    let dir = suite_dir();
    // The CLI spawns `vitest` from PATH when it is installed as a dependency (as `npx` would).
    let bin = dir.join("node_modules/.bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin];
    paths.extend(std::env::split_paths(&path));
    let mut node = Command::new("node");
    node.current_dir(&dir)
        .arg("node_modules/@durable-streams/server-conformance-tests/dist/cli.js")
        .args(["--run", &base])
        .env("PATH", std::env::join_paths(paths).expect("PATH entries"));
    let output = harness::run_bounded(node, SUITE_TIMEOUT).await;
    let VitestRun {
        failures,
        failed,
        passed,
        skipped,
        ..
    } = VitestRun::of(&output);
    println!(
        "durable streams conformance ({store} store): {passed} passed, {failed} failed, {skipped} skipped by the suite (its subscription cases, off in --run; run by the_subscription_cases_pass_on_*)"
    );
    assert_eq!(failed, 0, "failing cases:\n{}", failures.join("\n"));
    assert!(passed >= 330, "only {passed} cases ran");
    assert!(
        output.status.success(),
        "the CLI exited {:?}",
        output.status
    );
    server.stop().await;
}

async fn the_official_conformance_suite_passes_on_the_memory_store() {
    conformance(agentwire_test::test_config(), "memory").await;
}

async fn the_official_conformance_suite_passes_on_the_redis_store() {
    let redis = TestRedis::new("conformance");
    conformance(redis.config(), "redis").await;
    drop(redis);
}

/// Runs the suite's "Reserved subscription APIs" cases (`subscriptions: true`, which its CLI
/// cannot pass; `tests/durable-streams/subscriptions.test.mjs`) against a live server (auth
/// off, loopback webhooks allowed) whose stream root is where those cases address streams,
/// `<base>/v1/stream/`; asserts all 6 pass, naming any that fails.
async fn subscription_cases(mut config: agentwire_startup::AgentwireConfig, store: &str) {
    let _turn = ONE_SUITE.lock().await;
    config.durable_streams.insecure_no_auth = true;
    config.durable_streams.webhook_dev_loopback = true;
    config.durable_streams.mount = "/ds/v1/stream".into();
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut node = Command::new("node");
    node.current_dir(suite_dir())
        .arg("node_modules/vitest/vitest.mjs")
        .args(["run", "--config", "subscriptions.vitest.config.mjs"])
        .args(["--reporter=verbose", "-t", "Reserved subscription APIs"])
        .env("CONFORMANCE_TEST_URL", server.http_url("/ds"));
    let output = harness::run_bounded(node, SUITE_TIMEOUT).await;
    let VitestRun {
        failures,
        failed,
        passed,
        skipped,
        stderr,
    } = VitestRun::of(&output);
    println!(
        "durable streams subscription cases ({store} store): {passed} passed, {failed} failed, {skipped} other cases filtered out"
    );
    assert_eq!(
        failed,
        0,
        "failing cases:\n{}\n{stderr}",
        failures.join("\n")
    );
    assert_eq!(passed, 6, "the suite's subscription block has 6 cases");
    assert!(output.status.success(), "vitest exited {:?}", output.status);
    server.stop().await;
}

async fn the_subscription_cases_pass_on_the_memory_store() {
    subscription_cases(agentwire_test::test_config(), "memory").await;
}

async fn the_subscription_cases_pass_on_the_redis_store() {
    let redis = TestRedis::new("subscriptions");
    subscription_cases(redis.config(), "redis").await;
    drop(redis);
}

/// `GET url` as JSON, shared by the suite's files.
async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: String) -> T {
    let text = http.get(url).send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap()
}

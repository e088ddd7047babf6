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
mod harness;

use harness::{shared_redis_ready as redis_ready, shared_redis_url as redis_url};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use agentwire_test::TestServer;

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
    let stdout = plain(&output.stdout);
    // A failed case is `× <name> <ms>` in the per-case list (the `FAIL` blocks go to stderr).
    let failures: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("FAIL ") || l.starts_with('×')
        })
        .collect();
    let (failed, passed, skipped) = counts(&stdout).unwrap_or_else(|| {
        panic!(
            "no vitest summary; status {:?}\n{stdout}\n{}",
            output.status,
            plain(&output.stderr)
        )
    });
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
    let stdout = plain(&output.stdout);
    let failures: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('×'))
        .collect();
    let (failed, passed, skipped) = counts(&stdout).unwrap_or_else(|| {
        panic!(
            "no vitest summary; status {:?}\n{stdout}\n{}",
            output.status,
            plain(&output.stderr)
        )
    });
    println!(
        "durable streams subscription cases ({store} store): {passed} passed, {failed} failed, {skipped} other cases filtered out"
    );
    assert_eq!(
        failed,
        0,
        "failing cases:\n{}\n{}",
        failures.join("\n"),
        plain(&output.stderr)
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

/// A subscription is its creator's: its pattern matches only their streams, other users do
/// not see it, the bound per user holds, and webhook URLs are checked (no loopback exception).
async fn a_subscription_belongs_to_its_creator() {
    let mut config = agentwire_test::test_config();
    config.durable_streams.max_subscriptions_per_user = 1;
    let server = TestServer::start_with(config, Vec::new()).await;
    let http = reqwest::Client::new();
    let url = |path: &str, user: &str| server.http_url(&format!("/ds/{path}?user={user}"));
    let json = |body: &str| -> serde_json::Value { serde_json::from_str(body).unwrap() };
    let pull = r#"{"type":"pull-wake","pattern":"jobs/*","wake_stream":"wake"}"#;

    let anonymous = http
        .put(server.http_url("/ds/__ds/subscriptions/s"))
        .body(pull)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let wake = http
        .put(url("wake", "ada"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(wake.status(), 201);
    let created = http
        .put(url("__ds/subscriptions/s", "ada"))
        .body(pull)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let second = http
        .put(url("__ds/subscriptions/t", "ada"))
        .body(pull)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 429, "max_subscriptions_per_user = 1");
    let bobs_view = http
        .get(url("__ds/subscriptions/s", "bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bobs_view.status(),
        404,
        "another user's subscription is not found"
    );
    let bobs_claim = http
        .post(url("__ds/subscriptions/s/claim", "bob"))
        .body(r#"{"worker":"b"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bobs_claim.status(), 404);

    // Bob's stream matches the pattern but is not Ada's: no wake.
    let jobs = |path: &str, user: &str| {
        http.put(url(path, user))
            .header("content-type", "application/json")
            .body(r#"{"job":1}"#)
            .send()
    };
    assert_eq!(jobs("jobs/bob", "bob").await.unwrap().status(), 201);
    let events = http
        .get(url("wake", "ada"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(json(&events), serde_json::json!([]));
    // Ada's is: the wake event is written before her write is answered.
    assert_eq!(jobs("jobs/ada", "ada").await.unwrap().status(), 201);
    let events = json(
        &http
            .get(url("wake", "ada"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(events[0]["subscription_id"], "s");
    assert_eq!(events[0]["stream"], "jobs/ada");
    assert_eq!(events.as_array().unwrap().len(), 1);

    // Without webhook_dev_loopback, a loopback webhook is refused.
    http.delete(url("__ds/subscriptions/s", "ada"))
        .send()
        .await
        .unwrap();
    let hook = http
        .put(url("__ds/subscriptions/h", "ada"))
        .body(
            r#"{"type":"webhook","pattern":"jobs/*","webhook":{"url":"http://127.0.0.1:9/hook"}}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 400);
    assert_eq!(
        json(&hook.text().await.unwrap())["error"]["code"],
        "WEBHOOK_URL_REJECTED"
    );
    server.stop().await;
}

/// Redis store: subscription state and the signing key are shared, so a pull-wake subscription
/// created on A is woken by a write on B, claimed on A, fenced and acked on B with A's token,
/// and both nodes publish the same key.
async fn a_subscription_made_on_node_a_wakes_and_is_acked_on_node_b() {
    let redis = TestRedis::new("subs-cross-node");
    let a = TestServer::start_with(redis.config(), Vec::new()).await;
    let b = TestServer::start_with(redis.config(), Vec::new()).await;
    let http = reqwest::Client::new();
    let on = |node: &TestServer, path: &str| node.http_url(&format!("/ds/{path}?user=ada"));
    let json = |v: &str| -> serde_json::Value { serde_json::from_str(v).unwrap() };
    let put_json = |url: String, body: &'static str| {
        http.put(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    assert_eq!(put_json(on(&a, "wake"), "").await.unwrap().status(), 201);
    let sub = r#"{"type":"pull-wake","pattern":"jobs/*","wake_stream":"wake"}"#;
    let created = put_json(on(&a, "__ds/subscriptions/s"), sub).await.unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(
        put_json(on(&b, "__ds/subscriptions/s"), sub)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        put_json(on(&b, "jobs/1"), r#"{"n":1}"#)
            .await
            .unwrap()
            .status(),
        201
    );
    let events = json(
        &http
            .get(on(&a, "wake"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(
        events[0]["subscription_id"], "s",
        "B's write woke the subscription: {events}"
    );

    let claim = http
        .post(on(&a, "__ds/subscriptions/s/claim"))
        .body(r#"{"worker":"w"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(claim.status(), 200);
    let claimed = json(&claim.text().await.unwrap());
    let busy = http
        .post(on(&b, "__ds/subscriptions/s/claim"))
        .body(r#"{"worker":"v"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status(), 409, "the lease taken on A holds on B");
    let tail = claimed["streams"][0]["tail_offset"].clone();
    let ack = |generation: &serde_json::Value| {
        let body = serde_json::json!({
            "wake_id": claimed["wake_id"], "generation": generation,
            "acks": [{"stream": "jobs/1", "offset": tail}], "done": true,
        });
        http.post(b.http_url("/ds/__ds/subscriptions/s/ack"))
            .bearer_auth(claimed["token"].as_str().unwrap())
            .body(body.to_string())
            .send()
    };
    let stale = ack(&serde_json::json!(
        claimed["generation"].as_u64().unwrap() + 1
    ))
    .await
    .unwrap();
    assert_eq!(stale.status(), 409);
    assert_eq!(
        json(&stale.text().await.unwrap())["error"]["code"],
        "FENCED"
    );
    let acked = ack(&claimed["generation"]).await.unwrap();
    assert_eq!(acked.status(), 200, "A's token is valid on B");
    let view = json(
        &http
            .get(on(&b, "__ds/subscriptions/s"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(view["streams"][0]["acked_offset"], tail);

    let jwks = |node: &TestServer| http.get(node.http_url("/ds/__ds/jwks.json")).send();
    let (ka, kb) = (jwks(&a).await.unwrap(), jwks(&b).await.unwrap());
    assert_eq!(ka.text().await.unwrap(), kb.text().await.unwrap());
    a.stop().await;
    b.stop().await;
    drop(redis);
}

async fn appended_on_node_a_is_tailed_live_and_by_offset_on_node_b() {
    let redis = TestRedis::new("cross-node");
    let a = TestServer::start_with(redis.config(), Vec::new()).await;
    let b = TestServer::start_with(redis.config(), Vec::new()).await;
    let http = reqwest::Client::new();
    let on = |node: &TestServer, query: &str| node.http_url(&format!("/ds/chat?user=ada{query}"));

    let created = http
        .put(on(&a, ""))
        .header("content-type", "application/json")
        .body(r#"{"n":0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let start = created.headers()["stream-next-offset"]
        .to_str()
        .unwrap()
        .to_owned();

    // B tails live (long-poll and SSE) at the tail before A appends.
    let poll = tokio::spawn(
        http.get(on(&b, &format!("&offset={start}&live=long-poll")))
            .send(),
    );
    let mut sse = http
        .get(on(&b, &format!("&offset={start}&live=sse")))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let first = sse.chunk().await.unwrap().expect("the first control event");
    assert!(
        String::from_utf8_lossy(&first).contains("upToDate"),
        "{first:?}"
    );

    let appended = http
        .post(on(&a, ""))
        .header("content-type", "application/json")
        .body(r#"[{"n":1},{"n":2}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(appended.status(), 204);

    let polled = poll.await.unwrap().unwrap();
    assert_eq!(polled.status(), 200, "B's long-poll wakes on A's append");
    assert_eq!(polled.text().await.unwrap(), r#"[{"n":1},{"n":2}]"#);

    let mut events = String::new();
    while !events.contains("event: control") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), sse.chunk())
            .await
            .expect("B's SSE gets A's append")
            .unwrap()
            .expect("the stream stays open");
        events.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(events.contains(r#"data:[{"n":1},{"n":2}]"#), "{events}");

    let caught_up = http.get(on(&b, "&offset=-1")).send().await.unwrap();
    assert_eq!(
        caught_up.text().await.unwrap(),
        r#"[{"n":0},{"n":1},{"n":2}]"#
    );
    let from_offset = http
        .get(on(&b, &format!("&offset={start}")))
        .send()
        .await
        .unwrap();
    assert_eq!(from_offset.text().await.unwrap(), r#"[{"n":1},{"n":2}]"#);

    drop(sse);
    a.stop().await;
    b.stop().await;
}

/// A key prefix of this test's own in the shared Redis, removed afterwards.
struct TestRedis {
    prefix: String,
}

impl TestRedis {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self {
            prefix: format!("aw-test-ds:{name}:{}:{nanos}", std::process::id()),
        }
    }

    /// Dev auth, the Redis broker, and the redis store under this prefix.
    fn config(&self) -> agentwire_startup::AgentwireConfig {
        let mut config = agentwire_test::test_config();
        config.broker = redis_url();
        config.durable_streams.store = agentwire_durable_streams::StoreKind::Redis;
        config.durable_streams.redis_prefix = self.prefix.clone();
        config
    }
}

/// Removes the prefix's keys even when the test failed (a sync connection: this is `Drop`).
impl Drop for TestRedis {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(redis_url()).and_then(|c| c.get_connection()) else {
            return;
        };
        // SCAN, not KEYS: the Redis is shared.
        let mut cursor = 0u64;
        loop {
            let Ok((next, keys)) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query::<(u64, Vec<String>)>(&mut conn)
            else {
                return;
            };
            if !keys.is_empty() {
                let _ = redis::cmd("DEL").arg(&keys).query::<()>(&mut conn);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

async fn a_stream_belongs_to_its_creator() {
    let mut config = agentwire_test::test_config();
    config.durable_streams.max_streams_per_user = 2;
    let server = TestServer::start_with(config, Vec::new()).await;
    let http = reqwest::Client::new();
    let url = |path: &str, user: &str| server.http_url(&format!("/ds/{path}?user={user}"));

    let anonymous = http.put(server.http_url("/ds/a")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let created = http
        .put(url("notes", "ada"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let read = http.get(url("notes", "ada")).send().await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.text().await.unwrap(), "hello");

    for method in [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    ] {
        let other = http
            .request(method.clone(), url("notes", "bob"))
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 403, "{method} by another user");
    }

    let second = http.put(url("second", "ada")).send().await.unwrap();
    assert_eq!(second.status(), 201);
    let third = http.put(url("third", "ada")).send().await.unwrap();
    assert_eq!(
        third.status(),
        429,
        "the third stream passes max_streams_per_user = 2"
    );
    let bobs = http.put(url("third", "bob")).send().await.unwrap();
    assert_eq!(bobs.status(), 201, "the bound is per user");
    // The reserved control prefix is never a stream: a body-less PUT there is a malformed
    // subscription, not a new stream.
    let reserved = http
        .put(url("__ds/subscriptions/s1", "ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(reserved.status(), 400);
    let body: serde_json::Value = reserved.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INVALID_REQUEST");
    server.stop().await;
}

fn insecure_no_auth_is_refused_off_loopback() {
    let mut config = agentwire_test::test_config();
    config.durable_streams.insecure_no_auth = true;
    config.listen = SocketAddr::from(([0, 0, 0, 0], 8080));
    config.allow_insecure_dev = true; // so the dev-auth check does not answer first
    let err = config.validate().expect_err("refused off loopback");
    assert!(err.to_string().contains("insecure_no_auth"), "{err}");
    config.listen = SocketAddr::from(([127, 0, 0, 1], 8080));
    config.validate().expect("allowed on loopback");

    // Likewise the loopback-webhook development exception, and a mount must not shadow routes.
    config.durable_streams.webhook_dev_loopback = true;
    config.validate().expect("allowed on loopback");
    config.listen = SocketAddr::from(([0, 0, 0, 0], 8080));
    config.durable_streams.insecure_no_auth = false;
    let err = config.validate().expect_err("refused off loopback");
    assert!(err.to_string().contains("webhook_dev_loopback"), "{err}");
    config.durable_streams.webhook_dev_loopback = false;
    config.durable_streams.mount = "/v1/stream".into();
    let err = config
        .validate()
        .expect_err("a mount over the server's routes");
    assert!(err.to_string().contains("durable_streams.mount"), "{err}");
}

async fn a_run_is_a_read_only_durable_stream_whose_offsets_are_seqs() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let mut ada = server.connect("ada").await;
    let (ack, events) = ada.run("r1", "demo", "what is 6*7?").await;
    let run_id = ack["run_id"].as_str().unwrap().to_owned();
    let run_url =
        |query: &str| server.http_url(&format!("/ds/agentwire/runs/{run_id}?user=ada{query}"));

    // Catch-up from the start: the run's events, in order, then EOF (the run ended).
    let read = http.get(run_url("&offset=-1")).send().await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["content-type"], "application/json");
    let next = read.headers()["stream-next-offset"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        read.headers()["stream-closed"],
        "true",
        "a finished run is a closed stream"
    );
    let got: Vec<serde_json::Value> = read.json().await.unwrap();
    assert_eq!(got, events, "the same events /ws delivered");
    let last_seq = events.last().unwrap()["seq"].as_u64().unwrap();
    assert!(
        next.ends_with(&format!("{last_seq:016}")),
        "the offset is the last seq: {next}"
    );

    // Resuming after the second event returns the rest; offsets map to seqs.
    let second = events[1]["seq"].as_u64().unwrap();
    let resumed: Vec<serde_json::Value> = http
        .get(run_url(&format!("&offset=0000000000000000_{second:016}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resumed, events[2..]);

    // Read-only; and another user's run is not visible.
    let append = http
        .post(run_url(""))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(append.status(), 405);
    let bob: Vec<serde_json::Value> = http
        .get(server.http_url(&format!("/ds/agentwire/runs/{run_id}?user=bob&offset=-1")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(bob.is_empty(), "bob's stream has no events of ada's run");

    // The user's event stream: a long-poll at its tail wakes with the next run's first event.
    let tail = http
        .head(server.http_url("/ds/agentwire/events?user=ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    let tail = tail.headers()["stream-next-offset"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(tail.ends_with(&format!("{last_seq:016}")));
    let poll = tokio::spawn(
        http.get(server.http_url(&format!(
            "/ds/agentwire/events?user=ada&offset={tail}&live=long-poll"
        )))
        .send(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, more) = ada.run("r2", "demo", "again").await;
    let polled = poll.await.unwrap().unwrap();
    assert_eq!(polled.status(), 200);
    let woke: Vec<serde_json::Value> = polled.json().await.unwrap();
    assert_eq!(
        woke[0], more[0],
        "the long-poll returns the next run's first event"
    );
    ada.close().await;
    server.stop().await;
}

/// How long the server keeps an SSE response open in the forced-disconnect test.
const SSE_LIFETIME: Duration = Duration::from_millis(1200);

async fn the_stock_client_follows_a_run_across_forced_disconnects() {
    let dir = suite_dir();
    let mut config = agentwire_test::test_config();
    // A demo run paced to last ~3 s, and SSE responses the server ends every 1.2 s: the client
    // must reconnect at its offset at least twice during the run. (Under 1 s the client counts
    // each as a "short connection" and, after three, @durable-streams/client 0.2.7 ends the
    // stream instead of falling back to long-poll: docs/durable-streams.md.)
    config.agents.demo = Default::default();
    config.agents.demo.token_delay = Duration::from_millis(200);
    config.durable_streams.sse_lifetime = SSE_LIFETIME;
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut ada = server.connect("ada").await;
    ada.send_json(serde_json::json!({
        "type": "user_message", "id": "f1", "agent": "demo", "content": "tell me a story"
    }))
    .await;
    // Events may come before the ack: keep every event frame, filter by the run afterwards.
    let mut frames = Vec::new();
    let ack = loop {
        let frame = ada.next_json().await.expect("the ack");
        if frame["type"] == "ack" {
            break frame;
        }
        frames.push(frame);
    };
    let run_id = ack["run_id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let mut node = Command::new("node");
    node.current_dir(&dir)
        .arg("follow_run.mjs")
        .arg(server.http_url(&format!("/ds/agentwire/runs/{run_id}?user=ada")));
    let client = tokio::spawn(harness::run_bounded(node, SUITE_TIMEOUT));
    while !frames.last().is_some_and(|f: &serde_json::Value| {
        f["run_id"] == run_id.as_str()
            && matches!(f["type"].as_str(), Some("agent_completed" | "agent_error"))
    }) {
        frames.push(ada.next_json().await.expect("the run's events"));
    }
    let events: Vec<serde_json::Value> = frames
        .into_iter()
        .filter(|f| f.get("seq").is_some() && f["run_id"] == run_id.as_str())
        .collect();
    let output = client.await.unwrap();
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "status {:?}\n{}",
        output.status,
        plain(&output.stderr)
    );
    let received: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("the client prints the events as JSON");
    assert_eq!(
        received,
        events,
        "every event exactly once, in order; client stderr:\n{}",
        plain(&output.stderr)
    );
    assert!(
        took > SSE_LIFETIME * 2,
        "the run outlived at least two SSE responses ({took:?})"
    );
    ada.close().await;
    server.stop().await;
}

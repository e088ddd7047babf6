//! `GET /metrics` after a known workload: exact counter deltas, histogram counts, gauges, the
//! optional bearer token, and that every rendered metric is documented in `docs/operations.md`.
//!
//! Its own test binary with ONE test, because the Prometheus recorder is global to the process.
//!
//! Run with: `cargo test --test metrics`

use std::collections::BTreeSet;
use std::time::Duration;

use agentwire_agent_registry::{
    Agent, AgentError, DemoSettings, InMemoryAgentRegistry, RunContext, async_trait,
};
use agentwire_server::AppState;
use agentwire_test::{TestServer, WsClient, test_config};
use serde_json::{Value, json};

const OPERATIONS_DOC: &str = include_str!("../docs/operations.md");
const TOKEN: &str = "metrics-token-0123456789";

/// An agent that waits until it is cancelled.
struct Sleepy;

#[async_trait]
impl Agent for Sleepy {
    fn name(&self) -> &str {
        "sleepy"
    }
    async fn run(&self, _ctx: &RunContext) -> Result<Value, AgentError> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(json!("woke up"))
    }
}

/// A sample line's labels.
type Labels = Vec<(String, String)>;

/// One parsed exposition: (name, labels, value) per sample line, and the `# TYPE` names.
struct Scrape {
    samples: Vec<(String, Labels, f64)>,
    families: BTreeSet<String>,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        let mut families = BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                families.insert(rest.split(' ').next().unwrap().to_owned());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), Vec::new()),
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("labels end with }");
                    let labels = inner
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once('=').expect("k=\"v\"");
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
            };
            samples.push((name, labels, value));
        }
        Self { samples, families }
    }

    /// The sum of the samples named `name` that carry every label in `want` (0 when none).
    fn get(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }
}

async fn scrape(server: &TestServer) -> Scrape {
    let response = reqwest::Client::new()
        .get(server.http_url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    Scrape::parse(&response.text().await.unwrap())
}

/// Scrapes until `done` holds (the writer counts a frame just after the client may see it).
async fn scrape_until(server: &TestServer, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    for _ in 0..100 {
        let s = scrape(server).await;
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Reads frames until the ack of `id`; returns the run id.
async fn ack_of(client: &mut WsClient, id: &str) -> String {
    loop {
        let f = client.next_json().await.expect("open");
        if f["type"] == "ack" && f["id"] == id {
            return f["run_id"].as_str().unwrap().to_owned();
        }
    }
}

/// A server with the metrics token, an API key, a small history and a low frame rate.
async fn metrics_server() -> TestServer {
    let mut config = test_config();
    config.health.interval = Duration::from_secs(3600); // one periodic round, at serve
    config.history.max_events = 8; // so a resume from seq 1 after 15 events has a gap
    config.limits.messages_per_second = 5;
    config.limits.burst = 5;
    config.metrics.token = Some(TOKEN.to_owned());
    config.api_key = Some("publish-key-0123456789abcdef".to_owned());
    let mut registry = InMemoryAgentRegistry::with_builtins(DemoSettings::instant());
    registry.register_agent(Sleepy);
    let ready = agentwire_server::start_with_registry(config, registry, Vec::new())
        .await
        .expect("startup");
    TestServer::serve(AppState::new(ready)).await
}

#[tokio::test]
async fn metrics_after_a_known_workload() {
    // As the binary does: the library installs no recorder by itself.
    agentwire_server::install_metrics_recorder();
    let server = metrics_server().await;

    // Without the token: 401, counted.
    let open = reqwest::get(server.http_url("/metrics")).await.unwrap();
    assert_eq!(open.status(), 401);

    // The synthetic health runs (startup + the first periodic round) end before the baseline.
    let echo_done = [("agent", "echo"), ("outcome", "completed")];
    let before = scrape_until(&server, "the health runs", |s| {
        s.get("agentwire_runs_finished_total", &echo_done) >= 2.0
    })
    .await;
    for phase in ["Config", "Broker", "Bridge", "Agents", "Health", "Finalize"] {
        assert!(
            before
                .samples
                .iter()
                .any(|(n, l, _)| n == "agentwire_startup_phase_duration_seconds"
                    && l.iter().any(|(k, v)| k == "phase" && v == phase)),
            "startup phase {phase} has a duration"
        );
    }

    let work = run_workload(&server).await;
    let accepted = work.accepted;
    let after = scrape_until(&server, "every delivery and close", |s| {
        let d = |name: &str| s.get(name, &[]) - before.get(name, &[]);
        d("agentwire_events_delivered_total") >= accepted + 8.0
            && s.get("agentwire_connections", &[]) == 2.0
            && s.get("agentwire_queued_bytes", &[]) == 0.0
    })
    .await;
    check_events(&before, &after, &work);
    check_runs_and_tools(&before, &after, &work.demo_tools);
    check_closes_errors_and_auth(&before, &after, accepted);
    check_gauges_and_docs(&after);

    for client in work.open {
        client.close().await;
    }
    server.stop().await;
}

/// What the workload did, for the counters to be checked against.
struct Workload {
    /// Events the broker accepted: 3 echo runs, the demo run, the cancelled run's two.
    accepted: f64,
    /// The tools the demo run called, in order.
    demo_tools: Vec<String>,
    /// The two connections still open.
    open: [WsClient; 2],
}

/// ada: 3 echo runs, then a resume with a gap; bob: a demo run, a cancelled run, a refused
/// frame; cy: rate-limited until closed; and refused requests on `/ws` and the HTTP routes.
async fn run_workload(server: &TestServer) -> Workload {
    // ada: 3 echo runs (5 events each), seqs 1..=15.
    let mut ada = server.connect("ops-ada").await;
    for i in 0..3 {
        let (_, events) = ada.run(&format!("e{i}"), "echo", "hi").await;
        assert_eq!(events.len(), 5);
    }
    // bob: one demo run, one cancelled run, one refused frame.
    let mut bob = server.connect("ops-bob").await;
    let (_, demo_events) = bob.run("d1", "demo", "what is 6*7?").await;
    let demo_tools: Vec<String> = demo_events
        .iter()
        .filter(|e| e["type"] == "tool_completed")
        .map(|e| e["data"]["tool"].as_str().unwrap().to_owned())
        .collect();
    bob.send_json(json!({"type": "user_message", "id": "s1", "agent": "sleepy", "content": "zz"}))
        .await;
    let run_id = ack_of(&mut bob, "s1").await;
    bob.send_json(json!({"type": "cancel", "id": "k1", "run_id": run_id}))
        .await;
    let cancelled = loop {
        let f = bob.next_json().await.unwrap();
        if f["type"] == "agent_error" {
            break f;
        }
    };
    assert_eq!(cancelled["data"]["code"], "cancelled");
    bob.send_json(json!({"type": "nope", "id": "x1"})).await;
    loop {
        let f = bob.next_json().await.unwrap();
        if f["type"] == "error" {
            assert_eq!(f["code"], "unknown_type");
            break;
        }
    }
    // cy: floods pings until closed with 4029.
    let mut cy = server.connect("ops-cy").await;
    for i in 0..40 {
        cy.send_json(json!({"type": "ping", "id": format!("p{i}")}))
            .await;
    }
    while cy.next_json().await.is_some() {}
    assert_eq!(u16::from(cy.close.clone().expect("a close").code), 4029);
    // ada reconnects from seq 1: history holds 8..=15, so a gap (2..=7) and 8 replayed events.
    ada.close().await;
    let mut ada = WsClient::connect(&server.ws_url("user=ops-ada&last_seq=1"))
        .await
        .unwrap();
    assert_eq!(ada.hello["data"]["resumed"]["replayed"], 8);
    let gap = ada.next_json().await.unwrap();
    assert_eq!(gap["type"], "replay_gap");
    for seq in 8..=15 {
        assert_eq!(ada.next_json().await.unwrap()["seq"], seq);
    }
    // An unauthenticated connection: 401 before the upgrade.
    assert!(WsClient::connect(&server.ws_url("")).await.is_err());
    // Unauthenticated HTTP requests: 401 with a JSON code, counted per route like /ws.
    let http = reqwest::Client::new();
    let refused = [
        http.post(server.http_url("/v1/runs"))
            .json(&json!({"agent": "echo", "content": "hi"})),
        http.get(server.http_url("/v1/events")),
        http.post(server.http_url("/v1/publish"))
            .bearer_auth("not-the-key"),
    ];
    for request in refused {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }

    Workload {
        accepted: 15.0 + demo_events.len() as f64 + 2.0,
        demo_tools,
        open: [ada, bob],
    }
}

/// Events accepted and delivered, by type, and the delivery latency histogram.
fn check_events(before: &Scrape, after: &Scrape, work: &Workload) {
    let (accepted, demo_tools) = (work.accepted, &work.demo_tools);
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);

    assert_eq!(delta("agentwire_events_accepted_total", &[]), accepted);
    let by_type = |t: &str| delta("agentwire_events_accepted_total", &[("type", t)]);
    assert_eq!(by_type("agent_started"), 5.0);
    assert_eq!(by_type("agent_completed"), 4.0);
    assert_eq!(by_type("agent_error"), 1.0);
    assert_eq!(by_type("tool_executing"), 3.0 + demo_tools.len() as f64);
    assert_eq!(by_type("tool_completed"), 3.0 + demo_tools.len() as f64);
    // Delivered: every accepted event live, plus the 8 replayed ones.
    assert_eq!(
        delta("agentwire_events_delivered_total", &[]),
        accepted + 8.0
    );
    assert_eq!(
        delta(
            "agentwire_events_delivered_total",
            &[("type", "agent_started")]
        ),
        5.0 + 1.0 // seq 11, the third echo run's start, is replayed
    );
    // Latency: one sample per flushed batch that held live frames — at least one, at most one
    // per live frame.
    let samples = delta("agentwire_delivery_latency_seconds_count", &[]);
    assert!(
        samples >= 1.0 && samples <= accepted,
        "{samples} latency samples for {accepted} live events"
    );
    assert!(after.get("agentwire_delivery_latency_seconds_sum", &[]) > 0.0);
}

/// Runs started and finished by agent and outcome, and tool call durations.
fn check_runs_and_tools(before: &Scrape, after: &Scrape, demo_tools: &[String]) {
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let runs = |name: &str, agent: &str, outcome: Option<&str>| match outcome {
        Some(o) => delta(name, &[("agent", agent), ("outcome", o)]),
        None => delta(name, &[("agent", agent)]),
    };
    assert_eq!(runs("agentwire_runs_started_total", "echo", None), 3.0);
    assert_eq!(runs("agentwire_runs_started_total", "demo", None), 1.0);
    assert_eq!(runs("agentwire_runs_started_total", "sleepy", None), 1.0);
    assert_eq!(
        runs("agentwire_runs_finished_total", "echo", Some("completed")),
        3.0
    );
    assert_eq!(
        runs("agentwire_runs_finished_total", "demo", Some("completed")),
        1.0
    );
    assert_eq!(
        runs("agentwire_runs_finished_total", "sleepy", Some("cancelled")),
        1.0
    );
    assert_eq!(
        runs("agentwire_runs_finished_total", "sleepy", Some("completed")),
        0.0
    );
    assert_eq!(
        runs("agentwire_run_duration_seconds_count", "echo", None),
        3.0
    );

    assert_eq!(
        delta(
            "agentwire_tool_call_duration_seconds_count",
            &[("tool", "echo")]
        ),
        3.0
    );
    for tool in demo_tools {
        let expected = demo_tools.iter().filter(|t| *t == tool).count() as f64;
        assert_eq!(
            delta(
                "agentwire_tool_call_duration_seconds_count",
                &[("tool", tool)]
            ),
            expected,
            "tool {tool}"
        );
    }
}

/// Replays, closes, frame errors, auth failures per route, and the broker's operations.
fn check_closes_errors_and_auth(before: &Scrape, after: &Scrape, accepted: f64) {
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    assert_eq!(delta("agentwire_replays_total", &[]), 1.0);
    assert_eq!(delta("agentwire_replay_gaps_total", &[]), 1.0);
    assert_eq!(delta("agentwire_replayed_events_total", &[]), 8.0);
    assert_eq!(
        delta(
            "agentwire_connection_closes_total",
            &[("reason", "rate_limited")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "agentwire_connection_closes_total",
            &[("reason", "slow_consumer")]
        ),
        0.0
    );
    assert_eq!(
        delta("agentwire_frame_errors_total", &[("code", "unknown_type")]),
        1.0
    );
    assert!(delta("agentwire_frame_errors_total", &[("code", "rate_limited")]) >= 1.0);
    assert_eq!(
        delta("agentwire_auth_failures_total", &[("route", "ws")]),
        1.0
    );
    assert_eq!(
        after.get("agentwire_auth_failures_total", &[("route", "metrics")]),
        1.0
    );
    for route in ["v1/runs", "v1/events", "v1/publish"] {
        assert_eq!(
            delta("agentwire_auth_failures_total", &[("route", route)]),
            1.0,
            "route {route}"
        );
    }
    assert_eq!(
        delta(
            "agentwire_broker_operations_total",
            &[("broker", "memory"), ("op", "append")]
        ),
        accepted
    );
    assert_eq!(after.get("agentwire_broker_errors_total", &[]), 0.0);
    assert!(after.get("agentwire_broker_operation_duration_seconds_count", &[]) > 0.0);
}

/// Gauges after the workload, and that every rendered family is documented.
fn check_gauges_and_docs(after: &Scrape) {
    assert_eq!(after.get("agentwire_connections", &[]), 2.0);
    assert_eq!(after.get("agentwire_users_online", &[]), 2.0);
    assert_eq!(after.get("agentwire_queued_bytes", &[]), 0.0);
    assert_eq!(
        after.get("agentwire_health_check_up", &[("check", "critical_path")]),
        1.0
    );

    // Every metric family the server renders is documented.
    let undocumented: Vec<&String> = after
        .families
        .iter()
        .filter(|name| !OPERATIONS_DOC.contains(&format!("`{name}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "docs/operations.md does not document: {undocumented:?}"
    );
    assert!(after.families.len() >= 20, "{:?}", after.families);
}

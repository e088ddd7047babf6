//! LLM agents end to end (issue 22): a real agentwire server whose `assistant` agent talks to a
//! scripted OpenAI-compatible server inside the test (no network), driven over a real WebSocket.

mod redis_nodes;
mod scripted;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentwire_agent_registry::{DemoSettings, InMemoryAgentRegistry};
use agentwire_llm::OpenAiAgentConfig;
use agentwire_startup::{AgentDefinition, AgentwireConfig};
use agentwire_test::{TestServer, WsClient};
use serde_json::{Value, json};

use scripted::{Ending, Reply, ScriptedModel, answer, answer_chunks, tool_calls};

/// A test config whose `assistant` agent uses `model`, adjusted by `tweak`.
fn config_with(
    model: &ScriptedModel,
    tweak: impl FnOnce(&mut OpenAiAgentConfig),
) -> AgentwireConfig {
    let mut config = agentwire_test::test_config();
    let mut agent = OpenAiAgentConfig::new(&model.base_url, "scripted");
    agent.description = Some("A scripted model".into());
    agent.system_prompt = Some("You are a test.".into());
    agent.tools = vec!["calculator".into(), "clock".into()];
    agent.retry_backoff = Duration::from_millis(10);
    agent.request_timeout = Duration::from_secs(10);
    tweak(&mut agent);
    config
        .agents
        .defined
        .insert("assistant".into(), AgentDefinition::Openai(agent));
    config
}

async fn server_for(model: &ScriptedModel) -> TestServer {
    TestServer::start_with(config_with(model, |_| {}), Vec::new()).await
}

/// Sends a message to `assistant` and returns the ack and the run's events.
async fn ask(
    ws: &mut WsClient,
    id: &str,
    content: &str,
    thread: Option<&str>,
) -> (Value, Vec<Value>) {
    let mut message =
        json!({"type": "user_message", "id": id, "agent": "assistant", "content": content});
    if let Some(thread) = thread {
        message["thread_id"] = json!(thread);
    }
    ws.send_json(message).await;
    ws.until_run_ends(id).await
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn last_data(events: &[Value]) -> &Value {
    &events.last().expect("events")["data"]
}

/// The messages of request `n`, by role and content (tool messages with their call id).
fn messages(model: &ScriptedModel, n: usize) -> Vec<Value> {
    model.requests()[n]["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_plain_answer_streams_as_deltas_that_concatenate_to_the_text() {
    let text = "Hello Ada — the answer is 42. ✓";
    let model = ScriptedModel::start(vec![answer(text)]).await;
    let server = server_for(&model).await;
    let mut ws = server.connect("ada").await;
    let (_, events) = ask(&mut ws, "c1", "hi", None).await;

    assert_eq!(events[0]["type"], "agent_started");
    assert_eq!(events[0]["agent"], "assistant");
    let streamed: String = of_type(&events, "agent_message_delta")
        .iter()
        .map(|e| e["data"]["delta"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, text);
    assert_eq!(
        of_type(&events, "agent_thinking")[0]["data"]["thought"],
        "Let me answer."
    );
    let done = events.last().unwrap();
    assert_eq!(done["type"], "agent_completed", "{events:?}");
    assert_eq!(done["data"]["result"], text);
    assert_eq!(done["data"]["model"], scripted::MODEL);
    assert_eq!(
        done["data"]["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 7})
    );

    // What the model was sent: a streamed request with usage, the tools with their schemas,
    // the system prompt, the user's message.
    let request = &model.requests()[0];
    assert_eq!(request["stream"], true);
    assert_eq!(request["stream_options"]["include_usage"], true);
    assert_eq!(request["model"], "scripted");
    let tools: Vec<&str> = request["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["calculator", "clock"]);
    assert_eq!(
        request["tools"][0]["function"]["parameters"]["required"],
        json!(["expression"])
    );
    assert_eq!(
        request["messages"],
        json!([{"role": "system", "content": "You are a test."}, {"role": "user", "content": "hi"}])
    );
    server.stop().await;
}

#[tokio::test]
async fn two_sequential_tool_turns_send_each_result_back_under_its_call_id() {
    let model = ScriptedModel::start(vec![
        tool_calls(&[("call_calc", "calculator", r#"{"expression": "6 * 7"}"#)]),
        tool_calls(&[("call_time", "clock", "{}")]),
        answer("6 * 7 is 42."),
    ])
    .await;
    let server = server_for(&model).await;
    let mut ws = server.connect("ada").await;
    let (_, events) = ask(&mut ws, "c1", "what is 6*7, and the time?", None).await;

    assert_eq!(
        types(&events),
        [
            vec![
                "agent_started",
                "tool_executing",
                "tool_completed",
                "tool_executing",
                "tool_completed",
                "agent_thinking"
            ],
            vec!["agent_message_delta"; 4],
            vec!["agent_completed"]
        ]
        .concat(),
        "{events:#?}"
    );
    let executing = of_type(&events, "tool_executing");
    assert_eq!(
        executing[0]["data"],
        json!({"call_id": "call_calc", "tool": "calculator", "args": {"expression": "6 * 7"}})
    );
    assert_eq!(executing[1]["data"]["call_id"], "call_time");
    let completed = of_type(&events, "tool_completed");
    assert_eq!(completed[0]["data"]["ok"], true);
    assert_eq!(completed[0]["data"]["result"], 42);
    assert_eq!(completed[1]["data"]["call_id"], "call_time");
    assert!(completed[1]["data"]["result"]["unix_ms"].is_u64());
    assert_eq!(
        last_data(&events)["usage"],
        json!({"prompt_tokens": 51, "completion_tokens": 17})
    );

    // The second request carries the first call and its result; the third, both.
    let second = messages(&model, 1);
    assert_eq!(second[2]["role"], "assistant");
    assert_eq!(second[2]["tool_calls"][0]["id"], "call_calc");
    assert_eq!(
        second[2]["tool_calls"][0]["function"]["arguments"],
        r#"{"expression": "6 * 7"}"#
    );
    assert_eq!(
        second[3],
        json!({"role": "tool", "tool_call_id": "call_calc", "content": "42"})
    );
    let third = messages(&model, 2);
    assert_eq!(third.len(), 6);
    assert_eq!(third[5]["tool_call_id"], "call_time");
    assert!(third[5]["content"].as_str().unwrap().contains("unix_ms"));
    server.stop().await;
}

#[tokio::test]
async fn parallel_tool_calls_all_run_and_answer_in_order() {
    let model = ScriptedModel::start(vec![
        tool_calls(&[
            ("call_a", "calculator", r#"{"expression":"1+1"}"#),
            ("call_b", "calculator", r#"{"expression":"(2+3)*4"}"#),
            ("call_c", "clock", ""),
        ]),
        answer("2, 20 and the time."),
    ])
    .await;
    let server = server_for(&model).await;
    let mut ws = server.connect("ada").await;
    let (_, events) = ask(&mut ws, "c1", "three things", None).await;

    assert_eq!(last_data(&events)["result"], "2, 20 and the time.");
    let mut ids: Vec<&str> = of_type(&events, "tool_executing")
        .iter()
        .map(|e| e["data"]["call_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["call_a", "call_b", "call_c"]);
    let completed = of_type(&events, "tool_completed");
    assert!(
        completed.iter().all(|e| e["data"]["ok"] == true),
        "{completed:?}"
    );
    let second = messages(&model, 1);
    let results: Vec<(&str, &str)> = second[3..]
        .iter()
        .map(|m| {
            (
                m["tool_call_id"].as_str().unwrap(),
                m["content"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(&results[..2], [("call_a", "2"), ("call_b", "20")]);
    assert_eq!(results[2].0, "call_c");
    server.stop().await;
}

#[tokio::test]
async fn malformed_arguments_and_unknown_tools_fail_the_call_and_tell_the_model() {
    let model = ScriptedModel::start(vec![
        tool_calls(&[
            ("call_bad", "calculator", r#"{"expression": "1+"#),
            ("call_unknown", "weather", r#"{"city":"Paris"}"#),
        ]),
        answer("Sorry."),
    ])
    .await;
    let server = server_for(&model).await;
    let mut ws = server.connect("ada").await;
    let (_, events) = ask(&mut ws, "c1", "go", None).await;

    assert_eq!(
        events.last().unwrap()["type"],
        "agent_completed",
        "{events:#?}"
    );
    let completed = of_type(&events, "tool_completed");
    assert_eq!(completed.len(), 2);
    for c in &completed {
        assert_eq!(c["data"]["ok"], false);
    }
    let bad = completed
        .iter()
        .find(|c| c["data"]["call_id"] == "call_bad")
        .unwrap();
    assert!(
        bad["data"]["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{bad}"
    );
    let unknown = completed
        .iter()
        .find(|c| c["data"]["call_id"] == "call_unknown")
        .unwrap();
    assert!(
        unknown["data"]["error"]
            .as_str()
            .unwrap()
            .contains("unknown tool"),
        "{unknown}"
    );
    let executing = of_type(&events, "tool_executing");
    let raw = executing
        .iter()
        .find(|e| e["data"]["call_id"] == "call_bad")
        .unwrap();
    assert_eq!(raw["data"]["args"], r#"{"expression": "1+"#);

    let second = messages(&model, 1);
    assert_eq!(second[3]["tool_call_id"], "call_bad");
    assert!(
        second[3]["content"]
            .as_str()
            .unwrap()
            .starts_with("error: the arguments are not valid JSON")
    );
    assert_eq!(second[4]["tool_call_id"], "call_unknown");
    assert!(
        second[4]["content"]
            .as_str()
            .unwrap()
            .contains("unknown tool \"weather\"")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_and_then_succeeds() {
    let model = ScriptedModel::start(vec![Reply::Status(429, Some("0")), answer("Fine.")]).await;
    let server = server_for(&model).await;
    let mut ws = server.connect("ada").await;
    let (_, events) = ask(&mut ws, "c1", "hi", None).await;
    assert_eq!(last_data(&events)["result"], "Fine.", "{events:#?}");
    assert_eq!(model.requests().len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_500_that_persists_ends_with_llm_unavailable_after_the_configured_attempts() {
    let model = ScriptedModel::start(vec![Reply::Status(500, None); 4]).await;
    let config = config_with(&model, |a| a.retry_attempts = 3);
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut ws = server.connect("ada").await;
    let (_, events) = ask(&mut ws, "c1", "hi", None).await;
    let error = events.last().unwrap();
    assert_eq!(error["type"], "agent_error");
    assert_eq!(error["data"]["code"], "llm_unavailable");
    let message = error["data"]["message"].as_str().unwrap();
    assert!(
        message.contains("3 attempt") && message.contains("HTTP 500"),
        "{message}"
    );
    assert_eq!(model.requests().len(), 3);
    assert_eq!(model.remaining(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_401_ends_with_llm_auth_without_retrying() {
    let model = ScriptedModel::start(vec![Reply::Status(401, None), answer("never")]).await;
    let server = server_for(&model).await;
    let mut ws = server.connect("ada").await;
    let (_, events) = ask(&mut ws, "c1", "hi", None).await;
    assert_eq!(last_data(&events)["code"], "llm_auth");
    assert_eq!(model.requests().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_stream_cut_off_or_ending_without_finish_reason_is_llm_protocol() {
    let model = ScriptedModel::start(vec![
        Reply::Stream(
            answer_chunks("This answer is cut off in the mid", None),
            Ending::Cut,
        ),
        Reply::Stream(
            answer_chunks("This one just stops", None),
            Ending::Truncated,
        ),
    ])
    .await;
    let server = server_for(&model).await;
    let mut ws = server.connect("ada").await;

    let (_, cut) = ask(&mut ws, "c1", "hi", None).await;
    assert!(!of_type(&cut, "agent_message_delta").is_empty());
    let data = last_data(&cut);
    assert_eq!(data["code"], "llm_protocol", "{cut:#?}");
    assert!(
        data["message"].as_str().unwrap().contains("broke off"),
        "{data}"
    );

    let (_, truncated) = ask(&mut ws, "c2", "hi", None).await;
    let data = last_data(&truncated);
    assert_eq!(data["code"], "llm_protocol");
    assert!(
        data["message"]
            .as_str()
            .unwrap()
            .contains("without a finish_reason"),
        "{data}"
    );
    server.stop().await;
}

#[tokio::test]
async fn cancel_mid_stream_closes_the_model_connection_and_ends_cancelled() {
    let model = ScriptedModel::start(vec![Reply::Stream(
        answer_chunks("Thinking out loud", None),
        Ending::Hang,
    )])
    .await;
    let server = server_for(&model).await;
    let mut ws = server.connect("ada").await;
    ws.send_json(
        json!({"type": "user_message", "id": "c1", "agent": "assistant", "content": "talk"}),
    )
    .await;
    let mut run_id = Value::Null;
    loop {
        let frame = ws.next_json().await.expect("open");
        if frame["type"] == "ack" {
            run_id = frame["run_id"].clone();
        }
        if frame["type"] == "agent_message_delta" {
            break;
        }
    }
    ws.send_json(json!({"type": "cancel", "id": "x1", "run_id": run_id}))
        .await;
    let mut last = Value::Null;
    while last["type"] != "agent_error" && last["type"] != "agent_completed" {
        last = ws.next_json().await.expect("open");
    }
    assert_eq!(last["data"]["code"], "cancelled");
    assert!(
        model.disconnected(Duration::from_secs(5)).await,
        "the model server saw the connection close"
    );
    server.stop().await;
}

#[tokio::test]
async fn more_turns_than_max_steps_end_with_max_steps() {
    let model = ScriptedModel::start(vec![
        tool_calls(&[("call_1", "clock", "{}")]),
        tool_calls(&[("call_2", "clock", "{}")]),
        answer("too late"),
    ])
    .await;
    let config = config_with(&model, |a| a.max_steps = 2);
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut ws = server.connect("ada").await;
    let (_, events) = ask(&mut ws, "c1", "loop", None).await;
    assert_eq!(last_data(&events)["code"], "max_steps", "{events:#?}");
    assert_eq!(of_type(&events, "tool_completed").len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_thread_remembers_its_earlier_turns() {
    let model = ScriptedModel::start(vec![
        tool_calls(&[("call_1", "calculator", r#"{"expression":"2+2"}"#)]),
        answer("It is 4, Ada."),
        answer("You are Ada."),
    ])
    .await;
    let server = server_for(&model).await;
    let mut ws = server.connect("ada").await;
    let (ack, _) = ask(&mut ws, "c1", "I am Ada. What is 2+2?", None).await;
    let thread = ack["thread_id"].as_str().unwrap().to_owned();
    let (_, events) = ask(&mut ws, "c2", "Who am I?", Some(&thread)).await;
    assert_eq!(last_data(&events)["result"], "You are Ada.");

    let third = messages(&model, 2);
    let roles: Vec<&str> = third.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "assistant", "user"]
    );
    assert_eq!(third[1]["content"], "I am Ada. What is 2+2?");
    assert_eq!(
        third[3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "4"})
    );
    assert_eq!(third[4]["content"], "It is 4, Ada.");
    assert_eq!(third[5]["content"], "Who am I?");
    server.stop().await;
}

#[tokio::test]
async fn another_users_thread_id_starts_an_empty_thread() {
    let model =
        ScriptedModel::start(vec![answer("Noted, secret 7."), answer("I know nothing.")]).await;
    let server = server_for(&model).await;
    let mut ada = server.connect("ada").await;
    let (ack, _) = ask(&mut ada, "c1", "my secret is 7", None).await;
    let thread = ack["thread_id"].as_str().unwrap().to_owned();
    let mut eve = server.connect("eve").await;
    let (ack, _) = ask(&mut eve, "c1", "what is the secret?", Some(&thread)).await;
    assert_eq!(ack["thread_id"], thread.as_str());
    let sent = messages(&model, 1);
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(
        !serde_json::to_string(&sent)
            .unwrap()
            .contains("secret is 7")
    );
    server.stop().await;
}

#[tokio::test]
async fn agents_are_listed_and_the_model_endpoint_is_a_non_critical_health_check() {
    let model = ScriptedModel::start(vec![]).await;
    let server = server_for(&model).await;
    let listing: Value = reqwest::get(server.http_url("/v1/agents?user=ada"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listing["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["assistant", "demo", "echo"]);
    assert_eq!(listing["default"], "demo");
    assert_eq!(listing["agents"][0]["description"], "A scripted model");
    let unauthenticated = reqwest::get(server.http_url("/v1/agents")).await.unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let health: Value = reqwest::get(server.http_url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let check = health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "model:assistant")
        .unwrap_or_else(|| panic!("no model check in {health}"));
    assert_eq!(check["critical"], false);
    assert_eq!(check["ok"], true, "{check}");

    let ready = server.state.ready().clone();
    let lines = ready.check_model_endpoints().await.unwrap();
    assert!(lines[0].contains("agent assistant"), "{lines:?}");
    server.stop().await;
}

#[tokio::test]
async fn an_unreachable_model_is_named_by_check_and_degrades_health() {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = agentwire_test::test_config();
    let mut agent = OpenAiAgentConfig::new(format!("http://127.0.0.1:{port}/v1"), "m");
    agent.retry_attempts = 1;
    config
        .agents
        .defined
        .insert("offline".into(), AgentDefinition::Openai(agent));
    let server = TestServer::start_with(config, Vec::new()).await;
    let e = server
        .state
        .ready()
        .check_model_endpoints()
        .await
        .unwrap_err();
    assert_eq!(e.component, "agents.offline");
    assert!(e.cause.contains("/v1/models"), "{e}");
    let health: Value = reqwest::get(server.http_url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    server.stop().await;
}

#[tokio::test]
async fn startup_refuses_an_agent_with_an_unknown_tool() {
    let model = ScriptedModel::start(vec![]).await;
    let config = config_with(&model, |a| a.tools.push("weather".into()));
    let e = agentwire_server::start(config, Vec::new())
        .await
        .unwrap_err();
    assert_eq!(e.phase, agentwire_startup::Phase::Agents);
    assert_eq!(e.component, "agents.assistant");
    assert!(e.cause.contains("weather"), "{e}");
}

#[tokio::test]
async fn the_key_is_sent_as_a_bearer_token_and_shown_nowhere() {
    // Tests cannot set env variables (`set_var` is unsafe, and unsafe code is forbidden), so the
    // key is the value of one every process has.
    let key = std::env::var("PATH").expect("PATH is set");
    let model = ScriptedModel::start(vec![Reply::Status(401, None)]).await;
    let config = config_with(&model, |a| a.api_key_env = Some("PATH".into()));
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut ws = server.connect("ada").await;
    let (_, events) = ask(&mut ws, "c1", "hi", None).await;
    assert_eq!(last_data(&events)["code"], "llm_auth");
    let sent = model.headers(0);
    assert_eq!(sent["authorization"], format!("Bearer {key}").as_str());

    let health = reqwest::get(server.http_url("/health"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let listing = reqwest::get(server.http_url("/v1/agents?user=ada"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let debug = format!(
        "{:?} {:?}",
        server.state.ready(),
        server.state.ready().llm_agents()
    );
    for (what, text) in [
        ("the run's events", serde_json::to_string(&events).unwrap()),
        ("/health", health),
        ("/v1/agents", listing),
        ("Debug", debug),
    ] {
        assert!(!text.contains(&key), "{what} shows the key");
    }
    server.stop().await;
}

/// A tool that records how many of its calls run at once.
struct Gauge {
    in_flight: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

#[agentwire_agent_registry::async_trait]
impl agentwire_agent_registry::Tool for Gauge {
    fn name(&self) -> &str {
        "gauge"
    }

    async fn call(&self, _args: Value) -> Result<Value, String> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(json!(now))
    }
}

#[tokio::test]
async fn parallel_tool_calls_run_concurrently_up_to_parallel_tools() {
    let calls: Vec<(String, &str, &str)> = (0..5)
        .map(|i| (format!("call_{i}"), "gauge", "{}"))
        .collect();
    let calls: Vec<(&str, &str, &str)> =
        calls.iter().map(|(a, b, c)| (a.as_str(), *b, *c)).collect();
    let model = ScriptedModel::start(vec![tool_calls(&calls), answer("done")]).await;
    let most = Arc::new(AtomicUsize::new(0));
    let mut registry = InMemoryAgentRegistry::with_builtins(DemoSettings::instant());
    registry.register_tool(Gauge {
        in_flight: Arc::new(AtomicUsize::new(0)),
        most: most.clone(),
    });
    let config = config_with(&model, |a| {
        a.tools = vec!["gauge".into()];
        a.parallel_tools = 2;
    });
    let ready = agentwire_server::start_with_registry(config, registry, Vec::new())
        .await
        .unwrap();
    let server = TestServer::serve(agentwire_server::AppState::new(ready)).await;
    let mut ws = server.connect("ada").await;
    let (_, events) = ask(&mut ws, "c1", "measure", None).await;
    assert_eq!(last_data(&events)["result"], "done", "{events:#?}");
    assert_eq!(of_type(&events, "tool_completed").len(), 5);
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "at most parallel_tools calls at once, and that many"
    );
    let second = messages(&model, 1);
    let ids: Vec<&str> = second[3..]
        .iter()
        .map(|m| m["tool_call_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["call_0", "call_1", "call_2", "call_3", "call_4"]);
    server.stop().await;
}

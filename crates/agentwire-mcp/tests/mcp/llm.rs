//! The LLM agent driving MCP tools: a real agentwire server whose `assistant` talks to the
//! scripted OpenAI-compatible server of tests/llm and calls the tools of the rmcp probe.

use std::time::Duration;

use agentwire_agent_registry::{DemoSettings, InMemoryAgentRegistry};
use agentwire_llm::OpenAiAgentConfig;
use agentwire_mcp::McpServerConfig;
use agentwire_server::AppState;
use agentwire_startup::{AgentDefinition, AgentwireConfig, Phase, StartupError};
use agentwire_test::{TestServer, WsClient, test_config};
use serde_json::{Value, json};

use crate::scripted::{ScriptedModel, answer, tool_calls};
use crate::support::start_probe;

/// A config with MCP server `probe` at `probe_url` and an `assistant` on `model` offered `tools`.
fn config(probe_url: &str, model: &ScriptedModel, tools: &[&str]) -> AgentwireConfig {
    let mut config = test_config();
    config
        .mcp
        .insert("probe".into(), McpServerConfig::http(probe_url));
    let mut agent = OpenAiAgentConfig::new(&model.base_url, "scripted");
    agent.tools = tools.iter().map(|t| (*t).to_owned()).collect();
    agent.request_timeout = Duration::from_secs(10);
    config
        .agents
        .defined
        .insert("assistant".into(), AgentDefinition::Openai(agent));
    config
}

async fn start(config: AgentwireConfig) -> Result<AppState, StartupError> {
    let registry = InMemoryAgentRegistry::with_builtins(DemoSettings::instant());
    let ready = agentwire_server::start_with_registry(config, registry, Vec::new()).await?;
    Ok(AppState::new(ready))
}

async fn ask(ws: &mut WsClient, id: &str, content: &str) -> Vec<Value> {
    ws.send_json(
        json!({"type": "user_message", "id": id, "agent": "assistant", "content": content}),
    )
    .await;
    ws.until_run_ends(id).await.1
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// The function names a request offered.
fn offered(request: &Value) -> Vec<&str> {
    request["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| t["function"]["name"].as_str().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// `grow` made the server list a new tool (list_changed): the registry lists it with the
/// others, `add` with the schema the model was offered (`add_schema`).
async fn wait_for_the_added_tool(state: &AppState, add_schema: &Value) {
    let registry = state.ready().executor().registry().clone();
    let listed = || {
        registry
            .tools()
            .into_iter()
            .any(|t| t.name == "mcp:probe/added")
    };
    for _ in 0..200 {
        if listed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(listed(), "the refreshed tool list reaches the registry");
    let add_info = registry
        .tools()
        .into_iter()
        .find(|t| t.name == "mcp:probe/add")
        .expect("MCP tools are listed");
    assert_eq!(&add_info.parameters, add_schema);
}

/// The result went back to the model under the model's call id and function name.
fn check_results_went_back(requests: &[Value]) {
    let messages = requests[1]["messages"].as_array().unwrap();
    let call = &messages[messages.len() - 2];
    assert_eq!(call["tool_calls"][0]["id"], "call_add");
    assert_eq!(call["tool_calls"][0]["function"]["name"], "mcp__probe__add");
    let result = messages.last().unwrap();
    assert_eq!(result["role"], "tool");
    assert_eq!(result["tool_call_id"], "call_add");
    let content: Value = serde_json::from_str(result["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["structured"]["sum"], 42.0);
    assert_eq!(
        requests[2]["messages"].as_array().unwrap().last().unwrap()["tool_call_id"],
        "call_grow"
    );
}

pub(crate) async fn the_model_calls_mcp_tools_under_mapped_names_and_the_user_sees_their_names() {
    let probe = start_probe().await;
    let model = ScriptedModel::start(vec![
        tool_calls(&[("call_add", "mcp__probe__add", r#"{"a": 20, "b": 22}"#)]),
        tool_calls(&[("call_grow", "mcp__probe__grow", "")]),
        answer("20 + 22 is 42."),
        answer("Now there is one more tool."),
    ])
    .await;
    let tools = ["calculator", "mcp:probe/*", "mcp:probe/add"];
    let state = start(config(&probe.url, &model, &tools))
        .await
        .unwrap_or_else(|e| panic!("startup failed: {e}"));
    let server = TestServer::serve(state.clone()).await;
    let mut ws = server.connect("ada").await;
    let events = ask(&mut ws, "c1", "what is 20 + 22?").await;

    // The user sees agentwire's names; the call ids are the model's.
    let executing = of_type(&events, "tool_executing");
    let completed = of_type(&events, "tool_completed");
    assert_eq!(executing.len(), 2, "{events:#?}");
    assert_eq!(
        executing[0]["data"],
        json!({"call_id": "call_add", "tool": "mcp:probe/add", "args": {"a": 20, "b": 22}})
    );
    assert_eq!(completed[0]["data"]["call_id"], "call_add");
    assert_eq!(completed[0]["data"]["tool"], "mcp:probe/add");
    assert_eq!(completed[0]["data"]["ok"], true, "{events:#?}");
    assert_eq!(
        completed[0]["data"]["result"]["structured"],
        json!({"sum": 42.0})
    );
    assert_eq!(executing[1]["data"]["tool"], "mcp:probe/grow");
    assert_eq!(completed[1]["data"]["result"]["text"], "grown");
    assert_eq!(events.last().unwrap()["type"], "agent_completed");

    // The model was offered each tool once, MCP tools under mapped names with their schema.
    let requests = model.requests();
    assert_eq!(
        offered(&requests[0]),
        [
            "calculator",
            "mcp__probe__add",
            "mcp__probe__fail",
            "mcp__probe__grow",
            "mcp__probe__slow"
        ]
    );
    let add = &requests[0]["tools"][1];
    assert_eq!(add["type"], "function");
    assert_eq!(add["function"]["description"], "Adds two numbers");
    assert_eq!(
        add["function"]["parameters"],
        json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]})
    );

    check_results_went_back(&requests);
    wait_for_the_added_tool(&state, &add["function"]["parameters"]).await;
    let events = ask(&mut ws, "c2", "anything new?").await;
    assert_eq!(events.last().unwrap()["type"], "agent_completed");
    assert!(
        offered(&model.requests()[3]).contains(&"mcp__probe__added"),
        "{:?}",
        offered(&model.requests()[3])
    );
    assert_eq!(model.remaining(), 0);
    server.stop().await;
}

pub(crate) async fn an_agent_naming_an_unknown_mcp_server_or_tool_stops_startup() {
    let probe = start_probe().await;
    let model = ScriptedModel::start(Vec::new()).await;
    for (selector, cause) in [
        ("mcp:nope/*", "no MCP server \"nope\" is connected"),
        (
            "mcp:probe/missing",
            "MCP server \"probe\" has no tool \"missing\"",
        ),
        ("mcp:probe", "an MCP tool is written mcp:<server>/<tool>"),
    ] {
        let error = start(config(&probe.url, &model, &["calculator", selector]))
            .await
            .expect_err("an unknown MCP tool stops startup");
        assert_eq!(error.phase, Phase::Agents);
        assert_eq!(error.component, "agents.assistant");
        let line = error.to_string();
        assert!(line.contains(cause), "{line}");
        assert!(line.contains("hint: use mcp:<server>/*"), "{line}");
    }
}

pub(crate) async fn progress_of_an_mcp_call_the_model_made_reaches_the_user_as_thinking_lines() {
    let command = crate::support::everything_command();
    let model = ScriptedModel::start(vec![
        tool_calls(&[(
            "call_long",
            "mcp__everything__trigger-long-running-operation",
            r#"{"duration": 0.6, "steps": 3}"#,
        )]),
        answer("Done."),
    ])
    .await;
    let mut config = test_config();
    config.mcp.insert(
        "everything".into(),
        McpServerConfig::stdio(command).with_timeout(Duration::from_secs(20)),
    );
    let mut agent = OpenAiAgentConfig::new(&model.base_url, "scripted");
    agent.tools = vec!["mcp:everything/trigger-long-running-operation".into()];
    config
        .agents
        .defined
        .insert("assistant".into(), AgentDefinition::Openai(agent));
    let server = TestServer::serve(start(config).await.expect("startup")).await;
    let mut ws = server.connect("ada").await;
    let events = ask(&mut ws, "c1", "run the long operation").await;

    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let executing = kinds.iter().position(|k| *k == "tool_executing").unwrap();
    let completed = kinds.iter().position(|k| *k == "tool_completed").unwrap();
    assert_eq!(
        events[executing]["data"]["tool"],
        "mcp:everything/trigger-long-running-operation"
    );
    // rmcp may deliver the last report after the result, so 2 or 3 lines.
    let thoughts = &events[executing + 1..completed];
    assert!((2..=3).contains(&thoughts.len()), "{kinds:?}");
    assert_eq!(
        thoughts[0]["data"]["thought"],
        "mcp:everything/trigger-long-running-operation (call_long): 1/3"
    );
    assert_eq!(events[completed]["data"]["ok"], true);
    let back = model.requests()[1]["messages"].as_array().unwrap().clone();
    let result = back.last().unwrap();
    assert_eq!(result["tool_call_id"], "call_long");
    assert!(
        result["content"]
            .as_str()
            .unwrap()
            .contains("Long running operation completed"),
        "{result}"
    );
    server.stop().await;
}

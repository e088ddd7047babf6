//! The agent list, health checks, startup validation and the API key.

use super::*;

pub(crate) async fn agents_are_listed_and_the_model_endpoint_is_a_non_critical_health_check() {
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

pub(crate) async fn an_unreachable_model_is_named_by_check_and_degrades_health() {
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

pub(crate) async fn startup_refuses_an_agent_with_an_unknown_tool() {
    let model = ScriptedModel::start(vec![]).await;
    let config = config_with(&model, |a| a.tools.push("weather".into()));
    let e = agentwire_server::start(config, Vec::new())
        .await
        .unwrap_err();
    assert_eq!(e.phase, agentwire_startup::Phase::Agents);
    assert_eq!(e.component, "agents.assistant");
    assert!(e.cause.contains("weather"), "{e}");
}

pub(crate) async fn the_key_is_sent_as_a_bearer_token_and_shown_nowhere() {
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

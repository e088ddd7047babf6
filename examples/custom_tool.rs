//! Run with: cargo run --example custom_tool
//!
//! A `Tool` that calls an HTTP service. The example starts the service itself — a tiny axum app
//! on 127.0.0.1 that knows the weather of a few cities and answers HTTP 500 for others — and a
//! `weather` agent that calls the tool.
//!
//! What it shows:
//! - a tool is `name` + `async fn call(args) -> Result<Value, String>`; the executor emits
//!   `tool_executing` before and `tool_completed` after, with the duration;
//! - a failure (an HTTP error, a timeout, bad arguments) is an `Err(message)`, never a panic: it
//!   surfaces to the user as `tool_completed {ok:false, error}`, and the agent decides what to do
//!   next (here: it apologises and completes the run).
//!
//! Try it: `agentwire chat --user ada --agent weather`, then type `Paris` (or `Atlantis`).
//!
//! With `AGENTWIRE_EXAMPLE_SMOKE=1` it serves on port 0, asks for Paris (ok) and Atlantis
//! (HTTP 500 → `ok:false`) over a real WebSocket, prints `smoke ok: custom_tool` and exits.

use std::time::Duration;

use agentwire_agent_registry::{
    Agent, AgentError, DemoSettings, InMemoryAgentRegistry, RunContext, Tool, async_trait,
};
use agentwire_server::{AppState, serve, shutdown_signal, start_with_registry};
use agentwire_startup::AgentwireConfig;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

/// The `weather` tool: `GET {base}/weather/{city}` on an HTTP service.
struct WeatherTool {
    client: reqwest::Client,
    base: String,
}

#[async_trait]
impl Tool for WeatherTool {
    fn name(&self) -> &str {
        "weather"
    }

    fn description(&self) -> &str {
        "Current weather of a city, from the weather service."
    }

    async fn call(&self, args: Value) -> Result<Value, String> {
        let city = args["city"].as_str().ok_or("`city` must be a string")?;
        let response = self
            .client
            .get(format!("{}/weather/{city}", self.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("weather service unreachable: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(format!("weather service answered {status}: {body}"));
        }
        response
            .json::<Value>()
            .await
            .map_err(|e| format!("weather service sent bad JSON: {e}"))
    }
}

/// The `weather` agent: looks the city up and reports.
struct WeatherAgent;

#[async_trait]
impl Agent for WeatherAgent {
    fn name(&self) -> &str {
        "weather"
    }

    fn description(&self) -> &str {
        "Tells you the weather of the city you name."
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError> {
        let city = ctx.input().trim();
        ctx.think(format!("Asking the weather service about {city}"), Some(1))
            .await?;
        let answer = match ctx.call_tool("weather", json!({ "city": city })).await {
            Ok(w) => format!(
                "{city}: {}, {}°C",
                w["sky"].as_str().unwrap_or("?"),
                w["celsius"]
            ),
            // The failed call already reached the user as tool_completed {ok:false, error}.
            Err(AgentError::Tool { message, .. }) => {
                format!("Sorry, I could not get the weather for {city}: {message}")
            }
            Err(other) => return Err(other),
        };
        ctx.say("m_1", answer.clone()).await?;
        Ok(json!({ "answer": answer }))
    }
}

/// The HTTP service the tool calls, on an ephemeral loopback port. Returns its base URL.
async fn start_weather_service() -> std::io::Result<String> {
    async fn weather(Path(city): Path<String>) -> Result<axum::Json<Value>, (StatusCode, String)> {
        match city.to_lowercase().as_str() {
            "paris" => Ok(axum::Json(json!({ "sky": "cloudy", "celsius": 14 }))),
            "lisbon" => Ok(axum::Json(json!({ "sky": "sunny", "celsius": 22 }))),
            _ => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("no station in {city}"),
            )),
        }
    }
    let app = axum::Router::new().route("/weather/{city}", get(weather));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let smoke = std::env::var_os("AGENTWIRE_EXAMPLE_SMOKE").is_some();
    let base = start_weather_service().await?;

    // The built-ins (the critical-path check needs `echo`) plus the weather agent and tool.
    let mut registry = InMemoryAgentRegistry::with_builtins(DemoSettings::default());
    registry.register_tool(WeatherTool {
        client: reqwest::Client::new(),
        base,
    });
    registry.register_agent(WeatherAgent);
    let ready = start_with_registry(AgentwireConfig::default(), registry, Vec::new()).await?;
    let state = AppState::new(ready);

    if !smoke {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
        println!(
            "ask the `weather` agent at ws://127.0.0.1:8080/ws?user=ada (try Paris, then Atlantis)"
        );
        serve(listener, state, shutdown_signal()).await?;
        return Ok(());
    }

    let server = agentwire_test::TestServer::serve(state).await;
    let mut ada = server.connect("ada").await;

    let (_, events) = ada.run("c1", "weather", "Paris").await;
    let done = events
        .iter()
        .find(|e| e["type"] == "tool_completed")
        .expect("tool_completed");
    assert_eq!(done["data"]["ok"], true, "{done}");
    assert_eq!(done["data"]["result"]["celsius"], 14);

    let (_, events) = ada.run("c2", "weather", "Atlantis").await;
    let done = events
        .iter()
        .find(|e| e["type"] == "tool_completed")
        .expect("tool_completed");
    assert_eq!(done["data"]["ok"], false, "{done}");
    let error = done["data"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("500") && error.contains("no station in Atlantis"),
        "{error}"
    );
    assert_eq!(events.last().unwrap()["type"], "agent_completed");

    ada.close().await;
    server.stop().await;
    println!("smoke ok: custom_tool");
    Ok(())
}

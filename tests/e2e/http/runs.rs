//! `/v1/runs`, cancel, `/v1/events`, error bodies and JWT auth on the HTTP API.

use std::time::Duration;

use agentwire_startup::{AgentwireConfig, AuthMode};
use agentwire_test::TestServer;
use reqwest::StatusCode;
use serde_json::json;

use super::{assert_error, client, json_of, run_events};

#[tokio::test]
async fn runs_start_and_their_events_page_through_v1_events() {
    let server = TestServer::start().await;
    let http = client();
    let r = http
        .post(server.http_url("/v1/runs?user=hana"))
        .json(&json!({"agent": "echo", "content": "hello"}))
        .send()
        .await
        .unwrap();
    let (status, started) = json_of(r).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    assert!(started["thread_id"].as_str().unwrap().starts_with("t_"));

    let events = run_events(&server, "hana", &run_id).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_completed"
        ]
    );
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[0]["thread_id"], started["thread_id"]);

    // `after` pages: only what follows, with the head and the next offset.
    let url = server.http_url("/v1/events?user=hana&after=3");
    let (_, page) = json_of(http.get(url).send().await.unwrap()).await;
    assert_eq!(page["head"], 5);
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["events"][0]["seq"], 4);
    assert_eq!(page["next_after"], 5);
    assert!(page["gap"].is_null());
    // Another user's history is not hana's.
    let (_, other) = json_of(
        http.get(server.http_url("/v1/events?user=ivan"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(other["events"], json!([]));
    // Events come back exactly as they went over the WebSocket: the wire envelope, `type` first.
    let raw = http
        .get(server.http_url("/v1/events?user=hana&after=0&limit=1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.contains(r#""events":[{"type":"agent_started","seq":1,"run_id":"#),
        "{raw}"
    );

    // Unknown or malformed run ids are 404 run_not_found.
    let cancel = |user: &str, id: &str| {
        http.post(server.http_url(&format!("/v1/runs/{id}/cancel?user={user}")))
            .send()
    };
    let unknown = json_of(cancel("hana", "r_nope").await.unwrap()).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "run_not_found");
    let invalid = json_of(cancel("hana", "bad%20id").await.unwrap()).await;
    assert_error(&invalid, StatusCode::NOT_FOUND, "run_not_found");
    server.stop().await;
}

#[tokio::test]
async fn only_the_owner_can_cancel_a_run_and_it_ends_with_cancelled() {
    let mut config = agentwire_test::test_config();
    config.agents.demo = agentwire_agent_registry::DemoSettings::default();
    let server = TestServer::start_with(config, Vec::new()).await;
    let http = client();
    let (_, started) = json_of(
        http.post(server.http_url("/v1/runs?user=jo"))
            .json(&json!({"agent": "demo", "content": "slowly"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let run_id = started["run_id"].as_str().unwrap();
    let theirs = http
        .post(server.http_url(&format!("/v1/runs/{run_id}/cancel?user=ivan")))
        .send()
        .await
        .unwrap();
    assert_error(
        &json_of(theirs).await,
        StatusCode::NOT_FOUND,
        "run_not_found",
    );
    let r = http
        .post(server.http_url(&format!("/v1/runs/{run_id}/cancel?user=jo")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let events = run_events(&server, "jo", run_id).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "agent_error");
    assert_eq!(last["data"]["code"], "cancelled");
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_json_error_bodies() {
    let mut config = agentwire_test::test_config();
    config.limits.max_body_bytes = 1024;
    let server = TestServer::start_with(config, Vec::new()).await;
    let http = client();
    let runs = server.http_url("/v1/runs?user=kim");

    let big = "x".repeat(4096);
    let cases: [(&str, reqwest::RequestBuilder, StatusCode, &str); 4] = [
        (
            "malformed JSON",
            http.post(&runs)
                .header("content-type", "application/json")
                .body("{not json"),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "missing field",
            http.post(&runs).json(&json!({"agent": "echo"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "body over the limit",
            http.post(&runs)
                .json(&json!({"agent": "echo", "content": big})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "unknown agent",
            http.post(&runs)
                .json(&json!({"agent": "nobody", "content": "hi"})),
            StatusCode::NOT_FOUND,
            "unknown_agent",
        ),
    ];
    for (label, request, status, code) in cases {
        let got = json_of(request.send().await.unwrap()).await;
        assert_eq!(got.0, status, "{label}");
        assert_error(&got, status, code);
    }

    let anonymous = http
        .post(server.http_url("/v1/runs"))
        .json(&json!({"agent": "echo", "content": "hi"}))
        .send()
        .await
        .unwrap();
    assert_error(
        &json_of(anonymous).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    for path in ["/v1/events", "/v1/stream"] {
        let r = http.get(server.http_url(path)).send().await.unwrap();
        assert_error(&json_of(r).await, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let r = http
        .post(server.http_url("/agui/demo"))
        .json(&json!({"threadId": "t", "runId": "r", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_error(&json_of(r).await, StatusCode::UNAUTHORIZED, "unauthorized");
    server.stop().await;
}

#[tokio::test]
async fn jwt_auth_applies_to_the_http_api() {
    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";
    let mut config = agentwire_test::test_config();
    config.auth.mode = AuthMode::Jwt;
    config.auth.jwt_secret = Some(SECRET.into());
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut minting = AgentwireConfig::default();
    minting.auth.jwt_secret = Some(SECRET.into());
    let token = agentwire_server::Authenticator::from_config(&minting)
        .mint("lee", Duration::from_secs(60))
        .unwrap();
    let http = client();
    // Dev auth is off: ?user= alone is refused.
    let r = http
        .get(server.http_url("/v1/events?user=lee"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .post(server.http_url("/v1/runs"))
        .bearer_auth(&token)
        .json(&json!({"agent": "echo", "content": "jwt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = http
        .get(server.http_url(&format!("/v1/events?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.stop().await;
}

/// Like `user_message` on `/ws`, a run started without `agent` goes to `demo`.
#[tokio::test]
async fn a_run_without_an_agent_goes_to_demo_as_on_the_websocket() {
    let server = TestServer::start().await;
    let r = client()
        .post(server.http_url("/v1/runs?user=noor"))
        .json(&json!({"content": "what is 6*7?"}))
        .send()
        .await
        .unwrap();
    let (status, started) = json_of(r).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let events = run_events(&server, "noor", started["run_id"].as_str().unwrap()).await;
    assert_eq!(events[0]["agent"], "demo");
    assert_eq!(events.last().unwrap()["type"], "agent_completed");
    server.stop().await;
}

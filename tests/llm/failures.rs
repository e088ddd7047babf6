//! Failures of the model server: retries, auth, broken streams, cancel.

use super::*;

pub(crate) async fn a_429_is_retried_after_retry_after_and_then_succeeds() {
    let model = ScriptedModel::start(vec![Reply::Status(429, Some("0")), answer("Fine.")]).await;
    let server = server_for(&model).await;
    let mut ws = server.connect("ada").await;
    let (_, events) = ask(&mut ws, "c1", "hi", None).await;
    assert_eq!(last_data(&events)["result"], "Fine.", "{events:#?}");
    assert_eq!(model.requests().len(), 2);
    server.stop().await;
}

pub(crate) async fn a_500_that_persists_ends_with_llm_unavailable_after_the_configured_attempts() {
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

pub(crate) async fn a_401_ends_with_llm_auth_without_retrying() {
    let model = ScriptedModel::start(vec![Reply::Status(401, None), answer("never")]).await;
    let server = server_for(&model).await;
    let mut ws = server.connect("ada").await;
    let (_, events) = ask(&mut ws, "c1", "hi", None).await;
    assert_eq!(last_data(&events)["code"], "llm_auth");
    assert_eq!(model.requests().len(), 1);
    server.stop().await;
}

pub(crate) async fn a_stream_cut_off_or_ending_without_finish_reason_is_llm_protocol() {
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

pub(crate) async fn cancel_mid_stream_closes_the_model_connection_and_ends_cancelled() {
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

pub(crate) async fn a_stream_that_goes_quiet_ends_with_llm_timeout() {
    // Only keep-alive comments after the first chunks: no data for longer than request_timeout.
    let model = ScriptedModel::start(vec![Reply::Stream(
        answer_chunks("Then silence", None),
        Ending::Hang,
    )])
    .await;
    let config = config_with(&model, |a| a.request_timeout = Duration::from_millis(300));
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut ws = server.connect("ada").await;
    let (_, events) = ask(&mut ws, "c1", "hi", None).await;
    let data = last_data(&events);
    assert_eq!(data["code"], "llm_timeout", "{events:#?}");
    assert!(
        data["message"].as_str().unwrap().contains("no data for"),
        "{data}"
    );
    assert!(
        model.disconnected(Duration::from_secs(5)).await,
        "the request was dropped"
    );
    server.stop().await;
}

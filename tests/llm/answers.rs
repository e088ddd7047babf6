//! A plain streamed answer and what the model is sent.

use super::*;

pub(crate) async fn a_plain_answer_streams_as_deltas_that_concatenate_to_the_text() {
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

//! Thread memory on one node, and isolation between users.

use super::*;

pub(crate) async fn a_thread_remembers_its_earlier_turns() {
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

pub(crate) async fn another_users_thread_id_starts_an_empty_thread() {
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

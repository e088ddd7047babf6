//! Thread memory across two nodes sharing Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`).
//! Without Redis the test prints a SKIP line, unless `AGENTWIRE_REQUIRE_REDIS=1` (CI).

use agentwire_test::TestServer;
use serde_json::json;

use crate::scripted::{ScriptedModel, answer};
use crate::{ask, config_with, last_data, messages};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn redis_or_skip(test: &str) -> bool {
    let hostport = redis_url()
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("")
        .to_owned();
    if std::net::TcpStream::connect(&hostport).is_ok() {
        return true;
    }
    assert!(
        std::env::var("AGENTWIRE_REQUIRE_REDIS").as_deref() != Ok("1"),
        "{test}: Redis at {} does not answer and AGENTWIRE_REQUIRE_REDIS=1",
        redis_url()
    );
    println!("SKIP: {test}: no Redis at {}", redis_url());
    false
}

#[tokio::test]
async fn a_thread_continued_on_another_node_remembers() {
    if !redis_or_skip("a_thread_continued_on_another_node_remembers") {
        return;
    }
    let model = ScriptedModel::start(vec![
        answer("Hi Grace."),
        answer("You are Grace."),
        answer("Nothing I know of."),
    ])
    .await;
    let mut config = config_with(&model, |_| {});
    config.broker = redis_url();
    let node_a = TestServer::start_with(config.clone(), Vec::new()).await;
    let node_b = TestServer::start_with(config, Vec::new()).await;
    // A user of this test only: Redis is shared with other tests and runs.
    let user = format!("grace-{}", std::process::id());

    let mut on_a = node_a.connect(&user).await;
    let (ack, _) = ask(&mut on_a, "c1", "I am Grace.", None).await;
    let thread = ack["thread_id"].as_str().unwrap().to_owned();
    on_a.close().await;

    let mut on_b = node_b.connect(&user).await;
    let (_, events) = ask(&mut on_b, "c2", "Who am I?", Some(&thread)).await;
    assert_eq!(
        last_data(&events)["result"],
        "You are Grace.",
        "{events:#?}"
    );
    let sent = messages(&model, 1);
    assert_eq!(
        sent[1..],
        [
            json!({"role": "user", "content": "I am Grace."}),
            json!({"role": "assistant", "content": "Hi Grace."}),
            json!({"role": "user", "content": "Who am I?"}),
        ]
    );

    // Another user naming the same thread on node B starts empty.
    let mut other = node_b
        .connect(&format!("mallory-{}", std::process::id()))
        .await;
    let (_, events) = ask(&mut other, "c3", "What did Grace say?", Some(&thread)).await;
    assert_eq!(last_data(&events)["result"], "Nothing I know of.");
    assert_eq!(
        messages(&model, 2).len(),
        2,
        "system prompt and the question only"
    );
    other.close().await;
    on_b.close().await;
    node_a.stop().await;
    node_b.stop().await;
}

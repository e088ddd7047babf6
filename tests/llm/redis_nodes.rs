//! Thread memory across two nodes sharing Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`;
//! when it does not answer, a private `redis-server`). Without either the test is reported as
//! ignored with the reason, unless `AGENTWIRE_REQUIRE_REDIS=1` (CI) makes it fail (`main.rs`).

use agentwire_test::TestServer;
use serde_json::json;

use crate::harness::shared_redis_url as redis_url;
use crate::scripted::{ScriptedModel, answer};
use crate::{ask, config_with, last_data, messages};

pub(crate) async fn a_thread_continued_on_another_node_remembers() {
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

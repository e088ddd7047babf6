//! Tool calls: sequential turns, parallel calls and their limit, bad calls, max_steps.

use super::*;

pub(crate) async fn two_sequential_tool_turns_send_each_result_back_under_its_call_id() {
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

pub(crate) async fn parallel_tool_calls_all_run_and_answer_in_order() {
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

pub(crate) async fn malformed_arguments_and_unknown_tools_fail_the_call_and_tell_the_model() {
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

pub(crate) async fn more_turns_than_max_steps_end_with_max_steps() {
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

pub(crate) async fn parallel_tool_calls_run_concurrently_up_to_parallel_tools() {
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

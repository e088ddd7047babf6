//! The executor against the real bridge: run framing, automatic tool events, cancel, timeout.

use std::sync::Arc;
use std::time::Duration;

use agentwire_agent_registry::{
    Agent, AgentError, DemoSettings, InMemoryAgentRegistry, RunContext, RunExecutor, Tool,
    ToolCall, async_trait,
};
use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig, ConnectionQueue};
use agentwire_bridge_factory::{BridgeFactory, RunLimits};
use agentwire_core::{Configurable, StreamEvent, UserContext, UserId};
use serde_json::{Value, json};

struct Failing;
#[async_trait]
impl Tool for Failing {
    fn name(&self) -> &str {
        "failing"
    }
    async fn call(&self, _: Value) -> Result<Value, String> {
        Err("the service said no".into())
    }
}

struct Slow;
#[async_trait]
impl Tool for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    async fn call(&self, _: Value) -> Result<Value, String> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(json!(null))
    }
}

/// Reports progress through its call before it answers.
struct Progressing;
#[async_trait]
impl Tool for Progressing {
    fn name(&self) -> &str {
        "progressing"
    }
    async fn call(&self, _: Value) -> Result<Value, String> {
        Ok(json!("done"))
    }
    async fn call_in_run(&self, args: Value, call: &ToolCall<'_>) -> Result<Value, String> {
        assert!(!call.cancellation().is_cancelled());
        let line = format!("{} ({}): half way", call.tool(), call.call_id());
        call.progress(line).await.map_err(|e| e.to_string())?;
        self.call(args).await
    }
}

/// Calls the tool named by its input.
struct Caller;
#[async_trait]
impl Agent for Caller {
    fn name(&self) -> &str {
        "caller"
    }
    async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError> {
        ctx.call_tool(ctx.input(), json!({})).await
    }
}

/// Panics in its first step (`now`) or after its first wait.
struct Panicking;
#[async_trait]
impl Agent for Panicking {
    fn name(&self) -> &str {
        "panicking"
    }
    async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError> {
        if ctx.input() != "now" {
            tokio::task::yield_now().await;
        }
        panic!("the agent's bug");
    }
}

/// Streams its input's number of deltas without waiting for anything else.
struct Chatty;
#[async_trait]
impl Agent for Chatty {
    fn name(&self) -> &str {
        "chatty"
    }
    async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError> {
        let n: u64 = ctx.input().parse().unwrap_or(0);
        for _ in 0..n {
            ctx.say("m", "x").await?;
        }
        Ok(json!(n))
    }
}

fn setup(timeout: Duration) -> (AgentWebSocketBridge, RunExecutor) {
    let bridge = AgentWebSocketBridge::builder()
        .configure(BridgeConfig::default())
        .unwrap();
    let mut registry = InMemoryAgentRegistry::with_builtins(DemoSettings::instant());
    registry
        .register_agent(Caller)
        .register_agent(Panicking)
        .register_agent(Chatty)
        .register_tool(Failing)
        .register_tool(Progressing)
        .register_tool(Slow);
    let factory = BridgeFactory::new(Arc::new(bridge.clone()), RunLimits::default());
    (bridge, RunExecutor::new(registry, factory, timeout))
}

/// Runs `agent` for a fresh user and returns its events once the run ended.
async fn run(
    bridge: &AgentWebSocketBridge,
    exec: &RunExecutor,
    agent: &str,
    input: &str,
    cancel_after: Option<Duration>,
) -> Vec<StreamEvent> {
    let user = UserId::new(format!("u_{agent}_{}", input.len())).unwrap();
    let q = Arc::new(ConnectionQueue::new(1 << 20));
    bridge.attach(&user, q.clone(), None).await.unwrap();
    let h = exec
        .start(
            UserContext::new_run(user.clone(), None, None),
            agent,
            input.into(),
        )
        .unwrap();
    if let Some(d) = cancel_after {
        tokio::time::sleep(d).await;
        exec.factory().cancel(&user, &h.run_id).unwrap();
    }
    let mut events = Vec::new();
    let mut frames = Vec::new();
    loop {
        tokio::time::timeout(Duration::from_secs(5), q.next_batch(&mut frames, 64))
            .await
            .expect("run ended");
        for f in frames.drain(..) {
            events.push(serde_json::from_str::<StreamEvent>(f.as_str()).unwrap());
        }
        if events.last().is_some_and(|e| e.event.kind.is_terminal()) {
            return events;
        }
    }
}

fn types(events: &[StreamEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.event.kind.type_name()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_tool_reports_progress_as_thinking_inside_its_call() {
    let (bridge, exec) = setup(Duration::from_secs(5));
    let events = run(&bridge, &exec, "caller", "progressing", None).await;
    assert_eq!(
        types(&events),
        [
            "agent_started",
            "tool_executing",
            "agent_thinking",
            "tool_completed",
            "agent_completed"
        ]
    );
    let thinking = serde_json::to_value(&events[2].event.kind).unwrap();
    assert_eq!(thinking["data"]["thought"], "progressing (c_1): half way");
}

#[tokio::test(start_paused = true)]
async fn demo_runs_the_whole_lifecycle_with_seq_plus_one() {
    let (bridge, exec) = setup(Duration::from_secs(5));
    let events = run(&bridge, &exec, "demo", "what is 6 * 7?", None).await;
    let t = types(&events);
    assert_eq!(t[0], "agent_started");
    assert_eq!(*t.last().unwrap(), "agent_completed");
    assert!(t.contains(&"agent_thinking") && t.contains(&"agent_message_delta"));
    assert_eq!(t.iter().filter(|t| **t == "tool_executing").count(), 2);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
    }
    let answer = format!("{:?}", events.last().unwrap().event.kind);
    assert!(answer.contains("6 * 7 = 42"), "{answer}");
}

#[tokio::test(start_paused = true)]
async fn a_failing_tool_completes_with_ok_false_and_the_run_fails() {
    let (bridge, exec) = setup(Duration::from_secs(5));
    let events = run(&bridge, &exec, "caller", "failing", None).await;
    assert_eq!(
        types(&events),
        [
            "agent_started",
            "tool_executing",
            "tool_completed",
            "agent_error"
        ]
    );
    let done = serde_json::to_value(&events[2].event.kind).unwrap();
    assert_eq!(done["data"]["ok"], json!(false));
    assert_eq!(done["data"]["error"], json!("the service said no"));
}

#[tokio::test(start_paused = true)]
async fn cancel_closes_the_open_tool_call_and_ends_with_cancelled() {
    let (bridge, exec) = setup(Duration::from_secs(5));
    let events = run(
        &bridge,
        &exec,
        "caller",
        "slow",
        Some(Duration::from_millis(50)),
    )
    .await;
    assert_eq!(
        types(&events),
        [
            "agent_started",
            "tool_executing",
            "tool_completed",
            "agent_error"
        ]
    );
    let err = serde_json::to_value(&events[3].event.kind).unwrap();
    assert_eq!(err["data"]["code"], json!("cancelled"));
}

#[tokio::test(start_paused = true)]
async fn a_run_over_its_time_limit_ends_with_timeout() {
    let (bridge, exec) = setup(Duration::from_millis(100));
    let events = run(&bridge, &exec, "caller", "slow", None).await;
    let err = serde_json::to_value(&events.last().unwrap().event.kind).unwrap();
    assert_eq!(err["data"]["code"], json!("timeout"));
}

#[tokio::test(start_paused = true)]
async fn unknown_agents_and_a_registry_without_manager_are_refused() {
    let (_bridge, exec) = setup(Duration::from_secs(5));
    let err = exec
        .start(
            UserContext::new_run(UserId::new("u").unwrap(), None, None),
            "nope",
            "x".into(),
        )
        .unwrap_err();
    assert_eq!(err.code().as_str(), "unknown_agent");
    assert!(
        err.to_string().contains("demo"),
        "lists the available agents: {err}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_never_waits_has_its_whole_run_queued_when_start_returns() {
    let (bridge, exec) = setup(Duration::from_secs(5));
    let user = UserId::new("u_eager").unwrap();
    let q = Arc::new(ConnectionQueue::new(1 << 20));
    bridge.attach(&user, q.clone(), None).await.unwrap();
    exec.start(UserContext::new_run(user, None, None), "echo", "hi".into())
        .unwrap();
    // No await since `start`: the echo run ran in it, on this task.
    let mut frames = Vec::new();
    q.take_more(&mut frames, 64);
    let t: Vec<_> = frames.iter().filter_map(|f| f.event_type()).collect();
    assert_eq!(
        t,
        [
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_completed"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_agent_ends_with_agent_dropped_whether_or_not_it_waited_first() {
    let (bridge, exec) = setup(Duration::from_secs(5));
    for input in ["now", "later"] {
        let events = run(&bridge, &exec, "panicking", input, None).await;
        assert_eq!(types(&events), ["agent_started", "agent_error"], "{input}");
        let err = serde_json::to_value(&events[1].event.kind).unwrap();
        assert_eq!(err["data"]["code"], json!("agent_dropped"), "{input}");
    }
    // The executor (and the task that called it) go on.
    let events = run(&bridge, &exec, "echo", "after", None).await;
    assert_eq!(*types(&events).last().unwrap(), "agent_completed");
}

/// Events of `user` read from `q` until the run's terminal event (at most 10 s).
async fn until_terminal(q: &ConnectionQueue) -> Vec<StreamEvent> {
    let mut events = Vec::new();
    let mut frames = Vec::new();
    let read = async {
        loop {
            q.next_batch(&mut frames, 4096).await;
            for f in frames.drain(..) {
                events.push(serde_json::from_str::<StreamEvent>(f.as_str()).unwrap());
            }
            if events.last().is_some_and(|e| e.event.kind.is_terminal()) {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the run ended");
    events
}

// Real time: the limit must pass while the agent computes, which paused time never does.
#[tokio::test]
async fn an_agent_that_emits_in_a_loop_without_waiting_yields_and_times_out() {
    let (bridge, exec) = setup(Duration::from_millis(20));
    let user = UserId::new("u_chatty").unwrap();
    let q = Arc::new(ConnectionQueue::new(1 << 30));
    bridge.attach(&user, q.clone(), None).await.unwrap();
    exec.start(
        UserContext::new_run(user, None, None),
        "chatty",
        "200000".into(),
    )
    .unwrap();
    // `start` ran the agent only until the task's cooperative budget was spent, not to its end.
    let mut first = Vec::new();
    q.take_more(&mut first, usize::MAX);
    assert!(
        first.len() < 1_000,
        "{} events before start returned",
        first.len()
    );
    let events = until_terminal(&q).await;
    let err = serde_json::to_value(&events.last().unwrap().event.kind).unwrap();
    assert_eq!(err["data"]["code"], json!("timeout"));
}

#[tokio::test(start_paused = true)]
async fn a_run_without_a_time_limit_completes() {
    let (bridge, exec) = setup(Duration::MAX);
    let events = run(&bridge, &exec, "echo", "no limit", None).await;
    assert_eq!(*types(&events).last().unwrap(), "agent_completed");
}

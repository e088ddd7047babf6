use std::sync::Arc;
use std::time::Duration;

use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig, ConnectionQueue};
use agentwire_core::{
    Configurable, CoreError, EventSink, Frame, NowOrLater, RunEvent, StreamEvent, UserContext,
    UserId,
};
use serde_json::json;

use crate::{BridgeFactory, Emitted, FactoryError, RunLimits};

fn setup(max_runs: usize) -> (AgentWebSocketBridge, BridgeFactory) {
    let bridge = AgentWebSocketBridge::builder()
        .configure(BridgeConfig::default())
        .unwrap();
    let factory = BridgeFactory::new(
        Arc::new(bridge.clone()),
        RunLimits {
            max_runs_per_user: max_runs,
        },
    );
    (bridge, factory)
}

async fn types(q: &ConnectionQueue) -> Vec<String> {
    let mut out: Vec<Frame> = Vec::new();
    while q.queued_bytes() > 0 {
        q.next_batch(&mut out, 1000).await;
    }
    out.iter()
        .map(|f| {
            let e: StreamEvent = serde_json::from_str(f.as_str()).unwrap();
            e.event.kind.type_name().to_owned()
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_dropped_run_closes_open_calls_and_ends_with_agent_dropped() {
    let (bridge, factory) = setup(8);
    let user = UserId::new("u").unwrap();
    let q = Arc::new(ConnectionQueue::new(1 << 20));
    bridge.attach(&user, q.clone(), None).await.unwrap();
    {
        let run = factory
            .begin_run(UserContext::new_run(user.clone(), None, None), "demo")
            .unwrap();
        run.started(None).await.unwrap();
        run.tool_executing("c1", "clock", json!({})).await.unwrap();
    }
    // The run counts as in progress until its closing events are published.
    assert!(factory.wait_idle(Duration::from_secs(1)).await);
    assert_eq!(
        types(&q).await,
        [
            "agent_started",
            "tool_executing",
            "tool_completed",
            "agent_error"
        ]
    );
    let page = bridge.history_after(&user, 0, None, 10).await.unwrap();
    assert!(page.frames[2].as_str().contains(r#""ok":false"#));
    assert!(
        page.frames[3]
            .as_str()
            .contains(r#""code":"agent_dropped""#)
    );
}

#[tokio::test(start_paused = true)]
async fn failed_completes_open_calls_first() {
    let (bridge, factory) = setup(8);
    let user = UserId::new("u").unwrap();
    let run = factory
        .begin_run(UserContext::new_run(user.clone(), None, None), "demo")
        .unwrap();
    run.started(None).await.unwrap();
    run.tool_executing("a", "t", json!(1)).await.unwrap();
    run.tool_executing("b", "t", json!(2)).await.unwrap();
    run.failed("cancelled", "cancelled by the user")
        .await
        .unwrap();
    assert_eq!(bridge.stream_head(&user).await.unwrap().1, 6);
    assert!(run.thinking("late", None).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn runs_are_limited_per_user_and_cancellable_only_by_their_owner() {
    let (_bridge, factory) = setup(1);
    let (alice, bob) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
    let run = factory
        .begin_run(UserContext::new_run(alice.clone(), None, None), "demo")
        .unwrap();
    assert!(matches!(
        factory.begin_run(UserContext::new_run(alice.clone(), None, None), "demo"),
        Err(FactoryError::TooManyRuns { max: 1 })
    ));
    // bob is not limited by alice's runs, and cannot cancel them.
    let bob_run = factory
        .begin_run(UserContext::new_run(bob.clone(), None, None), "demo")
        .unwrap();
    let id = run.context().run_id.clone();
    assert!(matches!(
        factory.cancel(&bob, &id),
        Err(FactoryError::RunNotFound { .. })
    ));
    assert!(!run.cancellation().is_cancelled());
    factory.cancel(&alice, &id).unwrap();
    assert!(run.cancellation().is_cancelled());
    // A dropped run is registered until its closing events are out.
    drop((run, bob_run));
    assert!(factory.wait_idle(Duration::from_secs(5)).await);
    assert!(
        factory
            .begin_run(UserContext::new_run(alice, None, None), "demo")
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn stop_accepting_refuses_new_runs() {
    let (_bridge, factory) = setup(8);
    factory.stop_accepting();
    let r = factory.begin_run(
        UserContext::new_run(UserId::new("u").unwrap(), None, None),
        "demo",
    );
    assert!(matches!(r, Err(FactoryError::ShuttingDown)));
}

mod pipelined;

#[tokio::test(start_paused = true)]
async fn wait_idle_wakes_when_the_last_run_ends() {
    let (_bridge, factory) = setup(8);
    let run = factory
        .begin_run(
            UserContext::new_run(UserId::new("u").unwrap(), None, None),
            "demo",
        )
        .unwrap();
    let waiter = tokio::spawn({
        let factory = factory.clone();
        async move { factory.wait_idle(Duration::from_secs(30)).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished(), "a run is still in progress");
    drop(run);
    // Woken by the run's end, not by the 30 s timeout.
    let idle = tokio::time::timeout(Duration::from_secs(5), waiter).await;
    assert!(matches!(idle, Ok(Ok(true))));
}

/// The bridge behind a switch that refuses terminal events while it is on, as a broker that goes
/// away at the wrong moment would.
struct FailingOnTerminal {
    bridge: AgentWebSocketBridge,
    refuse: std::sync::atomic::AtomicBool,
}

impl FailingOnTerminal {
    fn refuse(&self, on: bool) {
        self.refuse.store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

impl EventSink for FailingOnTerminal {
    fn publish(
        &self,
        user: &UserId,
        event: &RunEvent,
    ) -> NowOrLater<'static, Result<u64, CoreError>> {
        let terminal = matches!(event.kind.type_name(), "agent_completed" | "agent_error");
        if terminal && self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            return NowOrLater::now(Err(CoreError::Unavailable("broker down".into())));
        }
        EventSink::publish(&self.bridge, user, event)
    }
}

fn failing_setup() -> (AgentWebSocketBridge, Arc<FailingOnTerminal>, BridgeFactory) {
    let (bridge, _) = setup(8);
    let sink = Arc::new(FailingOnTerminal {
        bridge: bridge.clone(),
        refuse: false.into(),
    });
    let factory = BridgeFactory::new(sink.clone(), RunLimits::default());
    (bridge, sink, factory)
}

#[tokio::test(start_paused = true)]
async fn a_terminal_event_the_sink_refused_can_be_sent_again_once_it_recovers() {
    let (bridge, sink, factory) = failing_setup();
    let user = UserId::new("u").unwrap();
    let run = factory
        .begin_run(UserContext::new_run(user.clone(), None, None), "demo")
        .unwrap();
    run.started(None).await.unwrap();
    sink.refuse(true);
    let refused = run.completed(json!("done")).await.unwrap_err();
    assert_eq!(refused.code(), agentwire_core::ErrorCode::Unavailable);
    // Refused by the sink, so not counted as the run's end: it can still fail or complete.
    let again = run.failed("internal", "could not complete").await;
    assert!(matches!(
        again,
        Err(FactoryError::Publish(CoreError::Unavailable(_)))
    ));
    sink.refuse(false);
    assert_eq!(
        run.completed(json!("done")).await.unwrap(),
        Emitted::Stored(2)
    );
    let page = bridge.history_after(&user, 0, None, 10).await.unwrap();
    assert_eq!(page.frames[1].event_type(), Some("agent_completed"));
    assert!(
        run.thinking("late", None).await.is_err(),
        "the run has ended"
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_dropped_after_a_refused_terminal_event_ends_once_the_sink_recovers() {
    let (bridge, sink, factory) = failing_setup();
    let user = UserId::new("u").unwrap();
    let q = Arc::new(ConnectionQueue::new(1 << 20));
    bridge.attach(&user, q.clone(), None).await.unwrap();
    let run = factory
        .begin_run(UserContext::new_run(user.clone(), None, None), "demo")
        .unwrap();
    run.started(None).await.unwrap();
    run.tool_executing("c1", "clock", json!({})).await.unwrap();
    sink.refuse(true);
    assert!(run.failed("internal", "boom").await.is_err());
    drop(run);
    // The dropped run retries its end; the sink comes back after a while.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(factory.active_runs(), 1, "still ending");
    sink.refuse(false);
    assert!(factory.wait_idle(Duration::from_secs(30)).await);
    assert_eq!(
        types(&q).await,
        [
            "agent_started",
            "tool_executing",
            "tool_completed",
            "agent_error"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn runs_are_keyed_by_user_and_run_id() {
    let (_bridge, factory) = setup(8);
    let (kim, lee) = (UserId::new("kim").unwrap(), UserId::new("lee").unwrap());
    let shared = agentwire_core::RunId::new("r_shared").unwrap();
    let ctx = |user: &UserId| UserContext {
        user_id: user.clone(),
        thread_id: agentwire_core::ThreadId::generate(),
        run_id: shared.clone(),
        request_id: None,
    };
    let kims = factory.begin_run(ctx(&kim), "demo").unwrap();
    let lees = factory.begin_run(ctx(&lee), "demo").unwrap();
    assert_eq!(factory.active_runs(), 2);
    // The same user cannot have two runs under one id.
    assert!(matches!(
        factory.begin_run(ctx(&kim), "demo"),
        Err(FactoryError::RunIdInUse { .. })
    ));
    assert_eq!(factory.active_runs(), 2);
    factory.cancel(&kim, &shared).unwrap();
    assert!(kims.cancellation().is_cancelled());
    assert!(!lees.cancellation().is_cancelled());
    drop(kims);
    // lee's run is still there, under the same id, and cancellable by lee.
    assert!(factory.owns_run(&lee, &shared));
    factory.cancel(&lee, &shared).unwrap();
    assert!(lees.cancellation().is_cancelled());
    drop(lees);
    assert!(factory.wait_idle(Duration::from_secs(5)).await);
    factory.begin_run(ctx(&kim), "demo").unwrap();
}

/// An event over the bridge's `max_event_bytes` is refused with `payload_too_large`, takes no seq
/// and leaves the run where it was; a run that fails with a long message still ends (the message
/// is cut).
#[tokio::test]
async fn an_event_over_the_size_limit_is_refused_and_the_run_goes_on() {
    let bridge = AgentWebSocketBridge::builder()
        .configure(BridgeConfig {
            max_event_bytes: 32 * 1024,
            ..BridgeConfig::default()
        })
        .unwrap();
    let factory = BridgeFactory::new(Arc::new(bridge.clone()), RunLimits::default());
    let user = UserId::new("u").unwrap();
    let run = factory
        .begin_run(UserContext::new_run(user.clone(), None, None), "demo")
        .unwrap();
    assert_eq!(run.started(None).await.unwrap(), Emitted::Stored(1));
    let refused = run.message_delta("m", "x".repeat(32 * 1024)).await;
    let Err(FactoryError::Publish(CoreError::EventTooLarge { size, max })) = refused else {
        panic!("{refused:?}");
    };
    assert!(size > max && max == 32 * 1024);
    assert_eq!(
        FactoryError::Publish(CoreError::EventTooLarge { size, max }).code(),
        agentwire_core::ErrorCode::PayloadTooLarge
    );
    assert_eq!(
        run.message_delta("m", "fits").await.unwrap(),
        Emitted::Stored(2)
    );
    // Control characters escape to six bytes each: 4 KiB of them is 24 KiB of JSON, still within.
    assert_eq!(
        run.failed("agent_failed", "\u{1}".repeat(100_000))
            .await
            .unwrap(),
        Emitted::Stored(3)
    );
    let page = bridge.history_after(&user, 0, None, 10).await.unwrap();
    assert_eq!(page.frames.len(), 3);
    assert!(page.frames[2].len() < 32 * 1024);
}

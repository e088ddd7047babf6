//! Pipelined emits: a sink that confirms later, fail-stop, rollback, and what a run and
//! `ExternalRuns` do with each outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use agentwire_bridge::AgentWebSocketBridge;
use agentwire_core::{CoreError, EventSink, NowOrLater, RunEvent, RunId, UserContext, UserId};
use serde_json::json;

use super::setup;
use crate::{BridgeFactory, Emitted, FactoryError, RunEmitter, RunLimits};

/// An `EventSink` that has to wait before it confirms an event (as the bridge on Redis does): it
/// takes the event at the call, as the contract asks, and its `Later` result yields before it
/// reports. With `fail` set it takes nothing and fails the event (after the yield), and refuses
/// the run's later events until the failure is acknowledged — the fail-stop rule.
#[derive(Default)]
struct WaitingSink {
    bridge: Option<AgentWebSocketBridge>,
    fail: AtomicBool,
    /// Store the event but report it not confirmed durable (a replica-wait shortfall).
    unreplicated: AtomicBool,
    failed_runs: std::sync::Mutex<Vec<RunId>>,
}

impl WaitingSink {
    fn new(bridge: AgentWebSocketBridge) -> Self {
        Self {
            bridge: Some(bridge),
            ..Self::default()
        }
    }

    fn fail(&self, on: bool) {
        self.fail.store(on, Ordering::Relaxed);
    }

    fn unreplicated(&self, on: bool) {
        self.unreplicated.store(on, Ordering::Relaxed);
    }
}

impl EventSink for WaitingSink {
    fn publish(
        &self,
        user: &UserId,
        event: &RunEvent,
    ) -> NowOrLater<'static, Result<u64, CoreError>> {
        let mut failed = self.failed_runs.lock().unwrap();
        if failed.contains(&event.run_id) {
            return NowOrLater::now(Err(CoreError::Unavailable(
                "an earlier event failed".into(),
            )));
        }
        let outcome = if self.fail.load(Ordering::Relaxed) {
            failed.push(event.run_id.clone());
            Err(CoreError::Unavailable("broker down".into()))
        } else {
            let bridge = self.bridge.as_ref().expect("a bridge");
            let stored = EventSink::publish(bridge, user, event)
                .into_now()
                .unwrap_or_else(|_| panic!("the memory bridge answers at once"));
            if self.unreplicated.load(Ordering::Relaxed) {
                stored.and(Err(CoreError::NotReplicated("0 of 1 replicas".into())))
            } else {
                stored
            }
        };
        NowOrLater::later(async move {
            tokio::task::yield_now().await;
            outcome
        })
    }

    fn acknowledge_failure(&self, _user: &UserId, run: &RunId) {
        self.failed_runs.lock().unwrap().retain(|r| r != run);
    }
}

/// A run of user `u` through a [`WaitingSink`] over a fresh bridge.
struct WaitingRun {
    bridge: AgentWebSocketBridge,
    sink: Arc<WaitingSink>,
    user: UserId,
    run: RunEmitter,
}

fn waiting_run() -> WaitingRun {
    let (bridge, _) = setup(8);
    let sink = Arc::new(WaitingSink::new(bridge.clone()));
    let factory = BridgeFactory::new(sink.clone(), RunLimits::default());
    let user = UserId::new("u").unwrap();
    let run = factory
        .begin_run(UserContext::new_run(user.clone(), None, None), "demo")
        .unwrap();
    WaitingRun {
        bridge,
        sink,
        user,
        run,
    }
}

/// The types of the events `user`'s stream holds, in seq order.
async fn stored_types(bridge: &AgentWebSocketBridge, user: &UserId) -> Vec<String> {
    let page = bridge.history_after(user, 0, None, 10).await.unwrap();
    page.frames
        .iter()
        .map(|f| f.event_type().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn steps_of_one_run_keep_grammar_order_when_the_sink_waits() {
    let WaitingRun {
        bridge, user, run, ..
    } = waiting_run();
    // Queued, not waited for: the run goes on while the sink confirms.
    assert_eq!(run.started(None).await.unwrap(), Emitted::Queued);
    let (one, two) = tokio::join!(run.thinking("one", None), run.thinking("two", None));
    assert_eq!(
        (one.unwrap(), two.unwrap()),
        (Emitted::Queued, Emitted::Queued)
    );
    // A step that does not fit is refused, not forwarded.
    let (ok, refused) = tokio::join!(
        run.thinking("three", None),
        run.tool_completed("nope", "t", Ok(json!(1)), 0)
    );
    assert_eq!(ok.unwrap(), Emitted::Queued);
    assert!(refused.is_err());
    // The terminal event returns once it and everything before it are stored.
    assert_eq!(
        run.completed(json!("done")).await.unwrap(),
        Emitted::Stored(5)
    );
    let page = bridge.history_after(&user, 0, None, 10).await.unwrap();
    let thoughts: Vec<_> = page.frames[1..3]
        .iter()
        .map(|f| f.as_str().contains(r#""thought":"one""#))
        .collect();
    assert_eq!(thoughts, [true, false]);
    assert_eq!(page.frames.len(), 5);
    assert!(
        page.frames
            .iter()
            .all(|f| f.event_type() != Some("tool_completed"))
    );
}

#[tokio::test(start_paused = true)]
async fn an_event_stored_but_not_replicated_is_reported_and_not_rolled_back() {
    let WaitingRun {
        bridge,
        sink,
        user,
        run,
    } = waiting_run();
    run.started(None).await.unwrap();
    sink.unreplicated(true);
    run.tool_executing("c_1", "t", json!({})).await.unwrap();
    sink.unreplicated(false);
    let reported = run.confirm().await;
    assert!(
        matches!(
            reported,
            Err(FactoryError::Publish(CoreError::NotReplicated(_)))
        ),
        "{reported:?}"
    );
    // The stream holds tool_executing, so the call is still open and the run goes on from it.
    run.tool_completed("c_1", "t", Ok(json!(1)), 0)
        .await
        .unwrap();
    assert_eq!(run.completed(json!(1)).await.unwrap(), Emitted::Stored(4));
    assert_eq!(
        stored_types(&bridge, &user).await,
        [
            "agent_started",
            "tool_executing",
            "tool_completed",
            "agent_completed"
        ]
    );
}

/// `/v1/publish` whose client goes away while the sink confirms the run's terminal event: the
/// run is still recorded as ended (its id cannot start again), as when the client waits.
#[tokio::test(start_paused = true)]
async fn an_external_run_ends_even_when_its_publisher_stops_waiting() {
    let (bridge, _) = setup(8);
    let runs = crate::ExternalRuns::new(
        Arc::new(WaitingSink::new(bridge.clone())),
        crate::ExternalLimits::default(),
    );
    let user = UserId::new("u").unwrap();
    let (run, thread) = (RunId::generate(), agentwire_core::ThreadId::generate());
    let event = |kind| RunEvent::now(run.clone(), thread.clone(), "ext".into(), kind);
    let started =
        agentwire_core::EventKind::AgentStarted(agentwire_core::AgentStarted { input: None });
    assert_eq!(
        runs.publish(&user, event(started.clone())).await.unwrap(),
        1
    );
    let done = runs.publish(
        &user,
        event(agentwire_core::EventKind::AgentCompleted(
            agentwire_core::AgentCompleted {
                result: json!(1),
                duration_ms: 0,
                usage: None,
                model: None,
            },
        )),
    );
    // Polled once (the event is queued and the sink has not confirmed it), then dropped.
    tokio::select! {
        biased;
        _ = done => panic!("the sink confirms later"),
        () = std::future::ready(()) => {}
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(runs.open_runs(), 0, "the run was recorded as ended");
    assert!(matches!(
        runs.publish(&user, event(started)).await,
        Err(crate::ExternalError::Ended { .. })
    ));
    let page = bridge.history_after(&user, 0, None, 10).await.unwrap();
    assert_eq!(page.frames.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_queued_event_that_fails_rolls_the_run_back_to_what_the_stream_holds() {
    let WaitingRun {
        bridge,
        sink,
        user,
        run,
    } = waiting_run();
    run.started(None).await.unwrap();
    run.thinking("stored", None).await.unwrap();
    sink.fail(true);
    // Queued; it will fail, and the sink then refuses the run's later events.
    assert_eq!(
        run.tool_executing("c_1", "t", json!({})).await.unwrap(),
        Emitted::Queued
    );
    sink.fail(false);
    let late = run.tool_completed("c_1", "t", Ok(json!(1)), 0).await;
    assert!(
        matches!(late, Err(FactoryError::Publish(CoreError::Unavailable(_)))),
        "{late:?}"
    );
    assert!(run.confirm().await.is_err(), "the failure is reported");
    // Back to where the stream is: no call open, so the run ends with agent_error alone, and
    // the stream holds no tool event at all — no hole inside the run.
    assert!(matches!(
        run.failed("internal", "the broker failed").await,
        Ok(Emitted::Stored(3))
    ));
    assert_eq!(
        stored_types(&bridge, &user).await,
        ["agent_started", "agent_thinking", "agent_error"]
    );
}

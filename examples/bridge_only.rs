//! Run with: cargo run --example bridge_only
//!
//! The bridge crate alone, with your own transport: no server, no axum. A custom
//! `WebSocketSink` stands for a connection of yours (here it prints each frame and hands it to the
//! program over a channel); the bridge gives every event of a user the next `seq`, fans it out to
//! that user's connections only, keeps history for resume, and the `BridgeFactory`'s run emitters
//! enforce the run grammar.
//!
//! What it shows, in order:
//! 1. implementing `WebSocketSink` (non-blocking `send`, idempotent `close`);
//! 2. a run published through a `RunEmitter` bound to one user — the other user sees nothing;
//! 3. an out-of-grammar event is rejected, never delivered;
//! 4. a run dropped without a terminal event ends with `agent_error {code:"agent_dropped"}`;
//! 5. a second connection resuming from `last_seq = 3` gets events 4.. replayed; live events
//!    would follow with no hole and no duplicate.
//!
//! With `AGENTWIRE_EXAMPLE_SMOKE=1` it also prints `smoke ok: bridge_only` at the end (it has no
//! port to bind; every step asserts what it shows either way).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig, ResumeFrom};
use agentwire_bridge_factory::{BridgeFactory, RunLimits};
use agentwire_core::{
    CloseCode, Configurable, CoreError, Frame, StreamEvent, UserContext, UserId, WebSocketSink,
};
use serde_json::json;
use tokio::sync::mpsc;

/// A connection of your own transport. `send` must not block: it hands the frame on and returns.
struct PrintSink {
    label: &'static str,
    out: mpsc::UnboundedSender<Frame>,
    closed: AtomicBool,
}

impl PrintSink {
    fn new(label: &'static str) -> (Arc<Self>, mpsc::UnboundedReceiver<Frame>) {
        let (out, rx) = mpsc::unbounded_channel();
        let sink = Self {
            label,
            out,
            closed: AtomicBool::new(false),
        };
        (Arc::new(sink), rx)
    }
}

impl WebSocketSink for PrintSink {
    fn send(&self, frame: Frame) -> Result<(), CoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(CoreError::SinkClosed); // the bridge then drops this connection
        }
        println!("[{}] {}", self.label, frame.as_str());
        self.out.send(frame).map_err(|_| CoreError::SinkClosed)
    }

    fn close(&self, code: CloseCode, reason: &str) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            println!("[{}] closed: {} {reason}", self.label, code.0);
        }
    }
}

/// The next `n` event frames of a connection, parsed (waits at most 5 s).
async fn take(rx: &mut mpsc::UnboundedReceiver<Frame>, n: usize) -> Vec<StreamEvent> {
    let mut events = Vec::new();
    while events.len() < n {
        let frame = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("frame within 5s")
            .expect("connection open");
        events.push(serde_json::from_str(frame.as_str()).expect("an event envelope"));
    }
    events
}

fn types(events: &[StreamEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.event.kind.type_name()).collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bridge = AgentWebSocketBridge::builder().configure(BridgeConfig::default())?;
    let factory = BridgeFactory::new(Arc::new(bridge.clone()), RunLimits::default());
    let (ada, bob) = (UserId::new("ada")?, UserId::new("bob")?);

    // 1. One connection each.
    let (ada_laptop, mut ada_rx) = PrintSink::new("ada laptop");
    let (bob_phone, mut bob_rx) = PrintSink::new("bob phone");
    bridge.attach(&ada, ada_laptop, None).await?;
    bridge.attach(&bob, bob_phone, None).await?;

    // 2. A run for ada, published through an emitter that can only reach ada.
    let run = factory.begin_run(UserContext::new_run(ada.clone(), None, None), "bridge_only")?;
    run.started(Some("what is 2+2?".into())).await?;
    run.thinking("Adding", Some(1)).await?;
    run.tool_executing("c_1", "calculator", json!({"expression": "2+2"}))
        .await?;
    run.tool_completed("c_1", "calculator", Ok(json!(4)), 1)
        .await?;
    run.message_delta("m_1", "2+2 = 4").await?;
    run.completed(json!(4)).await?;
    let events = take(&mut ada_rx, 6).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        types(&events),
        [
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_message_delta",
            "agent_completed"
        ]
    );
    assert!(bob_rx.try_recv().is_err(), "bob sees none of ada's events");

    // 3. Out of grammar: the run already ended, so nothing more is accepted or delivered.
    let refused = run.thinking("one more thought", None).await;
    println!("refused: {}", refused.expect_err("out of grammar"));
    assert!(ada_rx.try_recv().is_err());
    drop(run);

    // 4. A run dropped mid-way is ended for the client: the open call first, then agent_dropped.
    let run = factory.begin_run(UserContext::new_run(ada.clone(), None, None), "bridge_only")?;
    run.started(None).await?;
    run.tool_executing("c_1", "clock", json!({})).await?;
    drop(run);
    let events = take(&mut ada_rx, 4).await;
    assert_eq!(types(&events[2..]), ["tool_completed", "agent_error"]);
    assert_eq!(
        serde_json::to_value(&events[3].event.kind)?["data"]["code"],
        "agent_dropped"
    );

    // 5. A second device resumes from seq 3: 4..=10 are replayed (live events would follow).
    let (ada_phone, mut phone_rx) = PrintSink::new("ada phone");
    let resume = ResumeFrom {
        last_seq: 3,
        epoch: None,
    };
    let attached = bridge.attach(&ada, ada_phone, Some(resume)).await?;
    assert_eq!(attached.resumed.map(|r| r.replayed), Some(7));
    let replayed = take(&mut phone_rx, 7).await;
    assert_eq!(replayed.first().map(|e| e.seq), Some(4));

    bridge.close_all(CloseCode::GOING_AWAY, "demo over");
    println!("ada's stream head: {:?}", bridge.stream_head(&ada).await);
    if std::env::var_os("AGENTWIRE_EXAMPLE_SMOKE").is_some() {
        println!("smoke ok: bridge_only");
    }
    Ok(())
}

//! A [`WebSocketSink`] whose frames a test awaits, as a client would read them.

use std::sync::Arc;

use agentwire_core::{CloseCode, CoreError, Frame, RunId, StreamEvent, WebSocketSink};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::FRAME_TIMEOUT;

enum Item {
    Frame(Frame),
    Close(CloseCode, String),
}

/// A loopback connection: the bridge (or your component) sends frames into the sink, the test
/// awaits them on the paired [`LoopbackReceiver`], in order, over an unbounded channel.
///
/// It behaves like a well-behaved [`WebSocketSink`]: `send` never blocks; after `close` (or once
/// the receiver is dropped) `send` returns [`CoreError::SinkClosed`]; `close` is idempotent and
/// arrives at the receiver after the frames queued before it.
///
/// ```
/// use std::sync::Arc;
/// use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig};
/// use agentwire_core::{AgentStarted, Configurable, EventKind, RunEvent, RunId, ThreadId, UserId};
/// use agentwire_test::LoopbackSink;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bridge = AgentWebSocketBridge::builder().configure(BridgeConfig::default())?;
/// let ada = UserId::new("ada")?;
/// let (sink, mut inbox) = LoopbackSink::pair();
/// bridge.attach(&ada, sink, None).await?;
///
/// let started = RunEvent::now(RunId::generate(), ThreadId::generate(), "demo".into(),
///     EventKind::AgentStarted(AgentStarted { input: None }));
/// bridge.publish_event(&ada, &started).await?;
///
/// let event = inbox.next_event().await.expect("the event arrives");
/// assert_eq!((event.seq, event.event.kind.type_name()), (1, "agent_started"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LoopbackSink {
    tx: Mutex<Option<mpsc::UnboundedSender<Item>>>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Frame(frame) => f.debug_tuple("Frame").field(frame).finish(),
            Item::Close(code, reason) => f.debug_tuple("Close").field(code).field(reason).finish(),
        }
    }
}

/// The test's end of a [`LoopbackSink`]: awaits the frames sent into it.
#[derive(Debug)]
pub struct LoopbackReceiver {
    rx: mpsc::UnboundedReceiver<Item>,
    /// The close the sink received (code and reason), once [`Self::next_frame`] reached it.
    pub close: Option<(CloseCode, String)>,
}

impl LoopbackSink {
    /// A sink (ready to hand to `AgentWebSocketBridge::attach`) and the receiver of its frames.
    pub fn pair() -> (Arc<Self>, LoopbackReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Self {
                tx: Mutex::new(Some(tx)),
            }),
            LoopbackReceiver { rx, close: None },
        )
    }

    /// Whether the sink was closed or its receiver dropped.
    pub fn is_closed(&self) -> bool {
        self.tx.lock().as_ref().is_none_or(|tx| tx.is_closed())
    }
}

impl WebSocketSink for LoopbackSink {
    fn send(&self, frame: Frame) -> Result<(), CoreError> {
        let tx = self.tx.lock();
        match tx.as_ref() {
            Some(tx) => tx
                .send(Item::Frame(frame))
                .map_err(|_| CoreError::SinkClosed),
            None => Err(CoreError::SinkClosed),
        }
    }

    fn close(&self, code: CloseCode, reason: &str) {
        if let Some(tx) = self.tx.lock().take() {
            let _ = tx.send(Item::Close(code, reason.to_owned()));
        }
    }
}

impl LoopbackReceiver {
    /// The next frame, or `None` once the sink was closed (the close is kept in [`Self::close`])
    /// or dropped.
    ///
    /// # Panics
    /// After [`FRAME_TIMEOUT`] without a frame.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        if self.close.is_some() {
            return None;
        }
        let item = tokio::time::timeout(FRAME_TIMEOUT, self.rx.recv())
            .await
            .expect("a frame within the timeout");
        match item {
            Some(Item::Frame(frame)) => Some(frame),
            Some(Item::Close(code, reason)) => {
                self.close = Some((code, reason));
                None
            }
            None => None,
        }
    }

    /// The next frame if one is already queued, without waiting.
    pub fn try_next_frame(&mut self) -> Option<Frame> {
        if self.close.is_some() {
            return None;
        }
        match self.rx.try_recv().ok()? {
            Item::Frame(frame) => Some(frame),
            Item::Close(code, reason) => {
                self.close = Some((code, reason));
                None
            }
        }
    }

    /// The next event frame (control frames are skipped), parsed.
    ///
    /// # Panics
    /// After [`FRAME_TIMEOUT`] without a frame, or when an event frame is not a valid envelope.
    pub async fn next_event(&mut self) -> Option<StreamEvent> {
        loop {
            let frame = self.next_frame().await?;
            if frame.seq() > 0 {
                return Some(
                    serde_json::from_str(frame.as_str())
                        .expect("event frames parse as StreamEvent"),
                );
            }
        }
    }

    /// The events of `run_id`, read until its terminal event (other runs' events are skipped).
    ///
    /// # Panics
    /// When the sink closes before the run ends, or as [`Self::next_event`].
    pub async fn run_events(&mut self, run_id: &RunId) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        loop {
            let event = self
                .next_event()
                .await
                .expect("the sink stays open until the run ends");
            if &event.event.run_id != run_id {
                continue;
            }
            let done = event.event.kind.is_terminal();
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use agentwire_core::WebSocketSinkExt;
    use serde_json::json;

    use super::*;

    fn control() -> Frame {
        Frame::control(&json!({"type": "pong", "id": "p"}))
    }

    #[tokio::test]
    async fn frames_arrive_in_order_then_the_close() {
        let (sink, mut rx) = LoopbackSink::pair();
        sink.send(control()).unwrap();
        sink.send(Frame::event(1, br#"{"type":"x"}"#.to_vec()))
            .unwrap();
        sink.close(CloseCode::GOING_AWAY, "bye");
        sink.close(CloseCode::NORMAL, "again"); // idempotent
        assert_eq!(sink.send(control()), Err(CoreError::SinkClosed));
        assert!(sink.is_closed());

        assert_eq!(rx.next_frame().await.unwrap().seq(), 0);
        assert_eq!(rx.next_frame().await.unwrap().seq(), 1);
        assert_eq!(rx.next_frame().await, None);
        assert_eq!(rx.close, Some((CloseCode::GOING_AWAY, "bye".to_owned())));
        assert_eq!(rx.next_frame().await, None);
    }

    #[tokio::test]
    async fn a_dropped_receiver_closes_the_sink() {
        let (sink, rx) = LoopbackSink::pair();
        drop(rx);
        assert!(sink.is_closed());
        assert_eq!(sink.send_or_close(control()), Err(CoreError::SinkClosed));
    }

    #[test]
    fn try_next_frame_does_not_wait() {
        let (sink, mut rx) = LoopbackSink::pair();
        assert_eq!(rx.try_next_frame(), None);
        sink.send(control()).unwrap();
        assert!(rx.try_next_frame().is_some());
    }
}

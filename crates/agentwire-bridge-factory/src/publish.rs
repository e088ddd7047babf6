//! `RunPublisher`: the one way a run's events reach its stream — checked against the run's
//! grammar, handed to the sink in order, and followed until they are stored.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use agentwire_core::{
    Committed, CoreError, EventSink, NowOrLater, RunEvent, RunGrammar, RunId, UserId,
};

/// Most events of one run queued and not yet known to be stored; past it, publishing waits for
/// them (the run's memory for rolling back stays bounded, and so does its share of the store's
/// queue).
pub(crate) const MAX_UNCONFIRMED: usize = 64;

/// Publishes the events of one run, in the order its grammar accepted them.
///
/// Every way an event comes in — an agent's [`RunEmitter`](crate::RunEmitter), a dropped run's
/// closing events, `/v1/publish` through [`ExternalRuns`](crate::ExternalRuns) — passes here.
/// An event is checked against the grammar without changing it and handed to the sink; the sink
/// fixes its place in the stream at once, so the grammar advances then, and the next event can
/// follow before this one is stored (a sink that stores without waiting, the memory broker,
/// answers at once and nothing stays pending).
///
/// Events the sink has not confirmed yet stay here, each with its grammar step. When one fails,
/// every later one of the run fails too (the sink's fail-stop rule, see [`EventSink`]): their
/// steps are taken back, newest first, so the grammar is back to before the failed one — what
/// the stream holds — the sink is told the failure was seen, and the error is returned. A run can then still end in
/// grammar (`agent_error`, with `ok:false` for the calls the stream shows open) once the sink
/// recovers. The sink bounds each event's size on the frame it writes (`payload_too_large`), so
/// one bound holds for every way in.
#[derive(Debug, Default)]
pub(crate) struct RunPublisher {
    /// After every event handed to the sink, stored or not.
    grammar: RunGrammar,
    /// Handed to the sink, not yet known to be stored; oldest first.
    unconfirmed: VecDeque<Unconfirmed>,
}

struct Unconfirmed {
    outcome: NowOrLater<'static, Result<u64, CoreError>>,
    /// The event's grammar step, taken back if it fails.
    step: Committed,
}

impl std::fmt::Debug for Unconfirmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unconfirmed").finish_non_exhaustive()
    }
}

/// What [`RunPublisher::publish`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Published {
    /// Stored, with this seq, and every earlier event of the run too.
    Stored(u64),
    /// In the sink's queue, behind the run's earlier events; not known to be stored yet.
    Queued,
}

impl RunPublisher {
    /// The grammar after every event handed to the sink.
    pub(crate) fn grammar(&self) -> &RunGrammar {
        &self.grammar
    }

    /// How many events are not known to be stored yet.
    pub(crate) fn unconfirmed(&self) -> usize {
        self.unconfirmed.len()
    }

    /// Checks `event` against the grammar and hands it to `sink`.
    ///
    /// # Errors
    /// [`CoreError::Grammar`] when it does not fit; the sink's error when it refuses it at once;
    /// the error of an earlier event that turned out not stored (the run is rolled back, and
    /// `event` is not published).
    pub(crate) fn publish(
        &mut self,
        sink: &dyn EventSink,
        user: &UserId,
        event: &RunEvent,
    ) -> Result<Published, CoreError> {
        self.take_ready(sink, user, &event.run_id)?;
        let accepted = self.grammar.accept(&event.kind)?;
        let outcome = match sink.publish(user, event).into_now() {
            Ok(Ok(seq)) if self.unconfirmed.is_empty() => {
                let _ = self.grammar.commit(accepted);
                return Ok(Published::Stored(seq));
            }
            // Refused at once: the run is where it was.
            Ok(Err(e)) => return Err(e),
            Ok(stored) => NowOrLater::now(stored),
            Err(later) => later,
        };
        let step = self.grammar.commit(accepted);
        self.unconfirmed.push_back(Unconfirmed { outcome, step });
        Ok(Published::Queued)
    }

    /// [`Self::publish`], then waits until the event is stored; its seq.
    ///
    /// # Errors
    /// As [`Self::publish`] and [`Self::confirm`].
    pub(crate) async fn publish_stored(
        &mut self,
        sink: &dyn EventSink,
        user: &UserId,
        event: &RunEvent,
    ) -> Result<u64, CoreError> {
        match self.publish(sink, user, event)? {
            Published::Stored(seq) => Ok(seq),
            Published::Queued => self
                .confirm(sink, user, &event.run_id)
                .await?
                .ok_or_else(|| CoreError::Unavailable("the event was not stored".into())),
        }
    }

    /// Waits until every event handed to the sink is stored; the last one's seq (`None` when
    /// none was pending).
    ///
    /// # Errors
    /// The error of the first event that was not stored; the run is rolled back to before it.
    /// [`CoreError::NotReplicated`] when every event is in the stream but some were not
    /// confirmed durable: nothing is rolled back.
    pub(crate) async fn confirm(
        &mut self,
        sink: &dyn EventSink,
        user: &UserId,
        run: &RunId,
    ) -> Result<Option<u64>, CoreError> {
        let mut last = None;
        let mut unconfirmed_but_stored = None;
        while let Some(front) = self.unconfirmed.front_mut() {
            let outcome = (&mut front.outcome).await;
            if let Some(seq) = self.settle(outcome, sink, user, run, &mut unconfirmed_but_stored)? {
                last = Some(seq);
            }
        }
        match unconfirmed_but_stored {
            Some(e) => Err(e),
            None => Ok(last),
        }
    }

    /// Takes the front outcome in: `Ok(Some(seq))` stored; `Ok(None)` stored without its
    /// durability confirmed (the error is kept in `not_replicated` for the caller, and the run
    /// goes on: the stream holds the event); `Err` lost, and the run rolled back.
    fn settle(
        &mut self,
        outcome: Result<u64, CoreError>,
        sink: &dyn EventSink,
        user: &UserId,
        run: &RunId,
        not_replicated: &mut Option<CoreError>,
    ) -> Result<Option<u64>, CoreError> {
        match outcome {
            Ok(seq) => {
                self.unconfirmed.pop_front();
                Ok(Some(seq))
            }
            Err(e @ CoreError::NotReplicated(_)) => {
                self.unconfirmed.pop_front();
                not_replicated.get_or_insert(e);
                Ok(None)
            }
            Err(e) => {
                self.roll_back(sink, user, run);
                Err(e)
            }
        }
    }

    /// Takes in the outcomes that are there already, oldest first, without waiting.
    fn take_ready(
        &mut self,
        sink: &dyn EventSink,
        user: &UserId,
        run: &RunId,
    ) -> Result<(), CoreError> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut not_replicated = None;
        while let Some(front) = self.unconfirmed.front_mut() {
            let Poll::Ready(outcome) = Pin::new(&mut front.outcome).poll(&mut cx) else {
                break;
            };
            self.settle(outcome, sink, user, run, &mut not_replicated)?;
        }
        not_replicated.map_or(Ok(()), Err)
    }

    /// The oldest unconfirmed event failed, so every later one did too (fail-stop): their steps
    /// taken back, newest first, and the sink may take the run's events again.
    fn roll_back(&mut self, sink: &dyn EventSink, user: &UserId, run: &RunId) {
        while let Some(lost) = self.unconfirmed.pop_back() {
            self.grammar.undo(lost.step);
        }
        sink.acknowledge_failure(user, run);
    }
}

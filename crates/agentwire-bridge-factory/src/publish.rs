//! The one way a run's event reaches its stream: check, publish, then commit.

use agentwire_core::{CoreError, EventSink, NowOrLater, RunEvent, RunGrammar, UserId};

/// Publishes `event` as the next event of the run `grammar` tracks.
///
/// The event is checked against the grammar without changing it, handed to `sink`, and the
/// grammar advances only once the sink accepted it. Every way an event comes in — an agent's
/// [`RunEmitter`](crate::RunEmitter), a run's content (its `agent_started`), `/v1/publish` through
/// [`ExternalRuns`](crate::ExternalRuns) — passes here. The sink bounds the event's size on the
/// frame it writes (`payload_too_large`, [`CoreError::EventTooLarge`]), so one bound holds for
/// all of them and costs no pass of its own. An event the sink refused leaves the run where it
/// was: the same event can be sent again, or the run ended another way (`failed`, the drop
/// guard), once the sink recovers. The caller holds the run's grammar (its lock) until the
/// result resolves, so the grammar order is the seq order.
///
/// `Now` when the grammar refuses the event or the sink takes it without waiting: no await, no
/// allocation.
pub(crate) fn publish_in_grammar<'a>(
    grammar: &'a mut RunGrammar,
    sink: &'a dyn EventSink,
    user: &'a UserId,
    event: &RunEvent,
) -> NowOrLater<'a, Result<u64, CoreError>> {
    let accepted = match grammar.accept(&event.kind) {
        Ok(accepted) => accepted,
        Err(refused) => return NowOrLater::now(Err(refused.into())),
    };
    sink.publish(user, event).map(move |published| {
        if published.is_ok() {
            grammar.commit(accepted);
        }
        published
    })
}

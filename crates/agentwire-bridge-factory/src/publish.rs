//! The one way a run's event reaches its stream: check, publish, then commit.

use agentwire_core::{CoreError, EventSink, NowOrLater, RunEvent, RunGrammar, UserId};

/// Publishes `event` as the next event of the run `grammar` tracks.
///
/// The event is checked against the largest event size (`max_event_bytes`, see
/// [`RunEvent::check_size`]) and the grammar without changing it, handed to `sink`, and the
/// grammar advances only once the sink accepted it. Every way an event comes in — an agent's
/// [`RunEmitter`](crate::RunEmitter), a run's content (its `agent_started`), `/v1/publish` through
/// [`ExternalRuns`](crate::ExternalRuns) — passes here, so one size bound holds for all of them. An event the sink refused leaves the run
/// where it was: the same event can be sent again, or the run ended another way (`failed`, the
/// drop guard), once the sink recovers. The caller holds the run's grammar (its lock) until the
/// result resolves, so the grammar order is the seq order.
///
/// `Now` when the grammar refuses the event or the sink takes it without waiting: no await, no
/// allocation.
pub(crate) fn publish_in_grammar<'a>(
    grammar: &'a mut RunGrammar,
    sink: &'a dyn EventSink,
    user: &'a UserId,
    event: &RunEvent,
    max_event_bytes: usize,
) -> NowOrLater<'a, Result<u64, CoreError>> {
    if let Err(e) = check_size(event, max_event_bytes) {
        return NowOrLater::now(Err(e));
    }
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

/// [`RunEvent::check_size`] as the error every way in reports: `payload_too_large`.
pub(crate) fn check_size(event: &RunEvent, max: usize) -> Result<(), CoreError> {
    event
        .check_size(max)
        .map_err(|size| CoreError::EventTooLarge { size, max })
}

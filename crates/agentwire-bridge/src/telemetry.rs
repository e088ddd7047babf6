//! Metric handles resolved once, so the per-event path only adds to an atomic.

use agentwire_core::EVENT_TYPES;
use metrics::Counter;

/// Events accepted into a stream, by type.
pub const EVENTS_ACCEPTED: &str = "agentwire_events_accepted_total";
/// Events written to a connection's socket, by type.
pub const EVENTS_DELIVERED: &str = "agentwire_events_delivered_total";

/// The counters `metric{type="<event type>"}` for each of core's [`EVENT_TYPES`] and `other`,
/// registered once.
///
/// `metrics::counter!` looks its key up in the recorder's registry on every call (and builds a
/// label vector when a label value is not a literal). Invariant: the per-event path only adds to
/// a resolved handle. Resolve the handles when the component is built — under the recorder it
/// should report to — and keep them.
#[derive(Debug, Clone)]
pub struct EventCounters {
    counters: [Counter; EVENT_TYPES.len()],
    other: Counter,
}

impl EventCounters {
    /// Registers `metric{type=…}` for each event type with the current recorder.
    pub fn new(metric: &'static str) -> Self {
        Self {
            counters: EVENT_TYPES.map(|t| metrics::counter!(metric, "type" => t)),
            other: metrics::counter!(metric, "type" => "other"),
        }
    }

    /// The counter of the event type at `index` in [`EVENT_TYPES`] (`EventKind::type_index`,
    /// `Frame::event_type_index`): no string compare per event. `other` for `None` or an index
    /// past the end.
    pub fn by_index(&self, index: Option<usize>) -> &Counter {
        index
            .and_then(|i| self.counters.get(i))
            .unwrap_or(&self.other)
    }
}

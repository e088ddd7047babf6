//! Metric handles keyed by event type without building labels per call.

/// Events accepted into a stream, by type.
pub const EVENTS_ACCEPTED: &str = "agentwire_events_accepted_total";
/// Events written to a connection's socket, by type.
pub const EVENTS_DELIVERED: &str = "agentwire_events_delivered_total";

/// The counter `metric{type="<event type>"}`.
///
/// `metrics::counter!(name, "type" => value)` with a non-literal value allocates its labels on
/// every call; this runs per event, so each of the fixed event types gets a static key instead.
/// An unknown type is counted as `other`.
pub fn event_counter(metric: &'static str, event_type: &str) -> metrics::Counter {
    match event_type {
        "agent_started" => metrics::counter!(metric, "type" => "agent_started"),
        "agent_thinking" => metrics::counter!(metric, "type" => "agent_thinking"),
        "tool_executing" => metrics::counter!(metric, "type" => "tool_executing"),
        "tool_completed" => metrics::counter!(metric, "type" => "tool_completed"),
        "agent_message_delta" => metrics::counter!(metric, "type" => "agent_message_delta"),
        "agent_completed" => metrics::counter!(metric, "type" => "agent_completed"),
        "agent_error" => metrics::counter!(metric, "type" => "agent_error"),
        _ => metrics::counter!(metric, "type" => "other"),
    }
}

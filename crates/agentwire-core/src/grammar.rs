//! The run grammar of SPEC §3, as a checker every producer of run events goes through.
//!
//! ```text
//! agent_started
//!   (agent_thinking | tool_executing … tool_completed | agent_message_delta)*
//! agent_completed | agent_error          ← exactly one terminal event
//! ```

use std::collections::HashMap;

use foldhash::quality::RandomState;

use crate::EventKind;

/// Why an event does not fit its run's grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrammarError {
    /// The first event of a run must be `agent_started`.
    #[error("the run has not started: its first event must be agent_started, got {got}")]
    NotStarted {
        /// The offending event type.
        got: &'static str,
    },
    /// `agent_started` came twice.
    #[error("the run has already started: agent_started may appear once")]
    AlreadyStarted,
    /// An event came after the terminal event.
    #[error("the run has already ended: no {got} may follow its terminal event")]
    Finished {
        /// The offending event type.
        got: &'static str,
    },
    /// A `tool_executing` reused an open or finished `call_id`.
    #[error("call_id {call_id:?} is already used in this run: every tool call needs its own")]
    DuplicateCall {
        /// The reused id.
        call_id: String,
    },
    /// A `tool_completed` names no open call.
    #[error("tool_completed for call_id {call_id:?} has no open tool_executing")]
    UnknownCall {
        /// The unknown id.
        call_id: String,
    },
    /// A `tool_completed` names a different tool than its `tool_executing`.
    #[error(
        "tool_completed for call_id {call_id:?} names tool {got:?}, but the call was {expected:?}"
    )]
    ToolMismatch {
        /// The call.
        call_id: String,
        /// The tool of the `tool_executing`.
        expected: String,
        /// The tool of the `tool_completed`.
        got: String,
    },
    /// A terminal event came while tool calls were still open.
    #[error("the run cannot end while tool calls are open: complete {open:?} first")]
    OpenToolCalls {
        /// The open call ids.
        open: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Running,
    Finished,
}

/// Tracks one run and accepts only the events its grammar allows next.
///
/// `check` changes the state only when it accepts, so a rejected event can be dropped and the
/// run goes on.
#[derive(Debug, Clone)]
pub struct RunGrammar {
    phase: Phase,
    /// call_id → (tool, still open)
    // foldhash, seeded per process like the bridge's maps: SipHash here was most of the cost of
    // a tool call's two grammar checks.
    calls: HashMap<String, (String, bool), RandomState>,
}

impl Default for RunGrammar {
    fn default() -> Self {
        Self::new()
    }
}

impl RunGrammar {
    /// A run that has not started.
    pub fn new() -> Self {
        Self {
            phase: Phase::NotStarted,
            calls: HashMap::default(),
        }
    }

    /// Accepts `kind` as the run's next event, or says why it does not fit.
    ///
    /// # Errors
    /// A [`GrammarError`] naming the rule the event breaks; the state is unchanged then.
    pub fn check(&mut self, kind: &EventKind) -> Result<(), GrammarError> {
        let got = kind.type_name();
        match self.phase {
            Phase::Finished => return Err(GrammarError::Finished { got }),
            Phase::NotStarted if !matches!(kind, EventKind::AgentStarted(_)) => {
                return Err(GrammarError::NotStarted { got });
            }
            _ => {}
        }
        match kind {
            EventKind::AgentStarted(_) => {
                if self.phase == Phase::Running {
                    return Err(GrammarError::AlreadyStarted);
                }
                self.phase = Phase::Running;
            }
            EventKind::AgentThinking(_) | EventKind::AgentMessageDelta(_) => {}
            EventKind::ToolExecuting(t) => {
                if self.calls.contains_key(&t.call_id) {
                    return Err(GrammarError::DuplicateCall {
                        call_id: t.call_id.clone(),
                    });
                }
                self.calls.insert(t.call_id.clone(), (t.tool.clone(), true));
            }
            EventKind::ToolCompleted(t) => match self.calls.get_mut(&t.call_id) {
                Some((tool, open @ true)) => {
                    if *tool != t.tool {
                        return Err(GrammarError::ToolMismatch {
                            call_id: t.call_id.clone(),
                            expected: tool.clone(),
                            got: t.tool.clone(),
                        });
                    }
                    *open = false;
                }
                _ => {
                    return Err(GrammarError::UnknownCall {
                        call_id: t.call_id.clone(),
                    });
                }
            },
            EventKind::AgentCompleted(_) | EventKind::AgentError(_) => {
                let open = self.open_calls();
                if !open.is_empty() {
                    return Err(GrammarError::OpenToolCalls {
                        open: open.into_iter().map(|(id, _)| id).collect(),
                    });
                }
                self.phase = Phase::Finished;
            }
        }
        Ok(())
    }

    /// The open tool calls as `(call_id, tool)`, sorted by call id.
    pub fn open_calls(&self) -> Vec<(String, String)> {
        let mut open: Vec<_> = self
            .calls
            .iter()
            .filter(|(_, (_, open))| *open)
            .map(|(id, (tool, _))| (id.clone(), tool.clone()))
            .collect();
        open.sort();
        open
    }

    /// Whether `agent_started` was accepted.
    pub fn is_started(&self) -> bool {
        self.phase != Phase::NotStarted
    }

    /// Whether the terminal event was accepted.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn started() -> EventKind {
        EventKind::AgentStarted(AgentStarted { input: None })
    }
    fn exec(id: &str) -> EventKind {
        EventKind::ToolExecuting(ToolExecuting {
            call_id: id.into(),
            tool: "t".into(),
            args: json!({}),
        })
    }
    fn done(id: &str) -> EventKind {
        EventKind::ToolCompleted(ToolCompleted {
            call_id: id.into(),
            tool: "t".into(),
            ok: true,
            result: None,
            error: None,
            duration_ms: 0,
        })
    }
    fn completed() -> EventKind {
        EventKind::AgentCompleted(AgentCompleted {
            result: json!(null),
            duration_ms: 0,
            usage: None,
            model: None,
        })
    }
    fn thinking() -> EventKind {
        EventKind::AgentThinking(AgentThinking {
            thought: "x".into(),
            step: None,
        })
    }

    #[test]
    fn accepts_the_golden_path_with_overlapping_calls() {
        let mut g = RunGrammar::new();
        for k in [
            started(),
            thinking(),
            exec("a"),
            exec("b"),
            done("b"),
            done("a"),
            completed(),
        ] {
            g.check(&k).unwrap();
        }
        assert!(g.is_finished());
    }

    #[test]
    fn rejects_out_of_grammar_events() {
        let mut g = RunGrammar::new();
        assert!(matches!(
            g.check(&thinking()),
            Err(GrammarError::NotStarted { .. })
        ));
        g.check(&started()).unwrap();
        assert_eq!(g.check(&started()), Err(GrammarError::AlreadyStarted));
        assert!(matches!(
            g.check(&done("x")),
            Err(GrammarError::UnknownCall { .. })
        ));
        g.check(&exec("a")).unwrap();
        assert!(matches!(
            g.check(&exec("a")),
            Err(GrammarError::DuplicateCall { .. })
        ));
        assert!(matches!(
            g.check(&completed()),
            Err(GrammarError::OpenToolCalls { .. })
        ));
        g.check(&done("a")).unwrap();
        assert!(matches!(
            g.check(&done("a")),
            Err(GrammarError::UnknownCall { .. })
        ));
        g.check(&completed()).unwrap();
        assert!(matches!(
            g.check(&thinking()),
            Err(GrammarError::Finished { .. })
        ));
    }

    fn arb_kind() -> impl Strategy<Value = EventKind> {
        prop_oneof![
            Just(started()),
            Just(thinking()),
            (0u8..4).prop_map(|i| exec(&i.to_string())),
            (0u8..4).prop_map(|i| done(&i.to_string())),
            Just(completed()),
        ]
    }

    proptest! {
        /// Whatever a producer sends, the accepted subsequence is always a valid run prefix:
        /// started first, every completion matches an open call, nothing after the end.
        #[test]
        fn accepted_events_always_form_a_valid_prefix(seq in proptest::collection::vec(arb_kind(), 0..40)) {
            let mut g = RunGrammar::new();
            let mut accepted = Vec::new();
            for k in &seq {
                if g.check(k).is_ok() {
                    accepted.push(k.clone());
                }
            }
            let mut open = std::collections::HashSet::new();
            let mut used = std::collections::HashSet::new();
            for (i, k) in accepted.iter().enumerate() {
                match k {
                    EventKind::AgentStarted(_) => prop_assert_eq!(i, 0),
                    EventKind::ToolExecuting(t) => {
                        prop_assert!(used.insert(t.call_id.clone()));
                        open.insert(t.call_id.clone());
                    }
                    EventKind::ToolCompleted(t) => prop_assert!(open.remove(&t.call_id)),
                    EventKind::AgentCompleted(_) => {
                        prop_assert!(open.is_empty());
                        prop_assert_eq!(i, accepted.len() - 1);
                    }
                    _ => prop_assert!(i > 0),
                }
            }
        }
    }
}

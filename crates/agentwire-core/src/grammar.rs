//! The run grammar (docs/protocol.md), as a checker every producer of run events goes through.
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

/// One tool call of a run.
#[derive(Debug, Clone)]
struct Call {
    call_id: String,
    tool: String,
    open: bool,
}

/// Calls a run makes before its calls are looked up through a hash index rather than a scan: a
/// typical run makes a few, and a scan of a few costs less than hashing and a table to allocate.
const INDEXED_FROM: usize = 16;

/// Tracks one run and accepts only the events its grammar allows next.
///
/// Two ways to use it:
/// - [`check`](Self::check) accepts an event and advances the run at once;
/// - [`accept`](Self::accept) checks an event *without* changing the run and returns an
///   [`Accepted`] step, which [`commit`](Self::commit) applies later — once the event is safely
///   in its stream. A step that is never committed leaves the run as it was, so an event the
///   stream refused can be retried, or the run ended another way.
#[derive(Debug, Clone)]
pub struct RunGrammar {
    phase: Phase,
    /// The run's tool calls, in the order they opened.
    calls: Vec<Call>,
    /// call_id → index in `calls`, once the run has made [`INDEXED_FROM`] calls (foldhash,
    /// seeded per process like the bridge's maps): a run of many calls is not scanned per event.
    index: Option<HashMap<String, usize, RandomState>>,
}

/// An event [`RunGrammar::accept`] found to fit, not yet applied: pass it to
/// [`RunGrammar::commit`] on the same grammar, with no other commit in between.
#[derive(Debug)]
#[must_use = "an accepted step changes nothing until it is committed"]
pub struct Accepted(Step);

/// A step [`RunGrammar::commit`] applied, which [`RunGrammar::undo`] can take back.
#[derive(Debug)]
pub struct Committed(Undo);

#[derive(Debug)]
enum Undo {
    Nothing,
    Phase(Phase),
    /// Drop the newest call.
    Open,
    /// Open the call at this index again.
    Close(usize),
}

#[derive(Debug)]
enum Step {
    Start,
    Continue,
    Open { call_id: String, tool: String },
    Close(usize),
    Finish,
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
            calls: Vec::new(),
            index: None,
        }
    }

    /// Where the call `call_id` is in `calls`.
    fn find(&self, call_id: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(call_id).copied(),
            None => self.calls.iter().position(|c| c.call_id == call_id),
        }
    }

    /// Accepts `kind` as the run's next event and advances the run, or says why it does not fit.
    ///
    /// # Errors
    /// A [`GrammarError`] naming the rule the event breaks; the state is unchanged then.
    pub fn check(&mut self, kind: &EventKind) -> Result<(), GrammarError> {
        let step = self.accept(kind)?;
        let _ = self.commit(step);
        Ok(())
    }

    /// Whether `kind` fits as the run's next event, without changing the run.
    ///
    /// # Errors
    /// A [`GrammarError`] naming the rule the event breaks.
    pub fn accept(&self, kind: &EventKind) -> Result<Accepted, GrammarError> {
        let got = kind.type_name();
        match self.phase {
            Phase::Finished => return Err(GrammarError::Finished { got }),
            Phase::NotStarted if !matches!(kind, EventKind::AgentStarted(_)) => {
                return Err(GrammarError::NotStarted { got });
            }
            _ => {}
        }
        let step = match kind {
            EventKind::AgentStarted(_) if self.phase == Phase::Running => {
                return Err(GrammarError::AlreadyStarted);
            }
            EventKind::AgentStarted(_) => Step::Start,
            EventKind::AgentThinking(_) | EventKind::AgentMessageDelta(_) => Step::Continue,
            EventKind::ToolExecuting(t) => {
                if self.find(&t.call_id).is_some() {
                    return Err(GrammarError::DuplicateCall {
                        call_id: t.call_id.clone(),
                    });
                }
                Step::Open {
                    call_id: t.call_id.clone(),
                    tool: t.tool.clone(),
                }
            }
            EventKind::ToolCompleted(t) => {
                let Some(index) = self.find(&t.call_id).filter(|&i| self.calls[i].open) else {
                    return Err(GrammarError::UnknownCall {
                        call_id: t.call_id.clone(),
                    });
                };
                if self.calls[index].tool != t.tool {
                    return Err(GrammarError::ToolMismatch {
                        call_id: t.call_id.clone(),
                        expected: self.calls[index].tool.clone(),
                        got: t.tool.clone(),
                    });
                }
                Step::Close(index)
            }
            EventKind::AgentCompleted(_) | EventKind::AgentError(_) => {
                if self.calls.iter().any(|c| c.open) {
                    return Err(GrammarError::OpenToolCalls {
                        open: self.open_calls().into_iter().map(|(id, _)| id).collect(),
                    });
                }
                Step::Finish
            }
        };
        Ok(Accepted(step))
    }

    /// Applies a step [`Self::accept`] returned for this grammar.
    pub fn commit(&mut self, accepted: Accepted) -> Committed {
        Committed(match accepted.0 {
            Step::Start => {
                self.phase = Phase::Running;
                Undo::Phase(Phase::NotStarted)
            }
            Step::Continue => Undo::Nothing,
            Step::Open { call_id, tool } => {
                let at = self.calls.len();
                if let Some(index) = &mut self.index {
                    index.insert(call_id.clone(), at);
                } else if at + 1 >= INDEXED_FROM {
                    let mut index: HashMap<_, _, _> = self
                        .calls
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.call_id.clone(), i))
                        .collect();
                    index.insert(call_id.clone(), at);
                    self.index = Some(index);
                }
                self.calls.push(Call {
                    call_id,
                    tool,
                    open: true,
                });
                Undo::Open
            }
            Step::Close(index) => {
                if let Some(call) = self.calls.get_mut(index) {
                    call.open = false;
                }
                Undo::Close(index)
            }
            Step::Finish => {
                self.phase = Phase::Finished;
                Undo::Phase(Phase::Running)
            }
        })
    }

    /// Takes back a committed step: the run is as it was before it. Steps are taken back newest
    /// first — `committed` must be the newest step not taken back yet — as when events handed to
    /// a stream turn out not stored (the newest ones first).
    pub fn undo(&mut self, committed: Committed) {
        match committed.0 {
            Undo::Nothing => {}
            Undo::Phase(phase) => self.phase = phase,
            Undo::Open => {
                if let (Some(call), Some(index)) = (self.calls.pop(), &mut self.index) {
                    index.remove(&call.call_id);
                }
            }
            Undo::Close(index) => {
                if let Some(call) = self.calls.get_mut(index) {
                    call.open = true;
                }
            }
        }
    }

    /// The open tool calls as `(call_id, tool)`, sorted by call id.
    pub fn open_calls(&self) -> Vec<(String, String)> {
        let mut open: Vec<_> = self
            .calls
            .iter()
            .filter(|c| c.open)
            .map(|c| (c.call_id.clone(), c.tool.clone()))
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
mod tests;

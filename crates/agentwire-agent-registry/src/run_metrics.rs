//! The executor's metric handles, registered once per agent and per tool.

use std::collections::HashMap;

use foldhash::quality::RandomState;
use std::sync::{Arc, RwLock};

use metrics::{Counter, Histogram};

/// Runs started (after `agent_started` was accepted), by agent.
const RUNS_STARTED: &str = "agentwire_runs_started_total";
/// Runs ended, by agent and outcome.
const RUNS_FINISHED: &str = "agentwire_runs_finished_total";
/// Run durations from start to terminal event, by agent and outcome.
const RUN_DURATION: &str = "agentwire_run_duration_seconds";
/// Tool call durations, by tool and success.
const TOOL_DURATION: &str = "agentwire_tool_call_duration_seconds";

/// The outcomes a run ends with, in the order [`AgentMetrics`] holds their handles.
const OUTCOMES: [&str; 4] = ["completed", "failed", "cancelled", "timeout"];

/// One agent's handles.
#[derive(Debug)]
pub(crate) struct AgentMetrics {
    pub(crate) started: Counter,
    finished: [(Counter, Histogram); 4],
}

impl AgentMetrics {
    /// The `finished` counter and duration histogram of `outcome` (one of [`OUTCOMES`]).
    pub(crate) fn finished(&self, outcome: &str) -> &(Counter, Histogram) {
        let i = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(1);
        &self.finished[i]
    }
}

/// Handles by agent and tool name, made on first use and kept, so a run only adds to resolved
/// handles (`metrics::counter!` with a label value that is not a literal builds its labels and
/// looks its key up on every call). Names come from the registry, so the maps stay as small as
/// it is.
#[derive(Debug, Default)]
pub(crate) struct RunMetrics {
    // foldhash: both maps are read on every run; seeded per process.
    agents: RwLock<HashMap<Arc<str>, Arc<AgentMetrics>, RandomState>>,
    /// `[ok=false, ok=true]` per tool.
    tools: RwLock<HashMap<Arc<str>, Arc<[Histogram; 2]>, RandomState>>,
}

impl RunMetrics {
    pub(crate) fn agent(&self, agent: &str) -> Arc<AgentMetrics> {
        if let Some(m) = read(&self.agents).get(agent) {
            return m.clone();
        }
        let agent: Arc<str> = Arc::from(agent);
        let made = Arc::new(AgentMetrics {
            started: metrics::counter!(RUNS_STARTED, "agent" => agent.clone()),
            finished: OUTCOMES.map(|outcome| {
                (
                    metrics::counter!(RUNS_FINISHED, "agent" => agent.clone(), "outcome" => outcome),
                    metrics::histogram!(RUN_DURATION, "agent" => agent.clone(), "outcome" => outcome),
                )
            }),
        });
        write(&self.agents).entry(agent).or_insert(made).clone()
    }

    pub(crate) fn tool_duration(&self, tool: &str, ok: bool) -> Histogram {
        if let Some(h) = read(&self.tools).get(tool) {
            return h[usize::from(ok)].clone();
        }
        let name: Arc<str> = Arc::from(tool);
        let made = Arc::new(
            ["false", "true"]
                .map(|ok| metrics::histogram!(TOOL_DURATION, "tool" => name.clone(), "ok" => ok)),
        );
        write(&self.tools).entry(name).or_insert(made)[usize::from(ok)].clone()
    }
}

// A panic while holding these locks cannot leave the maps inconsistent (inserts only).
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

//! The run grammar against a plain model of its rules, and `undo`.

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

#[test]
fn an_accepted_step_changes_nothing_until_committed() {
    let mut g = RunGrammar::new();
    g.check(&started()).unwrap();
    g.check(&exec("a")).unwrap();
    let close = g.accept(&done("a")).unwrap();
    assert_eq!(g.open_calls().len(), 1);
    // Not committed: the call is still open, so the run cannot end yet.
    assert!(g.accept(&completed()).is_err());
    let _ = g.commit(close);
    let finish = g.accept(&completed()).unwrap();
    assert!(!g.is_finished());
    let _ = g.commit(finish);
    assert!(g.is_finished());
}

fn arb_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        Just(started()),
        Just(thinking()),
        (0u8..40).prop_map(|i| exec(&i.to_string())),
        (0u8..40).prop_map(|i| done(&i.to_string())),
        Just(completed()),
    ]
}

proptest! {
    /// Whatever a producer sends, the accepted subsequence is always a valid run prefix:
    /// started first, every completion matches an open call, nothing after the end.
    #[test]
    fn accepted_events_always_form_a_valid_prefix(seq in proptest::collection::vec(arb_kind(), 0..120)) {
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

proptest! {
    /// The grammar accepts exactly what a plain model of the rules accepts, event by event,
    /// for runs of few calls (found by a scan) and of many (found through the index).
    #[test]
    fn accepts_exactly_what_the_rules_allow(seq in proptest::collection::vec(arb_kind(), 0..160)) {
        let mut g = RunGrammar::new();
        let (mut started, mut finished) = (false, false);
        let mut open = std::collections::HashSet::new();
        let mut used = std::collections::HashSet::new();
        for k in &seq {
            let allowed = !finished && match k {
                EventKind::AgentStarted(_) => !started,
                EventKind::ToolExecuting(t) => started && !used.contains(&t.call_id),
                EventKind::ToolCompleted(t) => started && open.contains(&t.call_id),
                EventKind::AgentCompleted(_) => started && open.is_empty(),
                _ => started,
            };
            prop_assert_eq!(g.check(k).is_ok(), allowed, "{:?}", k);
            if allowed {
                match k {
                    EventKind::AgentStarted(_) => started = true,
                    EventKind::ToolExecuting(t) => {
                        used.insert(t.call_id.clone());
                        open.insert(t.call_id.clone());
                    }
                    EventKind::ToolCompleted(t) => {
                        open.remove(&t.call_id);
                    }
                    EventKind::AgentCompleted(_) => finished = true,
                    _ => {}
                }
            }
        }
        let mut want: Vec<_> = open.into_iter().collect();
        want.sort();
        let got: Vec<_> = g.open_calls().into_iter().map(|(id, _)| id).collect();
        prop_assert_eq!(got, want);
    }
}

proptest! {
    /// Taking back the newest steps, newest first, leaves the run exactly as if they had
    /// never been committed — across the scan and the index (up to 160 events).
    #[test]
    fn undo_takes_a_run_back_to_an_earlier_prefix(
        seq in proptest::collection::vec(arb_kind(), 0..160),
        keep in 0usize..160,
    ) {
        let mut g = RunGrammar::new();
        let mut steps = Vec::new();
        let mut accepted = Vec::new();
        for k in &seq {
            if let Ok(step) = g.accept(k) {
                steps.push(g.commit(step));
                accepted.push(k.clone());
            }
        }
        let keep = keep.min(accepted.len());
        while steps.len() > keep {
            g.undo(steps.pop().unwrap());
        }
        let mut fresh = RunGrammar::new();
        for k in &accepted[..keep] {
            prop_assert!(fresh.check(k).is_ok());
        }
        prop_assert_eq!(g.open_calls(), fresh.open_calls());
        prop_assert_eq!(g.is_started(), fresh.is_started());
        prop_assert_eq!(g.is_finished(), fresh.is_finished());
        for k in &seq {
            prop_assert_eq!(g.accept(k).is_ok(), fresh.accept(k).is_ok(), "{:?}", k);
        }
    }
}

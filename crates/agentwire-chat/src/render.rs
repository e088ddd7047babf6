//! The readable timeline: one line per event, the streamed answer on one growing line.

use std::io::{self, Write};

use anstyle::{AnsiColor, Style};
use serde_json::Value;

/// Longest argument or result shown, in characters; the rest is cut with `…`.
const MAX_VALUE_CHARS: usize = 200;

/// Writes frames as a timeline to `out`, with colour only when `colour` is set (a terminal).
#[derive(Debug)]
pub(crate) struct Timeline<W> {
    out: W,
    colour: bool,
    /// The run whose answer line is open (deltas append to it without a newline).
    open_answer: Option<String>,
}

impl<W: Write> Timeline<W> {
    pub(crate) fn new(out: W, colour: bool) -> Self {
        Self {
            out,
            colour,
            open_answer: None,
        }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.colour {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }

    /// Ends an open answer line, so the next line starts on its own.
    fn end_answer(&mut self) -> io::Result<()> {
        if self.open_answer.take().is_some() {
            writeln!(self.out)?;
        }
        Ok(())
    }

    /// A line that is not an event: connection status, errors, gaps.
    pub(crate) fn note(&mut self, text: &str) -> io::Result<()> {
        self.end_answer()?;
        let line = self.paint(Style::new().italic(), &format!("-- {text}"));
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }

    /// One frame from the server.
    pub(crate) fn frame(&mut self, frame: &Value) -> io::Result<()> {
        let kind = frame["type"].as_str().unwrap_or("");
        let data = &frame["data"];
        match kind {
            "agent_message_delta" => return self.delta(frame),
            "connection_established" | "ack" | "pong" => return Ok(()),
            "replay_gap" => {
                return self.note(&format!(
                    "events {}..={} are no longer in history (replay gap)",
                    data["from_seq"], data["to_seq"]
                ));
            }
            "error" => {
                let text = format!(
                    "error {}: {}",
                    frame["code"].as_str().unwrap_or("?"),
                    frame["message"].as_str().unwrap_or("")
                );
                self.end_answer()?;
                let line = self.paint(AnsiColor::Red.on_default(), &text);
                writeln!(self.out, "{line}")?;
                return self.out.flush();
            }
            _ => {}
        }
        let body = match kind {
            "agent_started" => self.paint(
                Style::new().bold(),
                &format!(
                    "{} started: {}  (run {})",
                    frame["agent"].as_str().unwrap_or("?"),
                    data["input"].as_str().unwrap_or(""),
                    short_id(frame["run_id"].as_str().unwrap_or(""))
                ),
            ),
            "agent_thinking" => self.paint(
                AnsiColor::Yellow.on_default(),
                &format!("  thinking: {}", data["thought"].as_str().unwrap_or("")),
            ),
            "tool_executing" => self.paint(
                AnsiColor::Cyan.on_default(),
                &format!(
                    "  → {}({})",
                    data["tool"].as_str().unwrap_or("?"),
                    shown(&data["args"])
                ),
            ),
            "tool_completed" => self.tool_completed(data),
            "agent_completed" => self.paint(
                AnsiColor::Green.on_default().bold(),
                &format!(
                    "completed in {}: {}",
                    duration(&data["duration_ms"]),
                    shown(&data["result"])
                ),
            ),
            "agent_error" => self.paint(
                AnsiColor::Red.on_default().bold(),
                &format!(
                    "failed ({}) after {}: {}",
                    data["code"].as_str().unwrap_or("?"),
                    duration(&data["duration_ms"]),
                    data["message"].as_str().unwrap_or("")
                ),
            ),
            other => format!("{other}: {}", shown(data)),
        };
        self.end_answer()?;
        let seq = self.seq(frame);
        writeln!(self.out, "{seq} {body}")?;
        self.out.flush()
    }

    fn tool_completed(&self, data: &Value) -> String {
        let tool = data["tool"].as_str().unwrap_or("?");
        if data["ok"].as_bool() == Some(true) {
            self.paint(
                AnsiColor::Cyan.on_default(),
                &format!(
                    "  ← {tool}: {}  ({})",
                    shown(&data["result"]),
                    duration(&data["duration_ms"])
                ),
            )
        } else {
            self.paint(
                AnsiColor::Red.on_default(),
                &format!(
                    "  ← {tool} failed: {}  ({})",
                    data["error"].as_str().unwrap_or(""),
                    duration(&data["duration_ms"])
                ),
            )
        }
    }

    fn delta(&mut self, frame: &Value) -> io::Result<()> {
        let run = frame["run_id"].as_str().unwrap_or("").to_owned();
        let text = frame["data"]["delta"].as_str().unwrap_or("");
        if self.open_answer.as_deref() != Some(run.as_str()) {
            self.end_answer()?;
            let seq = self.seq(frame);
            write!(self.out, "{seq}   answer: ")?;
            self.open_answer = Some(run);
        }
        write!(self.out, "{text}")?;
        self.out.flush()
    }

    /// `#7`, dim, padded so the timeline lines up.
    fn seq(&self, frame: &Value) -> String {
        let seq = format!("{:>4}", format!("#{}", frame["seq"]));
        self.paint(Style::new().dimmed(), &seq)
    }

    /// Ends the output cleanly (an answer line still open gets its newline).
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        self.end_answer()?;
        self.out.flush()
    }
}

/// A run id shortened for display: `r_8t7fq2xk`.
fn short_id(id: &str) -> &str {
    id.get(..10).unwrap_or(id)
}

/// A JSON value for a person: strings as they are, anything else as compact JSON; cut when long.
fn shown(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_VALUE_CHARS {
        let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// A duration in whole milliseconds as the server sends it: `0` means under a millisecond.
pub(crate) fn duration(ms: &Value) -> String {
    match ms.as_u64() {
        Some(0) => "<1 ms".into(),
        Some(ms) if ms < 10_000 => format!("{ms} ms"),
        Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
        None => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(frames: &[Value]) -> String {
        let mut timeline = Timeline::new(Vec::new(), false);
        for f in frames {
            timeline.frame(f).unwrap();
        }
        timeline.finish().unwrap();
        String::from_utf8(timeline.out).unwrap()
    }

    #[test]
    fn a_run_reads_as_a_timeline_with_the_answer_on_one_line() {
        let run = |seq: u64, kind: &str, data: Value| json!({"type": kind, "seq": seq, "run_id": "r_0123456789abcdef", "agent": "demo", "data": data});
        let out = render(&[
            run(1, "agent_started", json!({"input": "6*7?"})),
            run(2, "agent_thinking", json!({"thought": "multiply"})),
            run(
                3,
                "tool_executing",
                json!({"call_id": "c_1", "tool": "calc", "args": {"e": "6*7"}}),
            ),
            run(
                4,
                "tool_completed",
                json!({"call_id": "c_1", "tool": "calc", "ok": true, "result": 42, "duration_ms": 0}),
            ),
            run(
                5,
                "agent_message_delta",
                json!({"message_id": "m", "delta": "It is "}),
            ),
            run(
                6,
                "agent_message_delta",
                json!({"message_id": "m", "delta": "42."}),
            ),
            run(
                7,
                "agent_completed",
                json!({"result": "It is 42.", "duration_ms": 12}),
            ),
        ]);
        assert_eq!(
            out,
            "  #1 demo started: 6*7?  (run r_01234567)\n\
             \x20 #2   thinking: multiply\n\
             \x20 #3   → calc({\"e\":\"6*7\"})\n\
             \x20 #4   ← calc: 42  (<1 ms)\n\
             \x20 #5   answer: It is 42.\n\
             \x20 #7 completed in 12 ms: It is 42.\n"
        );
    }

    #[test]
    fn colour_only_when_asked_and_seqs_are_dim() {
        let frame = json!({"type": "agent_thinking", "seq": 3, "data": {"thought": "x"}});
        let mut plain = Timeline::new(Vec::new(), false);
        plain.frame(&frame).unwrap();
        assert!(!String::from_utf8(plain.out).unwrap().contains('\x1b'));
        let mut coloured = Timeline::new(Vec::new(), true);
        coloured.frame(&frame).unwrap();
        let text = String::from_utf8(coloured.out).unwrap();
        let dim = Style::new().dimmed();
        assert!(text.starts_with(&format!("{dim}  #3{dim:#}")), "{text:?}");
    }

    #[test]
    fn sub_millisecond_and_long_durations_read_as_such() {
        assert_eq!(duration(&json!(0)), "<1 ms");
        assert_eq!(duration(&json!(7)), "7 ms");
        assert_eq!(duration(&json!(12_345)), "12.3 s");
    }
}

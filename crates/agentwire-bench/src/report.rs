//! The result of one scenario: a readable table or one JSON object.

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

/// A scenario's parameters and measured figures, in insertion order.
#[derive(Debug, Clone)]
pub struct Report {
    /// `agentwire`, `baseline`, … (from `--label`).
    pub label: String,
    /// `runs`, `fanout`, `idle`, `startup`.
    pub scenario: String,
    /// What was asked for.
    pub params: Vec<(String, Value)>,
    /// What was measured.
    pub metrics: Vec<(String, Value)>,
}

impl Report {
    pub(crate) fn new(label: &str, scenario: &str) -> Self {
        Self {
            label: label.to_owned(),
            scenario: scenario.to_owned(),
            params: Vec::new(),
            metrics: Vec::new(),
        }
    }

    pub(crate) fn param(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.params.push((key.to_owned(), value.into()));
        self
    }

    pub(crate) fn metric(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.metrics.push((key.to_owned(), value.into()));
        self
    }

    /// Adds `<prefix>_p50_us`, `_p99_us`, `_p999_us`, `_max_us`, `_samples`.
    pub(crate) fn latency(&mut self, prefix: &str, h: &Histogram<u64>) -> &mut Self {
        self.metric(&format!("{prefix}_p50_us"), h.value_at_quantile(0.5));
        self.metric(&format!("{prefix}_p99_us"), h.value_at_quantile(0.99));
        self.metric(&format!("{prefix}_p999_us"), h.value_at_quantile(0.999));
        self.metric(&format!("{prefix}_max_us"), h.max());
        self.metric(&format!("{prefix}_samples"), h.len())
    }

    /// One JSON object: `{label, scenario, params:{…}, metrics:{…}}`.
    pub fn to_json(&self) -> Value {
        let map = |kv: &[(String, Value)]| {
            kv.iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Map<_, _>>()
        };
        json!({
            "label": self.label,
            "scenario": self.scenario,
            "params": map(&self.params),
            "metrics": map(&self.metrics),
        })
    }

    /// A two-column table for people.
    pub fn to_table(&self) -> String {
        let mut out = format!("{} — {}\n", self.scenario, self.label);
        let rows = self.params.iter().chain(&self.metrics);
        let width = rows.clone().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (i, (k, v)) in rows.enumerate() {
            if i == self.params.len() {
                out.push_str(&format!("{}\n", "-".repeat(width + 14)));
            }
            let v = match v {
                Value::Number(n) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap_or(0.0)),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("{k:<width$}  {v:>12}\n"));
        }
        out
    }
}

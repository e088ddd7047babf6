use std::time::SystemTime;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::Tool;

/// `clock` tool: the current UTC time.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClockTool;

#[async_trait]
impl Tool for ClockTool {
    fn name(&self) -> &str {
        "clock"
    }

    fn description(&self) -> &str {
        "The current time in UTC (RFC 3339) and as Unix milliseconds."
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {}, "additionalProperties": false})
    }

    async fn call(&self, _args: Value) -> Result<Value, String> {
        let now = SystemTime::now();
        Ok(json!({
            "utc": humantime::format_rfc3339_seconds(now).to_string(),
            "unix_ms": agentwire_core::unix_millis(),
        }))
    }
}

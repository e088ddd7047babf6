//! `OpenAiAgentConfig`: the `[agents.<name>]` settings of an agent with `kind = "openai"`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The settings of one OpenAI-compatible agent (`[agents.<name>]` with `kind = "openai"`).
///
/// It never holds the API key itself, only the name of the environment variable that does
/// (`api_key_env`), so printing or serializing a config cannot leak a key.
///
/// ```
/// let config: agentwire_llm::OpenAiAgentConfig = serde_json::from_value(serde_json::json!({
///     "base_url": "http://127.0.0.1:11434/v1",
///     "model": "qwen2.5:7b",
///     "tools": ["calculator"],
///     "request_timeout": "30s",
/// })).unwrap();
/// assert_eq!(config.max_steps, 8);
/// assert_eq!(config.request_timeout, std::time::Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiAgentConfig {
    /// The API root, e.g. `https://api.openai.com/v1`; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// The model name the server knows.
    pub model: String,
    /// The NAME of the environment variable that holds the API key (sent as a bearer token);
    /// no key is sent without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// One line shown in the agent list (`GET /v1/agents`, the demo page's picker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The system message that starts every conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Registered tools offered to the model as functions; each must exist at startup. A name
    /// ending in `*` offers every tool whose name starts with the rest (`mcp:files/*`: every
    /// tool of MCP server `files`), resolved when each run starts.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Model turns per run; one more ends the run with `agent_error {code:"max_steps"}`.
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// Sampling temperature; the server's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Most tokens one model turn may generate; the server's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Longest wait for the response to start, and between two chunks of its stream.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Longest wait for the TCP (and TLS) connection to the model server.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Attempts per model turn when the server answers 429 or 5xx or cannot be reached
    /// (1 = no retry). Then the run ends with `llm_unavailable`.
    #[serde(default = "default_retry_attempts")]
    pub retry_attempts: u32,
    /// The first pause between attempts; it doubles each time. A `Retry-After` header wins.
    #[serde(default = "default_retry_backoff", with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Tool calls of one model turn that run at once.
    #[serde(default = "default_parallel_tools")]
    pub parallel_tools: usize,
    /// Thread memory kept per user and thread.
    #[serde(default)]
    pub memory: MemoryConfig,
}

/// `[agents.<name>.memory]`: how much of a thread the agent remembers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Earlier turns (a user message with everything the agent did for it) kept per thread.
    pub max_turns: usize,
    /// Bytes of earlier turns (as JSON) sent back to the model; the oldest go first.
    pub max_bytes: usize,
    /// A thread nobody continued for this long is forgotten.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            max_turns: 20,
            max_bytes: 64 * 1024,
            ttl: Duration::from_secs(24 * 3600),
        }
    }
}

fn default_max_steps() -> u32 {
    8
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_retry_attempts() -> u32 {
    3
}
fn default_retry_backoff() -> Duration {
    Duration::from_millis(500)
}
fn default_parallel_tools() -> usize {
    4
}

impl OpenAiAgentConfig {
    /// A config with every default, for `model` at `base_url`.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key_env: None,
            description: None,
            system_prompt: None,
            tools: Vec::new(),
            max_steps: default_max_steps(),
            temperature: None,
            max_tokens: None,
            request_timeout: default_request_timeout(),
            connect_timeout: default_connect_timeout(),
            retry_attempts: default_retry_attempts(),
            retry_backoff: default_retry_backoff(),
            parallel_tools: default_parallel_tools(),
            memory: MemoryConfig::default(),
        }
    }

    /// Checks the values that do not depend on anything else.
    ///
    /// # Errors
    /// The key at fault and what is wrong with it.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(format!(
                "base_url {:?} must start with http:// or https://",
                self.base_url
            ));
        }
        if self.model.trim().is_empty() {
            return Err("model is empty".into());
        }
        if self.max_steps == 0 {
            return Err("max_steps must be at least 1".into());
        }
        if self.retry_attempts == 0 {
            return Err("retry_attempts must be at least 1 (1 = no retry)".into());
        }
        if self.parallel_tools == 0 {
            return Err("parallel_tools must be at least 1".into());
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err("request_timeout and connect_timeout must be positive".into());
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(format!("temperature {t} is outside 0..=2"));
        }
        if self.memory.max_turns == 0 || self.memory.max_bytes == 0 || self.memory.ttl.is_zero() {
            return Err(
                "memory.max_turns, memory.max_bytes and memory.ttl must be positive".into(),
            );
        }
        Ok(())
    }

    /// `{base_url}/{path}` with exactly one slash between.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url.trim_end_matches('/'), path)
    }
}

/// An API key read from the environment. Its `Debug` never shows it, and it is sent only as a
/// sensitive header (which `reqwest` and `tracing` do not print).
#[derive(Clone)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl ApiKey {
    /// Reads the key from the variable `config.api_key_env` names; `None` without one.
    ///
    /// # Errors
    /// The variable is named but not set or empty (the message names the variable, never a value).
    pub fn from_env(config: &OpenAiAgentConfig) -> Result<Option<Self>, String> {
        let Some(var) = &config.api_key_env else {
            return Ok(None);
        };
        match std::env::var(var) {
            Ok(key) if !key.trim().is_empty() => Ok(Some(ApiKey(key.trim().to_owned()))),
            _ => Err(format!(
                "api_key_env names the environment variable {var}, which is not set or empty"
            )),
        }
    }

    /// The `Authorization` header value, marked sensitive.
    pub(crate) fn header(&self) -> reqwest::header::HeaderValue {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.0))
            .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("Bearer invalid"));
        value.set_sensitive(true);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_shows_in_debug() {
        let key = ApiKey("sk-secret-123".into());
        assert!(!format!("{key:?}").contains("sk-secret"));
        assert!(!format!("{:?}", key.header()).contains("sk-secret"));
    }

    #[test]
    fn a_missing_key_variable_is_named_without_a_value() {
        let mut config = OpenAiAgentConfig::new("http://x", "m");
        config.api_key_env = Some("AGENTWIRE_TEST_SURELY_UNSET_KEY".into());
        let e = ApiKey::from_env(&config).unwrap_err();
        assert!(e.contains("AGENTWIRE_TEST_SURELY_UNSET_KEY"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let mut config = OpenAiAgentConfig::new("localhost:8080", "m");
        assert!(config.validate().unwrap_err().contains("base_url"));
        config.base_url = "http://localhost:8080/v1/".into();
        assert_eq!(config.url("models"), "http://localhost:8080/v1/models");
        config.max_steps = 0;
        assert!(config.validate().unwrap_err().contains("max_steps"));
    }
}

//! `LlmError`: why a model turn failed, and the `agent_error.code` each failure reports.

use agentwire_agent_registry::AgentError;

/// What went wrong talking to the model server. Each variant maps to one `agent_error.code`
/// ([`LlmError::code`]); no message ever contains the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// 401 or 403: the key is missing, wrong or not allowed this model (`llm_auth`).
    #[error(
        "the model server refused the credentials (HTTP {status}): {body}; check the key in the variable api_key_env names"
    )]
    Auth {
        /// The HTTP status.
        status: u16,
        /// The start of the server's answer.
        body: String,
    },
    /// 429, 5xx or no connection, on every attempt (`llm_unavailable`).
    #[error("the model server is unavailable after {attempts} attempt(s): {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// No answer, or no chunk, within `request_timeout` (`llm_timeout`).
    #[error("the model server did not answer in time: {0}")]
    Timeout(String),
    /// Another 4xx: the server rejected the request, e.g. an unknown model (`llm_rejected`).
    #[error("the model server rejected the request (HTTP {status}): {body}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The start of the server's answer.
        body: String,
    },
    /// The stream broke off, ended without a `finish_reason`, or held something that is not
    /// a Chat Completions chunk (`llm_protocol`).
    #[error("the model's stream is broken: {0}")]
    Protocol(String),
    /// More model turns than `max_steps` (`max_steps`).
    #[error("the model did not finish within max_steps = {0} turns")]
    MaxSteps(u32),
}

impl LlmError {
    /// The `agent_error.code` of a run that ends with this error.
    pub fn code(&self) -> &'static str {
        match self {
            LlmError::Auth { .. } => "llm_auth",
            LlmError::Unavailable { .. } => "llm_unavailable",
            LlmError::Timeout(_) => "llm_timeout",
            LlmError::Rejected { .. } => "llm_rejected",
            LlmError::Protocol(_) => "llm_protocol",
            LlmError::MaxSteps(_) => "max_steps",
        }
    }
}

impl From<LlmError> for AgentError {
    fn from(e: LlmError) -> Self {
        AgentError::Coded {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// `e` with its chain of causes (`reqwest` puts the useful part, e.g. "Connection refused", in
/// the source).
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

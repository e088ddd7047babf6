//! Validation of the settings that depend on each other, in phase `Config`.

use agentwire_core::MIN_EVENT_BYTES;

use crate::config::{AgentDefinition, AgentwireConfig, AuthMode};
use crate::{Phase, StartupError};

impl AgentwireConfig {
    /// Checks the settings that depend on each other.
    ///
    /// # Errors
    /// A [`StartupError`] in phase `Config` with the key and a hint.
    pub fn validate(&self) -> Result<(), StartupError> {
        self.validate_auth()?;
        self.validate_limits()?;
        self.validate_sections()
    }

    /// Auth: the secret's length, and dev auth only on loopback.
    fn validate_auth(&self) -> Result<(), StartupError> {
        // A secret is checked whenever one is set: dev mode verifies tokens with it too.
        if let Some(secret) = &self.auth.jwt_secret
            && secret.len() < 32
        {
            return bad(
                "auth.jwt_secret",
                format!(
                    "the secret is {} bytes; HS256 needs at least 32",
                    secret.len()
                ),
                "use a longer random secret, e.g. `openssl rand -hex 32`",
            );
        }
        match self.auth.mode {
            AuthMode::Jwt => {
                if self.auth.jwt_secret.is_none() && self.auth.jwks_url.is_none() {
                    return bad(
                        "auth.jwt_secret",
                        "auth.mode is jwt but neither auth.jwt_secret nor auth.jwks_url is set"
                            .into(),
                        "set AGENTWIRE_AUTH__JWT_SECRET to a random string of at least 32 bytes",
                    );
                }
            }
            AuthMode::Dev => {
                if !self.listen.ip().is_loopback() && !self.allow_insecure_dev {
                    return bad(
                        "auth.mode",
                        format!(
                            "dev auth trusts ?user= and would be reachable on {}",
                            self.listen
                        ),
                        "use --auth jwt with a secret, listen on 127.0.0.1, or pass --allow-insecure-dev for a throwaway setup",
                    );
                }
            }
        }
        Ok(())
    }

    /// Rates and per-user stream caps: 0 would refuse every frame, request or stream.
    fn validate_rates(&self) -> Result<(), StartupError> {
        if self.limits.messages_per_second == 0 || self.limits.burst == 0 {
            return bad(
                "limits.messages_per_second",
                "messages_per_second and burst must be at least 1".into(),
                "the defaults are 20 and 40",
            );
        }
        if self.limits.http_requests_per_second == 0 || self.limits.http_burst == 0 {
            return bad(
                "limits.http_requests_per_second",
                "http_requests_per_second and http_burst must be at least 1".into(),
                "the defaults are 20 and 40",
            );
        }
        if self.limits.publish_per_second == 0 || self.limits.publish_burst == 0 {
            return bad(
                "limits.publish_per_second",
                "publish_per_second and publish_burst must be at least 1".into(),
                "the defaults are 500 and 1000",
            );
        }
        if self.limits.max_http_streams_per_user == 0 {
            return bad(
                "limits.max_http_streams_per_user",
                "must be at least 1: 0 would refuse every stream".into(),
                "the default is 8",
            );
        }
        Ok(())
    }

    /// Limits and heartbeat: values that would make the server refuse everything.
    fn validate_limits(&self) -> Result<(), StartupError> {
        if self.limits.max_frame_bytes < 256 {
            return bad(
                "limits.max_frame_bytes",
                "must be at least 256".into(),
                "the default is 65536",
            );
        }
        if self.limits.queue_bytes < 4096 {
            return bad(
                "limits.queue_bytes",
                "must be at least 4096".into(),
                "the default is 1048576 (1 MiB)",
            );
        }
        if self.limits.max_runs_per_user == 0 {
            return bad(
                "limits.max_runs_per_user",
                "must be at least 1: 0 would refuse every run".into(),
                "the default is 8",
            );
        }
        self.validate_rates()?;
        if self.auth.max_token_lifetime.is_zero() {
            return bad(
                "auth.max_token_lifetime",
                "must be positive".into(),
                "the default is 24h",
            );
        }
        if self.limits.max_connections == 0 || self.limits.max_connections_per_ip == 0 {
            return bad(
                "limits.max_connections",
                "max_connections and max_connections_per_ip must be at least 1".into(),
                "the defaults are 100000 and 1000",
            );
        }
        if self.limits.header_read_timeout.is_zero() || self.limits.body_read_timeout.is_zero() {
            return bad(
                "limits.header_read_timeout",
                "header_read_timeout and body_read_timeout must be positive".into(),
                "the defaults are 10s and 30s",
            );
        }
        if self.limits.write_timeout.is_zero() {
            return bad(
                "limits.write_timeout",
                "write_timeout must be positive".into(),
                "the default is 30s",
            );
        }
        self.validate_bytes()?;
        if self.heartbeat.interval.is_zero() || self.heartbeat.timeout <= self.heartbeat.interval {
            return bad(
                "heartbeat.timeout",
                "heartbeat.interval must be positive and heartbeat.timeout longer than it".into(),
                "the defaults are 20s and 60s",
            );
        }
        Ok(())
    }

    /// The byte bounds per event, per user's history and per `/v1/events` page, which must hold
    /// the largest event. A connection queue smaller than it is only warned about: such a queue
    /// was valid before `limits.max_event_bytes` existed.
    fn validate_bytes(&self) -> Result<(), StartupError> {
        let max_event = self.limits.max_event_bytes;
        if max_event < MIN_EVENT_BYTES {
            return bad(
                "limits.max_event_bytes",
                format!(
                    "must be at least {MIN_EVENT_BYTES}, so that a run can always end (its agent_error)"
                ),
                "the default is 262144 (256 KiB)",
            );
        }
        if self.limits.queue_bytes < max_event {
            tracing::warn!(
                queue_bytes = self.limits.queue_bytes,
                max_event_bytes = max_event,
                "limits.queue_bytes is below limits.max_event_bytes: an event larger than the queue closes every connection it goes to with 4008"
            );
        }
        let holders = [
            ("limits.events_page_bytes", self.limits.events_page_bytes),
            ("history.max_bytes", self.history.max_bytes),
        ];
        for (key, bytes) in holders {
            if bytes < max_event {
                return bad(
                    key,
                    format!(
                        "is {bytes}, less than limits.max_event_bytes ({max_event}): the largest event would not fit"
                    ),
                    "raise it, or lower limits.max_event_bytes",
                );
            }
        }
        Ok(())
    }

    /// The optional sections: API and metrics keys, Durable Streams, MCP servers, agents.
    fn validate_sections(&self) -> Result<(), StartupError> {
        if let Err((component, cause)) = self.durable_streams.validate(self.listen, &self.broker) {
            return bad(
                component,
                cause,
                "listen on 127.0.0.1, or turn insecure_no_auth off",
            );
        }
        if let Some(key) = &self.api_key
            && key.len() < 16
        {
            return bad(
                "api_key",
                "the API key is shorter than 16 bytes".into(),
                "use a long random key",
            );
        }
        for (name, server) in &self.mcp {
            if let Err(e) = server.check(name) {
                return bad(&format!("mcp.{name}"), e.cause().to_owned(), e.hint());
            }
        }
        for (name, definition) in &self.agents.defined {
            let AgentDefinition::Openai(agent) = definition;
            let component = format!("agents.{name}");
            if agentwire_core::UserId::new(name.as_str()).is_err() {
                return bad(
                    &component,
                    format!("{name:?} is not a usable agent name"),
                    "use 1 to 128 characters of A-Z a-z 0-9 _ - . : @ |",
                );
            }
            if let Err(cause) = agent.validate() {
                return bad(&component, cause, "see docs/llm-agents.md for each key");
            }
        }
        if let Some(token) = &self.metrics.token
            && token.len() < 16
        {
            return bad(
                "metrics.token",
                "the metrics token is shorter than 16 bytes".into(),
                "use a long random token, or leave metrics.token unset for an open /metrics",
            );
        }
        Ok(())
    }
}

/// A refused setting: phase `Config`, the key as `component`, what is wrong and what to do.
fn bad(component: &str, cause: String, hint: &str) -> Result<(), StartupError> {
    Err(StartupError::new(Phase::Config, component, cause, hint))
}

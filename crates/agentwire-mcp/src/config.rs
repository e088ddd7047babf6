//! `[mcp.<name>]`: how to reach one MCP server.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::McpError;

/// Every configured MCP server, by name (`[mcp.<name>]`).
pub type McpConfig = BTreeMap<String, McpServerConfig>;

/// One MCP server: a command to run (stdio transport) or a URL (streamable HTTP transport).
///
/// The command comes only from this configuration, never from a user or a model; it is run
/// directly (no shell), and a tool's arguments go to the server as JSON, never to a command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpServerConfig {
    /// Program and arguments of a stdio server, e.g. `["node", "server.js", "--root", "/srv"]`.
    pub command: Option<Vec<String>>,
    /// Endpoint of a streamable HTTP server, e.g. `http://127.0.0.1:9000/mcp` (plain HTTP: the
    /// client is built without TLS).
    pub url: Option<String>,
    /// Variables set for a stdio server, on top of a minimal inherited environment (`PATH`,
    /// `HOME`, `USER`, `LOGNAME`, `SHELL`, `TERM`, `TMPDIR`, `LANG`): agentwire's own variables,
    /// which hold its secrets, are not passed on.
    pub env: BTreeMap<String, String>,
    /// Longest one tool call (and the connection's `initialize`) may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// `true`: a server that fails at startup is skipped with a warning instead of stopping it.
    pub optional: bool,
}

impl Default for McpServerConfig {
    fn default() -> Self {
        Self {
            command: None,
            url: None,
            env: BTreeMap::new(),
            timeout: Duration::from_secs(30),
            optional: false,
        }
    }
}

/// How a server is reached, once the configuration is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A child process speaking JSON-RPC on its stdin/stdout.
    Stdio { program: String, args: Vec<String> },
    /// Streamable HTTP.
    Http { url: String },
}

/// The variables a stdio server inherits from agentwire's environment (the set the official MCP
/// SDKs pass by default); everything else it gets only from `env`.
pub(crate) const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TMPDIR", "LANG",
];

impl McpServerConfig {
    /// A stdio server running `command`.
    pub fn stdio<I, S>(command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            command: Some(command.into_iter().map(Into::into).collect()),
            ..Self::default()
        }
    }

    /// A streamable HTTP server at `url`.
    pub fn http(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            ..Self::default()
        }
    }

    /// The same with another per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings of server `name` without connecting.
    ///
    /// # Errors
    /// [`McpError::Config`] saying what is wrong.
    pub fn check(&self, name: &str) -> Result<(), McpError> {
        self.endpoint(name).map(|_| ())
    }

    /// Checks the settings of server `name` and returns how to reach it.
    pub(crate) fn endpoint(&self, name: &str) -> Result<Endpoint, McpError> {
        let bad = |reason: String| McpError::Config {
            server: name.to_owned(),
            reason,
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad(
                "a server name may hold only ASCII letters, digits, `_` and `-` (it is part of tool names like mcp:<server>/<tool>)".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(bad("timeout must be longer than zero".into()));
        }
        match (&self.command, &self.url) {
            (Some(command), None) => {
                let (program, args) = command
                    .split_first()
                    .ok_or_else(|| bad("command is empty; give the program and its arguments, e.g. [\"node\", \"server.js\"]".into()))?;
                if program.trim().is_empty() {
                    return Err(bad("command's program is empty".into()));
                }
                Ok(Endpoint::Stdio {
                    program: program.clone(),
                    args: args.to_vec(),
                })
            }
            (None, Some(url)) => {
                if url.starts_with("https://") {
                    return Err(bad(format!(
                        "url {url:?}: this build's MCP client speaks plain http:// only (no TLS); reach the server through a local TLS proxy or run it on stdio"
                    )));
                }
                if !url.starts_with("http://") {
                    return Err(bad(format!("url {url:?} is not an http:// URL")));
                }
                if !self.env.is_empty() {
                    return Err(bad(
                        "env applies to a stdio server (command), not to a url".into()
                    ));
                }
                Ok(Endpoint::Http { url: url.clone() })
            }
            (Some(_), Some(_)) => Err(bad("set either command or url, not both".into())),
            (None, None) => Err(bad(
                "set command (a stdio server) or url (a streamable HTTP server)".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_needs_exactly_one_transport() {
        assert!(McpServerConfig::default().endpoint("files").is_err());
        let both = McpServerConfig {
            url: Some("http://127.0.0.1:1/mcp".into()),
            ..McpServerConfig::stdio(["node"])
        };
        assert!(both.endpoint("files").is_err());
        assert_eq!(
            McpServerConfig::stdio(["node", "s.js"])
                .endpoint("files")
                .unwrap(),
            Endpoint::Stdio {
                program: "node".into(),
                args: vec!["s.js".into()]
            }
        );
        assert!(
            McpServerConfig::stdio(Vec::<String>::new())
                .endpoint("files")
                .is_err()
        );
        assert!(McpServerConfig::http("ftp://x").endpoint("files").is_err());
        let https = McpServerConfig::http("https://x/mcp").endpoint("files");
        assert!(https.unwrap_err().to_string().contains("no TLS"));
    }

    #[test]
    fn names_must_fit_in_a_tool_name() {
        let config = McpServerConfig::http("http://127.0.0.1:1/mcp");
        assert!(config.endpoint("my-files_2").is_ok());
        assert!(config.endpoint("a/b").is_err());
        assert!(config.endpoint("").is_err());
    }

    #[test]
    fn toml_reads_every_key() {
        let config: McpConfig = toml_like(
            r#"{"files": {"command": ["node", "server.js"], "env": {"LOG_LEVEL": "warn"},
                "timeout": "5s", "optional": true}}"#,
        );
        let files = &config["files"];
        assert_eq!(files.timeout, Duration::from_secs(5));
        assert!(files.optional);
        assert_eq!(files.env["LOG_LEVEL"], "warn");
    }

    fn toml_like(json: &str) -> McpConfig {
        serde_json::from_str(json).unwrap()
    }
}

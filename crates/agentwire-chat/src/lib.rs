//! `agentwire chat`: a terminal client for agentwire's WebSocket protocol, for people trying a
//! server and for scripts.
//!
//! It opens `/ws` as a user, sends each line read from standard input as a `user_message`, and
//! prints every run of that user live as a readable timeline: the run starting, its thinking
//! steps, tool calls with their arguments and results, the streamed answer on one growing line,
//! and the completion or error, each with its `seq` (dim on a terminal; no colour otherwise or
//! with `NO_COLOR`). When the connection drops it reconnects by itself with `?last_seq&epoch`
//! and prints `resumed (N replayed)`; nothing is shown twice. `--json` prints the raw frames,
//! one per line, for scripts (notes go to standard error).
//!
//! When input ends (end of file, or `/quit`), the client waits for the runs in progress to
//! finish and exits, so `echo 'what is 6*7?' | agentwire chat --user alice` prints one run.
//! `/cancel` cancels the runs in progress.
//!
//! ```no_run
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     chat: agentwire_chat::ChatArgs,
//! }
//!
//! # async fn run() {
//! let cli = Cli::parse_from(["chat", "--user", "alice", "--agent", "echo"]);
//! let code = agentwire_chat::main(cli.chat).await;
//! # let _ = code;
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod render;
mod session;

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Args;
use tokio::sync::mpsc;

use crate::render::Timeline;
use crate::session::{Output, Session};

/// The flags of `agentwire chat`.
#[derive(Args, Clone, Debug)]
pub struct ChatArgs {
    /// Your user id, for a server with dev auth (`?user=`). A JWT server ignores it: use --token.
    #[arg(long, short)]
    pub user: Option<String>,
    /// The agent that answers (the server's default, `demo`, when not given).
    #[arg(long, short)]
    pub agent: Option<String>,
    /// The server: http(s):// or ws(s)://, with or without the /ws path.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "AGENTWIRE_URL")]
    pub url: String,
    /// A JWT for a server with JWT auth (e.g. from `agentwire token alice`), sent as
    /// `Authorization: Bearer`.
    #[arg(long, env = "AGENTWIRE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// An extra request header, 'Name: value' (repeatable), for servers with their own auth.
    #[arg(long, short = 'H', value_name = "NAME: VALUE")]
    pub header: Vec<String>,
    /// Print the raw JSON frames, one per line, instead of the timeline.
    #[arg(long)]
    pub json: bool,
}

impl ChatArgs {
    /// The WebSocket URL of `/ws` on the server named by `--url`.
    pub fn ws_url(&self) -> String {
        let url = self.url.trim_end_matches('/');
        let url = if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if url.contains("://") {
            url.to_owned()
        } else {
            format!("ws://{url}")
        };
        let path_start = url.find("://").map_or(0, |i| i + 3);
        if url[path_start..].contains('/') {
            url
        } else {
            format!("{url}/ws")
        }
    }
}

/// Why the chat ended with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// A flag's value cannot be used.
    #[error("{0}")]
    Usage(String),
    /// The server refused the upgrade (HTTP 401 and the like).
    #[error("the server refused the connection (HTTP {status}): {message}{}", auth_hint(*status))]
    Refused {
        /// The HTTP status of the refusal.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server closed the connection for a reason retrying does not fix (1008).
    #[error("the server closed the connection ({code}): {reason}")]
    Closed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// No server answered at the URL within the patience.
    #[error("cannot reach {url}: {cause} (hint: is `agentwire serve` running there? pass --url)")]
    Unreachable {
        /// The WebSocket URL tried.
        url: String,
        /// The last connection error.
        cause: String,
    },
    /// Writing to the terminal failed.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
}

fn auth_hint(status: u16) -> &'static str {
    if status == 401 {
        " (hint: a dev-auth server wants --user NAME; a JWT server wants \
         --token \"$(agentwire token NAME)\" made with its secret)"
    } else {
        ""
    }
}

/// Runs `agentwire chat` on standard input and output; prints an error and fails on error.
pub async fn main(args: ChatArgs) -> ExitCode {
    match chat(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agentwire chat: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chat on standard input and output until input ends and every run finished.
///
/// # Errors
/// When no user or token is given, the server refuses the connection, closes it with 1008, or
/// cannot be reached for a while (10 s at first, 60 s after a drop).
pub async fn chat(args: ChatArgs) -> Result<(), ChatError> {
    if args.user.is_none() && args.token.is_none() && args.header.is_empty() {
        return Err(ChatError::Usage(
            "say who you are: --user NAME (dev auth) or --token JWT (jwt auth)".into(),
        ));
    }
    let stdout = std::io::stdout();
    let output = if args.json {
        Output::Json(stdout)
    } else {
        let colour = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Output::Timeline(Timeline::new(stdout, colour))
    };
    let (lines_tx, lines_rx) = mpsc::channel(64);
    // A plain thread, not tokio's stdin: a blocking read cannot be cancelled, and tokio's
    // runtime waits for its blocking pool on exit, so a refused chat would hang until Enter.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines_tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    Session::new(args, output).run(lines_rx).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        chat: ChatArgs,
    }

    #[test]
    fn the_url_may_be_http_or_ws_with_or_without_the_path() {
        for (given, want) in [
            ("http://127.0.0.1:8080", "ws://127.0.0.1:8080/ws"),
            ("https://example.org/", "wss://example.org/ws"),
            ("ws://h:1/ws", "ws://h:1/ws"),
            ("127.0.0.1:3000", "ws://127.0.0.1:3000/ws"),
            (
                "https://example.org/agentwire/ws",
                "wss://example.org/agentwire/ws",
            ),
        ] {
            let cli = Cli::parse_from(["chat", "--url", given]);
            assert_eq!(cli.chat.ws_url(), want, "{given}");
        }
    }
}

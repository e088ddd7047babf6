//! The connection loop: connect, send typed lines, show frames, resume after a drop.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::render::Timeline;
use crate::{ChatArgs, ChatError};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the first connection may keep failing (a server still starting), and how long a
/// dropped one may, before the client gives up.
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);
const RECONNECT_PATIENCE: Duration = Duration::from_secs(60);

/// What the client prints to: the timeline, or raw frames with notes on stderr.
pub(crate) enum Output<W: Write> {
    Timeline(Timeline<W>),
    Json(W),
}

impl<W: Write> Output<W> {
    fn note(&mut self, text: &str) -> std::io::Result<()> {
        match self {
            Output::Timeline(t) => t.note(text),
            Output::Json(_) => {
                eprintln!("-- {text}");
                Ok(())
            }
        }
    }

    fn frame(&mut self, raw: &str, frame: &Value) -> std::io::Result<()> {
        match self {
            Output::Timeline(t) => t.frame(frame),
            Output::Json(out) => {
                writeln!(out, "{raw}")?;
                out.flush()
            }
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        match self {
            Output::Timeline(t) => t.finish(),
            Output::Json(out) => out.flush(),
        }
    }
}

/// How one connection ended.
enum Ended {
    /// Input is closed and every run finished: the chat is over.
    Done,
    /// The connection dropped; reconnect and resume.
    Dropped(String),
}

/// The client's state across connections.
pub(crate) struct Session<W: Write> {
    args: ChatArgs,
    out: Output<W>,
    last_seq: u64,
    epoch: Option<String>,
    /// Message ids sent on this connection and not acknowledged yet.
    pending: HashSet<String>,
    /// Runs seen started and not ended.
    runs: HashSet<String>,
    /// Events still to come from the replay the server announced.
    replay_remaining: u64,
    /// Lines typed while no connection was up.
    queued: VecDeque<String>,
    input_closed: bool,
    next_id: u64,
}

impl<W: Write> Session<W> {
    pub(crate) fn new(args: ChatArgs, out: Output<W>) -> Self {
        Self {
            args,
            out,
            last_seq: 0,
            epoch: None,
            pending: HashSet::new(),
            runs: HashSet::new(),
            replay_remaining: 0,
            queued: VecDeque::new(),
            input_closed: false,
            next_id: 0,
        }
    }

    /// Runs the chat until input ends and every run finished, reconnecting after drops.
    pub(crate) async fn run(mut self, mut lines: mpsc::Receiver<String>) -> Result<(), ChatError> {
        let mut connected_before = false;
        let mut outage_began = Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            let request = self.request()?;
            match tokio_tungstenite::connect_async(request).await {
                Ok((socket, _)) => {
                    backoff = Duration::from_millis(100);
                    connected_before = true;
                    match self.converse(socket, &mut lines).await? {
                        Ended::Done => return Ok(self.out.finish()?),
                        Ended::Dropped(why) => {
                            self.out
                                .note(&format!("connection lost ({why}); reconnecting"))?;
                            outage_began = Instant::now();
                        }
                    }
                }
                Err(WsError::Http(response)) => {
                    let body = response.body().as_deref().unwrap_or_default();
                    return Err(ChatError::Refused {
                        status: response.status().as_u16(),
                        message: error_message(body),
                    });
                }
                Err(e) => {
                    let patience = if connected_before {
                        RECONNECT_PATIENCE
                    } else {
                        CONNECT_PATIENCE
                    };
                    if outage_began.elapsed() > patience {
                        return Err(ChatError::Unreachable {
                            url: self.args.ws_url(),
                            cause: e.to_string(),
                        });
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// The upgrade request: user, token, extra headers and, after a drop, where to resume.
    fn request(&self) -> Result<Request, ChatError> {
        let mut query = Vec::new();
        if let Some(user) = &self.args.user {
            query.push(format!("user={}", encode(user)));
        }
        if self.last_seq > 0 {
            query.push(format!("last_seq={}", self.last_seq));
            if let Some(epoch) = &self.epoch {
                query.push(format!("epoch={}", encode(epoch)));
            }
        }
        let mut url = self.args.ws_url();
        if !query.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&query.join("&"));
        }
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| ChatError::Usage(format!("--url {}: {e}", self.args.url)))?;
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(token) = &self.args.token {
            headers.push(("authorization".into(), format!("Bearer {token}")));
        }
        for header in &self.args.header {
            let (name, value) = header.split_once(':').ok_or_else(|| {
                ChatError::Usage(format!("--header {header:?}: write it as 'Name: value'"))
            })?;
            headers.push((name.trim().into(), value.trim().into()));
        }
        for (name, value) in headers {
            let bad = |e: &dyn std::fmt::Display| ChatError::Usage(format!("header {name}: {e}"));
            let name_h = HeaderName::try_from(name.as_str()).map_err(|e| bad(&e))?;
            let value_h = HeaderValue::try_from(value).map_err(|e| bad(&e))?;
            request.headers_mut().insert(name_h, value_h);
        }
        Ok(request)
    }

    async fn converse(
        &mut self,
        mut socket: Socket,
        lines: &mut mpsc::Receiver<String>,
    ) -> Result<Ended, ChatError> {
        // Acks of messages sent on a lost connection never come; their runs, if they started,
        // come back in the replay.
        self.pending.clear();
        while let Some(line) = self.queued.pop_front() {
            if let Err(e) = self.send_line(&mut socket, &line).await {
                self.queued.push_front(line);
                return Ok(Ended::Dropped(e.to_string()));
            }
        }
        loop {
            if self.input_closed
                && self.pending.is_empty()
                && self.runs.is_empty()
                && self.replay_remaining == 0
            {
                let _ = socket.close(None).await;
                return Ok(Ended::Done);
            }
            tokio::select! {
                message = socket.next() => match message {
                    Some(Ok(Message::Text(text))) => self.on_frame(text.as_str())?,
                    Some(Ok(Message::Close(frame))) => return closed(frame),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Ok(Ended::Dropped(e.to_string())),
                    None => return Ok(Ended::Dropped("the server closed the stream".into())),
                },
                line = lines.recv(), if !self.input_closed => match line {
                    Some(line) if line.trim() == "/quit" => {
                        let _ = socket.close(None).await;
                        return Ok(Ended::Done);
                    }
                    Some(line) => {
                        if let Err(e) = self.send_line(&mut socket, &line).await {
                            self.queued.push_back(line);
                            return Ok(Ended::Dropped(e.to_string()));
                        }
                    }
                    None => self.input_closed = true,
                },
            }
        }
    }

    /// Sends a typed line: `/cancel` cancels the runs in progress, anything else is a question.
    async fn send_line(&mut self, socket: &mut Socket, line: &str) -> Result<(), WsError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        let mut frames = Vec::new();
        if line == "/cancel" {
            for run in &self.runs {
                self.next_id += 1;
                frames.push(
                    json!({"type": "cancel", "id": format!("k{}", self.next_id), "run_id": run}),
                );
            }
        } else {
            self.next_id += 1;
            let id = format!("c{}", self.next_id);
            let mut frame = json!({"type": "user_message", "id": id, "content": line});
            if let Some(agent) = &self.args.agent {
                frame["agent"] = json!(agent);
            }
            self.pending.insert(id);
            frames.push(frame);
        }
        for frame in frames {
            socket.send(Message::text(frame.to_string())).await?;
        }
        Ok(())
    }

    fn on_frame(&mut self, raw: &str) -> Result<(), ChatError> {
        let Ok(frame) = serde_json::from_str::<Value>(raw) else {
            return Ok(self.out.note(&format!("not JSON: {raw}"))?);
        };
        let data = &frame["data"];
        match frame["type"].as_str().unwrap_or("") {
            "connection_established" => {
                let epoch = data["epoch"].as_str().map(str::to_owned);
                if self.epoch.is_some() && epoch != self.epoch {
                    // The stream was created anew (it expired): its seqs start over.
                    self.last_seq = 0;
                    self.out
                        .note("the stream expired on the server and starts over")?;
                }
                self.epoch = epoch;
                if let Some(replayed) = data["resumed"]["replayed"].as_u64() {
                    self.replay_remaining = replayed;
                    self.out.frame(raw, &frame)?;
                    return Ok(self.out.note(&format!("resumed ({replayed} replayed)"))?);
                }
                if self.last_seq == 0 {
                    let user = data["user_id"].as_str().unwrap_or("?");
                    self.out.frame(raw, &frame)?;
                    return Ok(self.out.note(&format!(
                        "connected as {user}; type a question and press Enter (/cancel, /quit)"
                    ))?);
                }
            }
            "ack" | "error" => {
                if let Some(id) = frame["id"].as_str() {
                    // A user_message's ack comes before its run's first event: the run is in
                    // progress from here, or input ending now would end the chat too early.
                    if self.pending.remove(id) && frame["type"] == "ack" {
                        self.runs
                            .extend(frame["run_id"].as_str().map(str::to_owned));
                    }
                }
            }
            "agent_started" => {
                self.runs
                    .extend(frame["run_id"].as_str().map(str::to_owned));
            }
            "agent_completed" | "agent_error" => {
                if let Some(run) = frame["run_id"].as_str() {
                    self.runs.remove(run);
                }
            }
            _ => {}
        }
        if let Some(seq) = frame["seq"].as_u64() {
            if seq <= self.last_seq {
                return Ok(()); // already shown before the drop
            }
            self.last_seq = seq;
            self.replay_remaining = self.replay_remaining.saturating_sub(1);
        }
        Ok(self.out.frame(raw, &frame)?)
    }
}

/// A close frame: a policy close (1008: limits, auth) ends the chat; anything else resumes.
fn closed(frame: Option<CloseFrame>) -> Result<Ended, ChatError> {
    let (code, reason) = frame
        .map(|f| (u16::from(f.code), f.reason.to_string()))
        .unwrap_or((1005, String::new()));
    if code == 1008 {
        return Err(ChatError::Closed { code, reason });
    }
    Ok(Ended::Dropped(format!("close {code}: {reason}")))
}

/// The `message` of an agentwire JSON error body, or the body itself.
fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.trim().to_owned())
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

//! `ChatClient`: one streamed `POST {base_url}/chat/completions` with retries, and the stream of
//! its chunks (SSE parsed by `eventsource-stream2`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use eventsource_stream2::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER};

use crate::error::describe;
use crate::wire::{ChatChunk, ChatRequest};
use crate::{ApiKey, LlmError, OpenAiAgentConfig};

/// The longest `Retry-After` honoured; a server asking for more is retried after this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The most of an error body quoted in a message.
const BODY_EXCERPT: usize = 300;

/// An HTTP client for one agent's model server.
#[derive(Debug, Clone)]
pub(crate) struct ChatClient {
    http: reqwest::Client,
    config: Arc<OpenAiAgentConfig>,
    key: Option<ApiKey>,
}

impl ChatClient {
    pub(crate) fn new(config: Arc<OpenAiAgentConfig>, key: Option<ApiKey>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| describe(&e))?;
        Ok(Self { http, config, key })
    }

    pub(crate) fn config(&self) -> &OpenAiAgentConfig {
        &self.config
    }

    /// `GET {base_url}/models`: whether the server answers with the key. Returns how many
    /// models it lists.
    pub(crate) async fn list_models(&self) -> Result<usize, LlmError> {
        let url = self.config.url("models");
        let mut request = self.http.get(&url);
        if let Some(key) = &self.key {
            request = request.header(AUTHORIZATION, key.header());
        }
        let response = tokio::time::timeout(self.config.request_timeout, request.send())
            .await
            .map_err(|_| {
                LlmError::Timeout(format!(
                    "GET {url}: no answer within {:?}",
                    self.config.request_timeout
                ))
            })?
            .map_err(|e| LlmError::Unavailable {
                attempts: 1,
                last: format!("GET {url}: {}", describe(&e)),
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = excerpt(response).await;
            return Err(match classify(status.as_u16(), body) {
                Err(e) => e,
                Ok(last) => LlmError::Unavailable {
                    attempts: 1,
                    last: format!("GET {url}: {last}"),
                },
            });
        }
        let listing: serde_json::Value = response.json().await.map_err(|e| {
            LlmError::Protocol(format!("GET {url} did not answer JSON: {}", describe(&e)))
        })?;
        Ok(listing["data"].as_array().map_or(0, Vec::len))
    }

    /// Opens the streamed completion, retrying 429, 5xx and unreachable servers with backoff
    /// (a `Retry-After` header wins) up to `retry_attempts` times.
    pub(crate) async fn stream(&self, body: &ChatRequest<'_>) -> Result<ChunkStream, LlmError> {
        let url = self.config.url("chat/completions");
        let attempts = self.config.retry_attempts.max(1);
        let timeout = self.config.request_timeout;
        let mut last = String::new();
        let mut timed_out = false;
        for attempt in 1..=attempts {
            let mut request = self.http.post(&url).json(body);
            if let Some(key) = &self.key {
                request = request.header(AUTHORIZATION, key.header());
            }
            let mut wait = None;
            match tokio::time::timeout(timeout, request.send()).await {
                Err(_) => {
                    timed_out = true;
                    last = format!("no response within request_timeout = {timeout:?}");
                }
                Ok(Err(e)) => {
                    timed_out = e.is_timeout();
                    last = describe(&e);
                }
                Ok(Ok(response)) if response.status().is_success() => {
                    return Ok(ChunkStream::new(response, timeout));
                }
                Ok(Ok(response)) => {
                    timed_out = false;
                    let status = response.status().as_u16();
                    wait = retry_after(response.headers());
                    let body = excerpt(response).await;
                    last = classify(status, body)?;
                }
            }
            tracing::debug!(attempt, attempts, cause = %last, "model request failed");
            if attempt < attempts {
                let backoff = self.config.retry_backoff * 2u32.saturating_pow(attempt - 1);
                tokio::time::sleep(wait.unwrap_or(backoff)).await;
            }
        }
        Err(if timed_out {
            LlmError::Timeout(format!("{last} (after {attempts} attempt(s))"))
        } else {
            LlmError::Unavailable { attempts, last }
        })
    }
}

/// The error for a non-success status: `Err` for one not worth retrying, `Ok(description)` for
/// 429 and 5xx.
fn classify(status: u16, body: String) -> Result<String, LlmError> {
    match status {
        401 | 403 => Err(LlmError::Auth { status, body }),
        429 | 500..=599 => Ok(format!("HTTP {status}: {body}")),
        _ => Err(LlmError::Rejected { status, body }),
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from model servers and is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| Duration::from_secs_f64(seconds).min(MAX_RETRY_AFTER))
}

/// The start of an error response's body, for the message.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < BODY_EXCERPT {
        match tokio::time::timeout(Duration::from_secs(2), response.chunk()).await {
            Ok(Ok(Some(chunk))) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let text: String = text.trim().chars().take(BODY_EXCERPT).collect();
    if text.is_empty() {
        "(empty body)".into()
    } else {
        text
    }
}

type EventStream =
    Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

/// The chunks of one streamed completion.
pub(crate) struct ChunkStream {
    events: EventStream,
    timeout: Duration,
    /// `timeout` from the latest call for an event. One timer for the whole stream, pushed back
    /// on every call: moving a registered deadline later does not touch tokio's timer wheel.
    idle: Pin<Box<tokio::time::Sleep>>,
    chunks: usize,
}

impl std::fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStream")
            .field("chunks", &self.chunks)
            .finish_non_exhaustive()
    }
}

impl ChunkStream {
    fn new(response: reqwest::Response, timeout: Duration) -> Self {
        Self {
            events: Box::pin(response.bytes_stream().eventsource()),
            timeout,
            idle: Box::pin(tokio::time::sleep(timeout)),
            chunks: 0,
        }
    }

    /// The next chunk; `None` at `data: [DONE]` or when the body ends.
    ///
    /// # Errors
    /// [`LlmError::Timeout`] when no event arrives within `request_timeout`;
    /// [`LlmError::Protocol`] when the connection breaks or a payload is not a chunk.
    pub(crate) async fn next(&mut self) -> Result<Option<ChatChunk>, LlmError> {
        loop {
            self.idle
                .as_mut()
                .reset(tokio::time::Instant::now() + self.timeout);
            let next = tokio::select! {
                biased;
                next = self.events.next() => next,
                () = self.idle.as_mut() => {
                    return Err(LlmError::Timeout(format!(
                        "no data for {:?} after {} chunk(s)",
                        self.timeout, self.chunks
                    )));
                }
            };
            let event = match next {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(LlmError::Protocol(format!(
                        "the stream broke off after {} chunk(s): {}",
                        self.chunks,
                        describe(&e)
                    )));
                }
                Some(Ok(event)) => event,
            };
            let data = event.data.trim();
            if data == "[DONE]" {
                return Ok(None);
            }
            if data.is_empty() {
                continue;
            }
            self.chunks += 1;
            let chunk: ChatChunk = serde_json::from_str(data).map_err(|e| {
                LlmError::Protocol(format!(
                    "chunk {} is not a Chat Completions chunk ({e}): {}",
                    self.chunks,
                    data.chars().take(120).collect::<String>()
                ))
            })?;
            if let Some(error) = &chunk.error {
                return Err(LlmError::Protocol(format!(
                    "the model server reported an error inside the stream: {}",
                    error
                        .to_string()
                        .chars()
                        .take(BODY_EXCERPT)
                        .collect::<String>()
                )));
            }
            return Ok(Some(chunk));
        }
    }

    /// Chunks read so far.
    pub(crate) fn chunks(&self) -> usize {
        self.chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, "100000".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    /// The chunks of `body`, delivered to the parser in pieces of `size` bytes.
    async fn chunks_of(body: &str, size: usize) -> Vec<Option<String>> {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> = body
            .as_bytes()
            .chunks(size)
            .map(|p| Ok(p.to_vec()))
            .collect();
        let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(pieces));
        let response = reqwest::Response::from(http::Response::new(stream));
        let mut chunks = ChunkStream::new(response, Duration::from_secs(10));
        let mut texts = Vec::new();
        while let Some(chunk) = chunks.next().await.unwrap() {
            texts.push(chunk.choices[0].delta.content.clone());
        }
        texts
    }

    #[tokio::test]
    async fn events_split_anywhere_in_the_body_are_reassembled() {
        // CRLF and LF line ends, a keep-alive comment, a UTF-8 character, one payload over two
        // `data:` lines (joined by a newline, which JSON reads as whitespace), then `[DONE]`.
        let body = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"h\u{e9}\"}}]}\r\n\r\n",
            ": keep-alive\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"llo\"},\n",
            "data: \"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let whole = vec![Some("h\u{e9}".to_owned()), Some("llo".to_owned())];
        for size in 1..=body.len() {
            assert_eq!(chunks_of(body, size).await, whole, "pieces of {size} bytes");
        }
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(401, "x".into()).unwrap_err().code(), "llm_auth");
        assert_eq!(classify(403, "x".into()).unwrap_err().code(), "llm_auth");
        assert_eq!(
            classify(404, "x".into()).unwrap_err().code(),
            "llm_rejected"
        );
        assert!(classify(429, "x".into()).is_ok());
        assert!(classify(503, "x".into()).is_ok());
    }
}

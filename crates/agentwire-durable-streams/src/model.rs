//! The requests a store executes and what it answers: the protocol's vocabulary, independent of
//! HTTP and of any storage.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::offset::{Offset, ReadFrom};

/// Who owns a stream or makes a request: `user:<id>`, or `anonymous` when auth is off for a
/// loopback conformance server. Only the owner reads or writes a stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner(pub String);

impl Owner {
    /// The owner of a user's streams.
    pub fn user(id: &str) -> Self {
        Self(format!("user:{id}"))
    }

    /// The single identity of an unauthenticated (loopback test) server.
    pub fn anonymous() -> Self {
        Self("anonymous".into())
    }
}

/// Who a request is ([`Owner`]) and until when its credentials hold: a live (SSE) read ends
/// then, and the client reconnects with fresh credentials and its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The owner the credentials prove.
    pub owner: Owner,
    /// When the credentials expire; `None` when they do not.
    pub expires_at: Option<std::time::SystemTime>,
}

impl From<Owner> for Caller {
    fn from(owner: Owner) -> Self {
        Self {
            owner,
            expires_at: None,
        }
    }
}

/// An absolute expiry: the header text as given, and the instant it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    /// The RFC 3339 text, echoed on HEAD.
    pub raw: String,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: i64,
}

/// Where a fork branches from its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkSpec {
    /// The source stream's path.
    pub source: String,
    /// The anchor offset as requested (`None`: the source's tail at creation).
    pub offset: Option<Offset>,
    /// `Stream-Fork-Sub-Offset`.
    pub sub_offset: u64,
}

/// The configuration a `PUT` compares for idempotent creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConfig {
    /// `Content-Type` as given (compared case-insensitively).
    pub content_type: String,
    /// `Stream-TTL` in seconds (sliding).
    pub ttl_secs: Option<u64>,
    /// `Stream-Expires-At`.
    pub expires_at: Option<Expiry>,
}

impl StreamConfig {
    /// Whether the stream holds JSON messages (PROTOCOL.md §9.1).
    pub fn is_json(&self) -> bool {
        media_type(&self.content_type) == "application/json"
    }

    /// Whether SSE data events carry text (`text/*`, JSON) rather than base64.
    pub fn is_text(&self) -> bool {
        let media = media_type(&self.content_type);
        media.starts_with("text/") || media == "application/json"
    }

    pub(crate) fn same_content_type(&self, other: &str) -> bool {
        media_type(&self.content_type) == media_type(other)
    }
}

/// The media type without parameters, lowercased: `Text/Plain; charset=utf-8` → `text/plain`.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// An idempotent producer's `(Producer-Id, Producer-Epoch, Producer-Seq)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerTuple {
    /// `Producer-Id`.
    pub id: String,
    /// `Producer-Epoch`.
    pub epoch: u64,
    /// `Producer-Seq`.
    pub seq: u64,
}

/// A `PUT`.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// Who creates it (becomes the owner).
    pub caller: Owner,
    /// Content type, TTL, expiry. `content_type` is `None` when the header was absent.
    pub content_type: Option<String>,
    /// `Stream-TTL`.
    pub ttl_secs: Option<u64>,
    /// `Stream-Expires-At`.
    pub expires_at: Option<Expiry>,
    /// `Stream-Closed: true`.
    pub closed: bool,
    /// Fork headers.
    pub fork: Option<ForkSpec>,
    /// Initial content.
    pub body: Bytes,
}

/// A `POST`.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// Who appends.
    pub caller: Owner,
    /// `Content-Type`, if sent.
    pub content_type: Option<String>,
    /// `Stream-Seq`.
    pub stream_seq: Option<String>,
    /// Producer headers, all three or none.
    pub producer: Option<ProducerTuple>,
    /// `Stream-Closed: true`.
    pub close: bool,
    /// The bytes to append (may be empty only with `close`).
    pub body: Bytes,
}

/// What a `PUT` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// `true`: 201; `false`: the stream existed with this configuration (200).
    pub new: bool,
    /// The stream's metadata after the call.
    pub info: StreamInfo,
}

/// What a `POST` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The tail before the call (where its data starts).
    pub from: Offset,
    /// The tail after the call.
    pub next: Offset,
    /// The stream is closed (by this call or before).
    pub closed: bool,
    /// A producer retry that changed nothing (204 with producer headers).
    pub duplicate: bool,
    /// For producer requests: `(epoch, highest accepted seq)` to echo.
    pub producer_ack: Option<(u64, u64)>,
}

/// `HEAD` metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Content type, TTL, expiry.
    pub config: StreamConfig,
    /// The tail offset.
    pub tail: Offset,
    /// Whether the stream is closed.
    pub closed: bool,
    /// An id unique to this stream's incarnation (ETags change when a path is re-created).
    pub incarnation: u64,
}

/// A read request.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    /// Who reads.
    pub caller: Owner,
    /// Where from.
    pub from: ReadFrom,
    /// At most this many bytes of payload (at least one message is always returned).
    pub max_bytes: usize,
}

/// What a read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadChunk {
    /// Stream metadata at read time.
    pub info: StreamInfo,
    /// Where the returned data starts.
    pub start: Offset,
    /// Where the next read starts.
    pub next: Offset,
    /// The data: raw byte pieces, or for JSON streams one entry per message.
    pub parts: Vec<Bytes>,
}

impl ReadChunk {
    /// Whether the read reached the tail.
    pub fn up_to_date(&self) -> bool {
        self.next >= self.info.tail
    }

    /// Whether the reader reached the end of a closed stream (EOF).
    pub fn at_eof(&self) -> bool {
        self.info.closed && self.up_to_date()
    }
}

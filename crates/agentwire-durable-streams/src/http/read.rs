//! `GET`: catch-up (§5.6), long-poll (§5.7); SSE is in `sse.rs`.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::*;
use crate::model::{Owner, ReadChunk, ReadRequest};
use crate::offset::{ReadFrom, next_cursor};

/// The read-mode query parameters.
#[derive(Debug)]
pub(super) struct ReadQuery {
    pub(super) from: ReadFrom,
    pub(super) live: Live,
    pub(super) cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Live {
    No,
    LongPoll,
    Sse,
}

impl ReadQuery {
    fn parse(query: &str) -> Result<Self, DsError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| DsError::bad(format!("malformed query string: {e}")))?;
        let mut offsets = pairs
            .iter()
            .filter(|(k, _)| k == "offset")
            .map(|(_, v)| v.as_str());
        let offset = offsets.next();
        if offsets.next().is_some() {
            return Err(DsError::bad("give one offset parameter"));
        }
        let value = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let live = match value("live").as_deref() {
            None => Live::No,
            Some("long-poll") => Live::LongPoll,
            Some("sse") => Live::Sse,
            Some(other) => {
                return Err(DsError::bad(format!(
                    "live={other:?}: use long-poll or sse"
                )));
            }
        };
        if live != Live::No && offset.is_none() {
            return Err(DsError::bad(
                "live reads need an offset (use -1 for the start or now for the tail)",
            ));
        }
        Ok(Self {
            from: ReadFrom::parse(offset)?,
            live,
            cursor: value("cursor"),
        })
    }
}

pub(super) async fn get(
    ds: &DurableStreams,
    path: &str,
    query: &str,
    request: &HeaderMap,
    caller: Owner,
    expires_at: Option<std::time::SystemTime>,
) -> Result<Response, DsError> {
    let query = ReadQuery::parse(query)?;
    let read = ReadRequest {
        caller,
        from: query.from,
        max_bytes: ds.config.max_read_bytes,
    };
    let chunk = ds.store.read(path, read.clone()).await?;
    match query.live {
        Live::No => Ok(catch_up(&chunk, query.from, request)),
        Live::LongPoll => long_poll(ds, path, read, chunk, query.cursor.as_deref()).await,
        Live::Sse => Ok(super::sse::respond(
            ds.clone(),
            path.to_owned(),
            read,
            chunk,
            query.cursor,
            expires_at,
        )),
    }
}

fn catch_up(chunk: &ReadChunk, from: ReadFrom, request: &HeaderMap) -> Response {
    let mut out = data_headers(chunk);
    if from == ReadFrom::Now {
        out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return respond(StatusCode::OK, out, body(chunk));
    }
    let etag = etag(chunk);
    if request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        set(&mut out, header::ETAG, &etag);
        return respond(StatusCode::NOT_MODIFIED, out, Bytes::new());
    }
    set(&mut out, header::ETAG, &etag);
    out.insert(header::CACHE_CONTROL, cache_control(chunk));
    respond(StatusCode::OK, out, body(chunk))
}

async fn long_poll(
    ds: &DurableStreams,
    path: &str,
    mut read: ReadRequest,
    mut chunk: ReadChunk,
    cursor: Option<&str>,
) -> Result<Response, DsError> {
    if chunk.parts.is_empty() && !chunk.info.closed {
        // At the tail of an open stream: wait once, then read what arrived.
        ds.store
            .wait(path, &read.caller, chunk.next, ds.config.long_poll_timeout)
            .await?;
        read.from = ReadFrom::At(chunk.next);
        chunk = ds.store.read(path, read).await?;
    }
    let mut out = data_headers(&chunk);
    if !chunk.at_eof() {
        set(&mut out, STREAM_CURSOR, &next_cursor(cursor));
    }
    if chunk.parts.is_empty() {
        out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        out.remove(header::CONTENT_TYPE);
        return Ok(respond(StatusCode::NO_CONTENT, out, Bytes::new()));
    }
    set(&mut out, header::ETAG, &etag(&chunk));
    out.insert(header::CACHE_CONTROL, cache_control(&chunk));
    Ok(respond(StatusCode::OK, out, body(&chunk)))
}

/// The headers of a data response: type, next offset, up-to-date, closed.
fn data_headers(chunk: &ReadChunk) -> HeaderMap {
    let mut out = HeaderMap::new();
    set(
        &mut out,
        header::CONTENT_TYPE,
        &chunk.info.config.content_type,
    );
    out.insert(STREAM_NEXT_OFFSET, chunk.next.header_value());
    if chunk.up_to_date() {
        out.insert(STREAM_UP_TO_DATE, HeaderValue::from_static("true"));
    }
    if chunk.at_eof() {
        out.insert(STREAM_CLOSED, HeaderValue::from_static("true"));
    }
    out
}

/// `"{incarnation}:{start}:{end}"`, with `:c` once the stream is closed (§10.1).
fn etag(chunk: &ReadChunk) -> String {
    let closed = if chunk.info.closed { ":c" } else { "" };
    format!(
        "\"{}:{}:{}{closed}\"",
        chunk.info.incarnation, chunk.start, chunk.next
    )
}

/// Data at an offset never changes, so a non-empty chunk is cacheable (privately: streams are
/// per user); an empty answer at the tail is not, or a cache would hide new data.
fn cache_control(chunk: &ReadChunk) -> HeaderValue {
    if chunk.parts.is_empty() {
        HeaderValue::from_static("no-store")
    } else {
        HeaderValue::from_static("private, max-age=60, stale-while-revalidate=300")
    }
}

/// The response body: raw bytes, or for JSON streams a JSON array of the messages.
pub(super) fn body(chunk: &ReadChunk) -> Bytes {
    if !chunk.info.config.is_json() {
        return match chunk.parts.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => Bytes::from(many.concat()),
        };
    }
    let mut out = Vec::with_capacity(2 + chunk.parts.iter().map(|p| p.len() + 1).sum::<usize>());
    out.push(b'[');
    for (i, part) in chunk.parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(part);
    }
    out.push(b']');
    Bytes::from(out)
}

//! Creating a stream (PROTOCOL.md §5.1) or a fork (§4.2), independent of the store: a store
//! looks up what exists, calls these, and commits the result atomically.

use std::collections::HashMap;

use crate::DsError;
use crate::model::{CreateRequest, Created, StreamConfig};
use crate::stream::{Chunk, StreamMeta, fork_position, prefix, split_body};

/// Default content type of a `PUT` without one (§5.1).
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// `PUT` on an existing stream: 200 when the configuration (content type, TTL/expiry, closure,
/// fork) matches, 409 when not, 403 for another owner's stream.
///
/// # Errors
/// As above; a soft-deleted path is 409 (it cannot be re-created while forks use it).
pub fn confirm_existing(meta: &StreamMeta, req: &CreateRequest) -> Result<Created, DsError> {
    if meta.soft_deleted {
        return Err(DsError::Conflict(
            "a deleted stream's path cannot be re-created while forks use it".into(),
        ));
    }
    if meta.owner != req.caller {
        return Err(DsError::Forbidden);
    }
    let content_type_matches = match &req.content_type {
        Some(ct) => meta.config.same_content_type(ct),
        None => req.fork.is_some() || meta.config.same_content_type(DEFAULT_CONTENT_TYPE),
    };
    let expiry = |e: &Option<crate::model::Expiry>| e.as_ref().map(|e| e.unix_ms);
    let same = content_type_matches
        && meta.config.ttl_secs == req.ttl_secs
        && expiry(&meta.config.expires_at) == expiry(&req.expires_at)
        && meta.closed == req.closed
        && meta.fork == req.fork;
    if same {
        Ok(Created {
            new: false,
            info: meta.info(),
        })
    } else {
        Err(DsError::Conflict(
            "a stream exists at this path with a different configuration".into(),
        ))
    }
}

/// A fork's source that is soft-deleted is a conflict (§4.2), not "gone".
pub fn source_error(e: DsError) -> DsError {
    match e {
        DsError::Gone => DsError::Conflict("the source stream was deleted".into()),
        other => other,
    }
}

/// The new stream `req` describes: its metadata and chunks (a fork's inherited prefix, then the
/// initial body). `source` is the fork's source, already checked to be live and the caller's.
///
/// # Errors
/// 409 for a content type differing from the source's; 400 for a bad fork offset or body.
pub fn new_stream(
    req: &CreateRequest,
    source: Option<(&StreamMeta, &[Chunk])>,
    incarnation: u64,
    now_ms: i64,
) -> Result<(StreamMeta, Vec<Chunk>), DsError> {
    let (config, mut chunks, mut tail) = match (&req.fork, source) {
        (Some(fork), Some((src, src_chunks))) => {
            if let Some(ct) = &req.content_type
                && !src.config.same_content_type(ct)
            {
                return Err(DsError::Conflict(format!(
                    "content type {ct:?} differs from the source's {:?}",
                    src.config.content_type
                )));
            }
            let at = fork_position(src_chunks, src.tail, fork.offset, fork.sub_offset)?;
            // No expiry requested: inherit the source's TTL or deadline (§4.2's table).
            let (ttl_secs, expires_at) = match (&req.ttl_secs, &req.expires_at) {
                (None, None) => (src.config.ttl_secs, src.config.expires_at.clone()),
                _ => (req.ttl_secs, req.expires_at.clone()),
            };
            let config = StreamConfig {
                content_type: req
                    .content_type
                    .clone()
                    .unwrap_or_else(|| src.config.content_type.clone()),
                ttl_secs,
                expires_at,
            };
            (config, prefix(src_chunks, at), at)
        }
        _ => {
            let config = StreamConfig {
                content_type: req
                    .content_type
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
                ttl_secs: req.ttl_secs,
                expires_at: req.expires_at.clone(),
            };
            (config, Vec::new(), 0)
        }
    };
    let initial = split_body(&config, &req.body, true)?;
    if !initial.is_empty() {
        let chunk = Chunk {
            start: tail,
            parts: initial,
            json: config.is_json(),
        };
        tail += chunk.len();
        chunks.push(chunk);
    }
    let meta = StreamMeta {
        owner: req.caller.clone(),
        config,
        fork: req.fork.clone(),
        incarnation,
        tail,
        closed: req.closed,
        closed_by: None,
        stream_seq: None,
        producers: HashMap::new(),
        bytes: chunks.iter().map(Chunk::byte_len).sum(),
        last_access_ms: now_ms,
        fork_refs: 0,
        soft_deleted: false,
    };
    Ok((meta, chunks))
}

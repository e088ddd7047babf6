//! One stream's state and the protocol rules that change it, independent of where it is stored:
//! every store runs appends through [`StreamMeta::admit`] so the rules are written once.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::DsError;
use crate::model::{
    AppendRequest, Appended, ForkSpec, Owner, ProducerTuple, ReadChunk, StreamConfig, StreamInfo,
};
use crate::offset::Offset;

/// One append: the positions `[start, start + len)`. Bytes streams keep the body as one part;
/// JSON streams keep one part per message, so a batch is one chunk (its boundary is the unit a
/// fork sub-offset may not cross).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// First position.
    pub start: u64,
    /// Bytes (one part) or messages (one part each).
    pub parts: Vec<Bytes>,
    /// Whether `parts` are messages.
    pub json: bool,
}

impl Chunk {
    /// Positions this chunk covers.
    pub fn len(&self) -> u64 {
        if self.json {
            self.parts.len() as u64
        } else {
            self.parts.iter().map(|p| p.len() as u64).sum()
        }
    }

    /// Whether it covers nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Payload bytes (for per-user size bounds).
    pub fn byte_len(&self) -> u64 {
        self.parts.iter().map(|p| p.len() as u64).sum()
    }

    /// The part of this chunk from position `from` up to (excluding) position `to`.
    pub fn slice(&self, from: u64, to: u64) -> Vec<Bytes> {
        let (a, b) = ((from - self.start) as usize, (to - self.start) as usize);
        if self.json {
            self.parts[a..b].to_vec()
        } else {
            let joined = if self.parts.len() == 1 {
                self.parts[0].clone()
            } else {
                Bytes::from(self.parts.concat())
            };
            vec![joined.slice(a..b)]
        }
    }
}

/// An idempotent producer's fencing state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerState {
    /// Current epoch.
    pub epoch: u64,
    /// Highest accepted seq in that epoch.
    pub last_seq: u64,
}

/// Everything about a stream except its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// Who may read and write it.
    pub owner: Owner,
    /// Content type, TTL, expiry.
    pub config: StreamConfig,
    /// How it was forked, for idempotent re-creation.
    pub fork: Option<ForkSpec>,
    /// Unique per incarnation of the path.
    pub incarnation: u64,
    /// The tail position.
    pub tail: u64,
    /// Closed (terminal).
    pub closed: bool,
    /// The producer request that closed it, for deduplicating its retries.
    pub closed_by: Option<ProducerTuple>,
    /// Last `Stream-Seq` (per stream; compared byte-wise).
    pub stream_seq: Option<String>,
    /// Producer id → state.
    pub producers: HashMap<String, ProducerState>,
    /// Payload bytes held (own data and inherited data alike).
    pub bytes: u64,
    /// Last read or write, for the sliding TTL (ms since the Unix epoch).
    pub last_access_ms: i64,
    /// Forks that name this stream as their source.
    pub fork_refs: u32,
    /// Deleted while forks still exist: 410 to direct access.
    pub soft_deleted: bool,
}

/// What [`StreamMeta::admit`] decided for an append.
#[derive(Debug)]
pub enum Admission {
    /// Store these parts (possibly none, for a close-only request) and answer this.
    Accept(Vec<Bytes>, Appended),
    /// Nothing changes; answer this.
    Unchanged(Appended),
}

impl StreamMeta {
    /// The metadata clients see.
    pub fn info(&self) -> StreamInfo {
        StreamInfo {
            config: self.config.clone(),
            tail: Offset(self.tail),
            closed: self.closed,
            incarnation: self.incarnation,
        }
    }

    /// Whether the TTL or the absolute expiry has passed at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        let ttl_passed = self.config.ttl_secs.is_some_and(|ttl| {
            now_ms.saturating_sub(self.last_access_ms) >= (ttl as i64).saturating_mul(1000)
        });
        let deadline_passed = self
            .config
            .expires_at
            .as_ref()
            .is_some_and(|e| now_ms >= e.unix_ms);
        ttl_passed || deadline_passed
    }

    /// Checks an append against PROTOCOL.md §5.2 in its precedence order (closed, content type,
    /// producer fencing, `Stream-Seq`, body) and updates the metadata for an accepted one. The
    /// caller stores the returned parts as one chunk starting at the old tail.
    ///
    /// # Errors
    /// The protocol error the request earns; the metadata is then unchanged.
    pub fn admit(&mut self, req: &AppendRequest) -> Result<Admission, DsError> {
        if self.closed {
            return self.admit_on_closed(req);
        }
        if !req.body.is_empty() {
            match &req.content_type {
                Some(ct) if self.config.same_content_type(ct) => {}
                Some(ct) => {
                    return Err(DsError::Conflict(format!(
                        "content type {ct:?} does not match the stream's {:?}",
                        self.config.content_type
                    )));
                }
                None => return Err(DsError::bad("Content-Type is required on an append")),
            }
        }
        let accepted_seq = match &req.producer {
            Some(p) => match self.check_producer(p)? {
                Some(duplicate) => return Ok(Admission::Unchanged(duplicate)),
                None => Some(p.seq),
            },
            None => None,
        };
        if let (Some(seq), Some(last)) = (&req.stream_seq, &self.stream_seq)
            && seq.as_bytes() <= last.as_bytes()
        {
            return Err(DsError::Conflict(format!(
                "Stream-Seq {seq:?} is not greater than the last one, {last:?}"
            )));
        }
        let parts = if req.body.is_empty() {
            Vec::new()
        } else {
            split_body(&self.config, &req.body, false)?
        };
        // Accepted: nothing below fails.
        if let Some(seq) = &req.stream_seq {
            self.stream_seq = Some(seq.clone());
        }
        let from = Offset(self.tail);
        let added: u64 = if self.config.is_json() {
            parts.len() as u64
        } else {
            parts.iter().map(|p| p.len() as u64).sum()
        };
        self.tail += added;
        self.bytes += parts.iter().map(|p| p.len() as u64).sum::<u64>();
        if let Some(p) = &req.producer {
            self.producers.insert(
                p.id.clone(),
                ProducerState {
                    epoch: p.epoch,
                    last_seq: p.seq,
                },
            );
        }
        if req.close {
            self.closed = true;
            self.closed_by = req.producer.clone();
        }
        let appended = Appended {
            from,
            next: Offset(self.tail),
            closed: self.closed,
            duplicate: false,
            producer_ack: req
                .producer
                .as_ref()
                .zip(accepted_seq)
                .map(|(p, s)| (p.epoch, s)),
        };
        Ok(Admission::Accept(parts, appended))
    }

    fn admit_on_closed(&self, req: &AppendRequest) -> Result<Admission, DsError> {
        let unchanged = |ack| Appended {
            from: Offset(self.tail),
            next: Offset(self.tail),
            closed: true,
            duplicate: true,
            producer_ack: ack,
        };
        if let Some(p) = &req.producer {
            if self.closed_by.as_ref() == Some(p) {
                return Ok(Admission::Unchanged(unchanged(Some((p.epoch, p.seq)))));
            }
            if let Some(state) = self.producers.get(&p.id)
                && p.epoch < state.epoch
            {
                return Err(DsError::StaleEpoch {
                    current: state.epoch,
                });
            }
        }
        if req.close && req.body.is_empty() {
            return Ok(Admission::Unchanged(unchanged(None)));
        }
        Err(DsError::Closed {
            tail: Offset(self.tail),
        })
    }

    /// Producer fencing (PROTOCOL.md §5.2.1). `Ok(Some(_))`: a duplicate to answer 204.
    fn check_producer(&self, p: &ProducerTuple) -> Result<Option<Appended>, DsError> {
        let Some(state) = self.producers.get(&p.id) else {
            // A producer the stream has not seen starts at seq 0 (any epoch).
            return if p.seq == 0 {
                Ok(None)
            } else {
                Err(DsError::SequenceGap {
                    expected: 0,
                    received: p.seq,
                })
            };
        };
        if p.epoch < state.epoch {
            return Err(DsError::StaleEpoch {
                current: state.epoch,
            });
        }
        if p.epoch > state.epoch {
            return if p.seq == 0 {
                Ok(None)
            } else {
                Err(DsError::bad(format!(
                    "a new producer epoch must start at Producer-Seq 0, not {}",
                    p.seq
                )))
            };
        }
        if p.seq <= state.last_seq {
            return Ok(Some(Appended {
                from: Offset(self.tail),
                next: Offset(self.tail),
                closed: self.closed,
                duplicate: true,
                producer_ack: Some((state.epoch, state.last_seq)),
            }));
        }
        if p.seq > state.last_seq + 1 {
            return Err(DsError::SequenceGap {
                expected: state.last_seq + 1,
                received: p.seq,
            });
        }
        Ok(None)
    }
}

/// Splits a body into stored parts: for JSON streams one part per message, flattening one level
/// of array (§9.1.2) and validating the JSON (§9.1.4); otherwise the body itself.
///
/// # Errors
/// Invalid JSON, or an empty JSON array on an append (`creating` allows `[]`).
pub fn split_body(
    config: &StreamConfig,
    body: &Bytes,
    creating: bool,
) -> Result<Vec<Bytes>, DsError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    if !config.is_json() {
        return Ok(vec![body.clone()]);
    }
    let text = std::str::from_utf8(body).map_err(|_| DsError::bad("the JSON body is not UTF-8"))?;
    let value: &RawValue =
        serde_json::from_str(text).map_err(|e| DsError::bad(format!("invalid JSON: {e}")))?;
    let raw = value.get();
    if !raw.trim_start().starts_with('[') {
        return Ok(vec![Bytes::copy_from_slice(raw.trim().as_bytes())]);
    }
    let items: Vec<&RawValue> =
        serde_json::from_str(raw).map_err(|e| DsError::bad(format!("invalid JSON: {e}")))?;
    if items.is_empty() && !creating {
        return Err(DsError::bad("an empty JSON array appends nothing"));
    }
    Ok(items
        .into_iter()
        .map(|item| Bytes::copy_from_slice(item.get().as_bytes()))
        .collect())
}

/// Reads from position `from` over `chunks` (sorted, contiguous up to `meta.tail`), returning at
/// least one chunk's worth when data exists and stopping once `max_bytes` is reached.
pub fn read_chunks(meta: &StreamMeta, chunks: &[Chunk], from: u64, max_bytes: usize) -> ReadChunk {
    let from = from.min(meta.tail);
    let first = chunks.partition_point(|c| c.start + c.len() <= from);
    let mut parts = Vec::new();
    let (mut next, mut bytes) = (from, 0usize);
    for chunk in &chunks[first..] {
        if bytes >= max_bytes && !parts.is_empty() {
            break;
        }
        let end = chunk.start + chunk.len();
        let start = next.max(chunk.start);
        let mut stop = end;
        if !chunk.json {
            // Bound a huge byte chunk to the remaining budget (at least one byte).
            let room = (max_bytes.saturating_sub(bytes)).max(1) as u64;
            stop = end.min(start + room);
        }
        for part in chunk.slice(start, stop) {
            bytes += part.len();
            parts.push(part);
        }
        next = stop;
    }
    ReadChunk {
        info: meta.info(),
        start: Offset(from),
        next: Offset(next),
        parts,
    }
}

/// The position a fork branches at: `offset` (default: the tail) plus `sub_offset`, which may
/// not pass the end of the chunk the anchor lies in (§4.2).
///
/// # Errors
/// 400 when the anchor is past the tail or the sub-offset overshoots.
pub fn fork_position(
    chunks: &[Chunk],
    tail: u64,
    offset: Option<Offset>,
    sub_offset: u64,
) -> Result<u64, DsError> {
    let anchor = offset.map_or(tail, |o| o.0);
    if anchor > tail {
        return Err(DsError::bad(
            "Stream-Fork-Offset is beyond the source stream's tail",
        ));
    }
    if sub_offset == 0 {
        return Ok(anchor);
    }
    let i = chunks.partition_point(|c| c.start + c.len() <= anchor);
    match chunks.get(i) {
        Some(chunk) if anchor + sub_offset <= chunk.start + chunk.len() => Ok(anchor + sub_offset),
        _ => Err(DsError::bad(
            "Stream-Fork-Sub-Offset names a position past the next data boundary",
        )),
    }
}

/// The source's chunks before position `at`, the last one cut at `at`.
pub fn prefix(chunks: &[Chunk], at: u64) -> Vec<Chunk> {
    let mut out = Vec::new();
    for chunk in chunks {
        if chunk.start >= at {
            break;
        }
        let end = (chunk.start + chunk.len()).min(at);
        if end == chunk.start + chunk.len() {
            out.push(chunk.clone());
        } else {
            out.push(Chunk {
                start: chunk.start,
                parts: chunk.slice(chunk.start, end),
                json: chunk.json,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_config() -> StreamConfig {
        StreamConfig {
            content_type: "application/json; charset=utf-8".into(),
            ttl_secs: None,
            expires_at: None,
        }
    }

    #[test]
    fn json_bodies_flatten_one_level_and_keep_their_text() {
        let split = |body: &'static str, creating| {
            split_body(
                &json_config(),
                &Bytes::from_static(body.as_bytes()),
                creating,
            )
        };
        let parts = split(r#"[{"a": 1}, [2, 3]]"#, false).unwrap();
        assert_eq!(
            parts,
            vec![
                Bytes::from_static(br#"{"a": 1}"#),
                Bytes::from_static(b"[2, 3]")
            ]
        );
        assert_eq!(split(r#"{"x":1}"#, false).unwrap().len(), 1);
        assert!(
            split("[]", false).is_err(),
            "an empty array appends nothing"
        );
        assert!(
            split("[]", true).unwrap().is_empty(),
            "but creates an empty stream"
        );
        assert!(split("{oops", false).is_err());
    }

    #[test]
    fn a_fork_sub_offset_stays_inside_the_anchor_chunk() {
        let chunks = vec![
            Chunk {
                start: 0,
                parts: vec![Bytes::from_static(b"hello")],
                json: false,
            },
            Chunk {
                start: 5,
                parts: vec![Bytes::from_static(b"world")],
                json: false,
            },
        ];
        assert_eq!(fork_position(&chunks, 10, Some(Offset(0)), 3).unwrap(), 3);
        assert_eq!(fork_position(&chunks, 10, Some(Offset(5)), 5).unwrap(), 10);
        assert!(
            fork_position(&chunks, 10, Some(Offset(0)), 6).is_err(),
            "crosses a boundary"
        );
        assert!(
            fork_position(&chunks, 10, Some(Offset(11)), 0).is_err(),
            "past the tail"
        );
        assert!(
            fork_position(&chunks, 10, Some(Offset(10)), 1).is_err(),
            "nothing after the tail"
        );
        let cut = prefix(&chunks, 7);
        assert_eq!(cut.len(), 2);
        assert_eq!(cut[1].parts, vec![Bytes::from_static(b"wo")]);
    }
}

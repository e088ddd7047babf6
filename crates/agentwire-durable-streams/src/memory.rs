//! `MemoryStore`: streams in this process (the embedded default). Lost on restart.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::DsError;
use crate::model::{
    AppendRequest, Appended, CreateRequest, Created, Owner, ReadChunk, ReadRequest, StreamConfig,
    StreamInfo,
};
use crate::offset::{Offset, ReadFrom};
use crate::store::{OwnerLimits, StreamStore};
use crate::stream::{Admission, Chunk, StreamMeta, fork_position, prefix, read_chunks, split_body};

/// Streams held in memory: one lock over all of them, so every operation (and a fork's
/// bookkeeping across two streams) is atomic.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    limits: OwnerLimits,
}

#[derive(Debug, Default)]
struct Inner {
    streams: HashMap<String, Entry>,
    usage: HashMap<Owner, Usage>,
    incarnations: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    streams: u64,
    bytes: u64,
}

#[derive(Debug)]
struct Entry {
    meta: StreamMeta,
    chunks: Vec<Chunk>,
    /// Bumped on every change; dropped with the entry, which wakes waiters too.
    changed: watch::Sender<u64>,
}

/// Default content type of a `PUT` without one (§5.1).
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl MemoryStore {
    /// An empty store bounding each owner by `limits`.
    pub fn new(limits: OwnerLimits) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            limits,
        }
    }
}

impl Inner {
    /// The live entry at `path` for `caller`, dropping it first if it has expired.
    fn live(&mut self, path: &str, caller: &Owner, now: i64) -> Result<&mut Entry, DsError> {
        let expired = match self.streams.get(path) {
            None => return Err(DsError::NotFound),
            Some(e) => e.meta.expired(now),
        };
        if expired {
            self.expire(path);
            return Err(DsError::NotFound);
        }
        let entry = self.streams.get_mut(path).expect("checked above");
        if entry.meta.soft_deleted {
            return Err(DsError::Gone);
        }
        if &entry.meta.owner != caller {
            return Err(DsError::Forbidden);
        }
        Ok(entry)
    }

    /// An expired stream disappears, unless forks reference it (then it is kept soft-deleted).
    fn expire(&mut self, path: &str) {
        match self.streams.get_mut(path) {
            Some(e) if e.meta.fork_refs > 0 => e.meta.soft_deleted = true,
            Some(_) => self.remove(path),
            None => {}
        }
    }

    /// Drops a stream, releases its source, and collects soft-deleted sources left unreferenced.
    fn remove(&mut self, path: &str) {
        let Some(entry) = self.streams.remove(path) else {
            return;
        };
        let usage = self.usage.entry(entry.meta.owner.clone()).or_default();
        usage.streams = usage.streams.saturating_sub(1);
        usage.bytes = usage.bytes.saturating_sub(entry.meta.bytes);
        let Some(fork) = entry.meta.fork else { return };
        let release = match self.streams.get_mut(&fork.source) {
            Some(source) => {
                source.meta.fork_refs = source.meta.fork_refs.saturating_sub(1);
                source.meta.soft_deleted && source.meta.fork_refs == 0
            }
            None => false,
        };
        if release {
            self.remove(&fork.source);
        }
    }

    fn charge(
        &mut self,
        owner: &Owner,
        streams: u64,
        bytes: u64,
        limits: OwnerLimits,
    ) -> Result<(), DsError> {
        let usage = self.usage.entry(owner.clone()).or_default();
        if usage.streams + streams > limits.max_streams {
            return Err(DsError::TooMany(format!(
                "stream limit reached: {} streams per user",
                limits.max_streams
            )));
        }
        if usage.bytes + bytes > limits.max_bytes {
            return Err(DsError::TooMany(format!(
                "storage limit reached: {} bytes per user; delete streams to make room",
                limits.max_bytes
            )));
        }
        usage.streams += streams;
        usage.bytes += bytes;
        Ok(())
    }

    fn create(
        &mut self,
        path: &str,
        req: CreateRequest,
        limits: OwnerLimits,
    ) -> Result<Created, DsError> {
        let now = now_ms();
        if let Some(existing) = self.streams.get(path)
            && existing.meta.expired(now)
        {
            self.expire(path);
        }
        if let Some(existing) = self.streams.get(path) {
            return confirm_existing(&existing.meta, &req);
        }
        let (config, chunks, fork_source) = match &req.fork {
            None => {
                let config = StreamConfig {
                    content_type: req
                        .content_type
                        .clone()
                        .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
                    ttl_secs: req.ttl_secs,
                    expires_at: req.expires_at.clone(),
                };
                (config, Vec::new(), None)
            }
            Some(fork) => {
                let source = self
                    .live(&fork.source, &req.caller, now)
                    .map_err(|e| match e {
                        DsError::Gone => DsError::Conflict("the source stream was deleted".into()),
                        other => other,
                    })?;
                let src = &source.meta;
                if let Some(ct) = &req.content_type
                    && !src.config.same_content_type(ct)
                {
                    return Err(DsError::Conflict(format!(
                        "content type {ct:?} differs from the source's {:?}",
                        src.config.content_type
                    )));
                }
                let at = fork_position(&source.chunks, src.tail, fork.offset, fork.sub_offset)?;
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
                (
                    config,
                    prefix(&source.chunks, at),
                    Some((fork.source.clone(), at)),
                )
            }
        };
        let initial = split_body(&config, &req.body, true)?;
        let json = config.is_json();
        let mut chunks = chunks;
        let mut tail = fork_source.as_ref().map_or(0, |(_, at)| *at);
        if !initial.is_empty() {
            let chunk = Chunk {
                start: tail,
                parts: initial,
                json,
            };
            tail += chunk.len();
            chunks.push(chunk);
        }
        let bytes: u64 = chunks.iter().map(Chunk::byte_len).sum();
        self.charge(&req.caller, 1, bytes, limits)?;
        if let Some((source, _)) = &fork_source {
            self.streams
                .get_mut(source)
                .expect("looked up above")
                .meta
                .fork_refs += 1;
        }
        self.incarnations += 1;
        let meta = StreamMeta {
            owner: req.caller.clone(),
            config,
            fork: req.fork.clone(),
            incarnation: self.incarnations,
            tail,
            closed: req.closed,
            closed_by: None,
            stream_seq: None,
            producers: HashMap::new(),
            bytes,
            last_access_ms: now,
            fork_refs: 0,
            soft_deleted: false,
        };
        let info = meta.info();
        let (changed, _) = watch::channel(0);
        self.streams.insert(
            path.to_owned(),
            Entry {
                meta,
                chunks,
                changed,
            },
        );
        Ok(Created { new: true, info })
    }
}

/// `PUT` on an existing stream: 200 when the configuration matches, 409 when not (§5.1).
fn confirm_existing(meta: &StreamMeta, req: &CreateRequest) -> Result<Created, DsError> {
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
    let same = content_type_matches
        && meta.config.ttl_secs == req.ttl_secs
        && meta.config.expires_at.as_ref().map(|e| e.unix_ms)
            == req.expires_at.as_ref().map(|e| e.unix_ms)
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

#[async_trait]
impl StreamStore for MemoryStore {
    async fn create(&self, path: &str, req: CreateRequest) -> Result<Created, DsError> {
        self.inner.lock().create(path, req, self.limits)
    }

    async fn append(&self, path: &str, req: AppendRequest) -> Result<Appended, DsError> {
        let mut inner = self.inner.lock();
        let now = now_ms();
        let held = inner.usage.get(&req.caller).map_or(0, |u| u.bytes);
        if held + req.body.len() as u64 > self.limits.max_bytes {
            return Err(DsError::TooMany(format!(
                "storage limit reached: {} bytes per user; delete streams to make room",
                self.limits.max_bytes
            )));
        }
        let entry = inner.live(path, &req.caller, now)?;
        // Any write that reaches the stream renews its TTL, a deduplicated one too.
        entry.meta.last_access_ms = now;
        let start = entry.meta.tail;
        let (parts, appended) = match entry.meta.admit(&req)? {
            Admission::Unchanged(appended) => return Ok(appended),
            Admission::Accept(parts, appended) => (parts, appended),
        };
        let chunk = Chunk {
            start,
            parts,
            json: entry.meta.config.is_json(),
        };
        let added = chunk.byte_len();
        if !chunk.is_empty() {
            entry.chunks.push(chunk);
        }
        let owner = entry.meta.owner.clone();
        entry.changed.send_modify(|v| *v += 1);
        inner.usage.entry(owner).or_default().bytes += added;
        Ok(appended)
    }

    async fn read(&self, path: &str, req: ReadRequest) -> Result<ReadChunk, DsError> {
        let mut inner = self.inner.lock();
        let now = now_ms();
        let entry = inner.live(path, &req.caller, now)?;
        entry.meta.last_access_ms = now;
        let from = match req.from {
            ReadFrom::Start => 0,
            ReadFrom::Now => entry.meta.tail,
            ReadFrom::At(Offset(p)) => p,
        };
        Ok(read_chunks(&entry.meta, &entry.chunks, from, req.max_bytes))
    }

    async fn head(&self, path: &str, caller: &Owner) -> Result<StreamInfo, DsError> {
        let mut inner = self.inner.lock();
        Ok(inner.live(path, caller, now_ms())?.meta.info())
    }

    async fn delete(&self, path: &str, caller: &Owner) -> Result<(), DsError> {
        let mut inner = self.inner.lock();
        let entry = inner.live(path, caller, now_ms())?;
        if entry.meta.fork_refs > 0 {
            entry.meta.soft_deleted = true;
            entry.changed.send_modify(|v| *v += 1);
        } else {
            inner.remove(path);
        }
        Ok(())
    }

    async fn wait(&self, path: &str, seen: Offset, timeout: Duration) -> Result<(), DsError> {
        let mut changed = {
            let inner = self.inner.lock();
            let Some(entry) = inner.streams.get(path) else {
                return Ok(());
            };
            if entry.meta.tail > seen.0 || entry.meta.closed || entry.meta.soft_deleted {
                return Ok(());
            }
            entry.changed.subscribe()
        };
        // Subscribed under the lock: an append after it bumps the version we now wait on.
        let _ = tokio::time::timeout(timeout, changed.changed()).await;
        Ok(())
    }
}

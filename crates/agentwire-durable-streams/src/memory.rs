//! `MemoryStore`: streams in this process (the embedded default). Lost on restart.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::DsError;
use crate::create::{confirm_existing, new_stream, source_error};
use crate::model::{
    AppendRequest, Appended, CreateRequest, Created, Owner, ReadChunk, ReadRequest, StreamInfo,
};
use crate::offset::{Offset, ReadFrom};
use crate::store::{OwnerLimits, StreamStore};
use crate::stream::{Admission, Chunk, StreamMeta, read_chunks};

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
    /// `PUT`s handled, for pacing sweeps.
    creates: u64,
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

/// Creations between two sweeps of expired streams.
const SWEEP_EVERY: u64 = 1024;

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

    /// Drops every expired stream. Run every [`SWEEP_EVERY`] creations, so streams nobody
    /// touches again do not pile up (and count against their owner) forever.
    fn sweep(&mut self, now: i64) {
        let expired: Vec<String> = self
            .streams
            .iter()
            .filter(|(_, e)| !e.meta.soft_deleted && e.meta.expired(now))
            .map(|(path, _)| path.clone())
            .collect();
        for path in expired {
            self.expire(&path);
        }
    }

    fn create(
        &mut self,
        path: &str,
        req: CreateRequest,
        limits: OwnerLimits,
    ) -> Result<Created, DsError> {
        let now = now_ms();
        self.creates += 1;
        if self.creates % SWEEP_EVERY == 0 {
            self.sweep(now);
        }
        if let Some(existing) = self.streams.get(path)
            && existing.meta.expired(now)
        {
            self.expire(path);
        }
        if let Some(existing) = self.streams.get(path) {
            return confirm_existing(&existing.meta, &req);
        }
        let incarnation = self.incarnations + 1;
        let source = match &req.fork {
            None => None,
            Some(fork) => {
                let source = self
                    .live(&fork.source, &req.caller, now)
                    .map_err(source_error)?;
                Some((&source.meta, source.chunks.as_slice()))
            }
        };
        let (meta, chunks) = new_stream(&req, source, incarnation, now)?;
        self.charge(&req.caller, 1, meta.bytes, limits)?;
        if let Some(fork) = &meta.fork {
            self.streams
                .get_mut(&fork.source)
                .expect("looked up above")
                .meta
                .fork_refs += 1;
        }
        self.incarnations += 1;
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

    async fn wait(
        &self,
        path: &str,
        _caller: &Owner,
        seen: Offset,
        timeout: Duration,
    ) -> Result<(), DsError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Expiry;

    fn put(caller: &Owner, expires_at: Option<Expiry>) -> CreateRequest {
        CreateRequest {
            caller: caller.clone(),
            content_type: None,
            ttl_secs: None,
            expires_at,
            closed: false,
            fork: None,
            body: bytes::Bytes::from_static(b"data"),
        }
    }

    #[test]
    fn expired_streams_nobody_touches_are_swept() {
        let limits = OwnerLimits {
            max_streams: 10_000,
            max_bytes: 1 << 20,
        };
        let mut inner = Inner::default();
        let ada = Owner::user("ada");
        let past = Expiry {
            raw: "1970-01-01T00:00:01Z".into(),
            unix_ms: 1_000,
        };
        inner.create("/old", put(&ada, Some(past)), limits).unwrap();
        for i in 1..SWEEP_EVERY {
            inner
                .create(&format!("/s{i}"), put(&ada, None), limits)
                .unwrap();
        }
        assert!(
            !inner.streams.contains_key("/old"),
            "swept on the {SWEEP_EVERY}th PUT"
        );
        assert_eq!(inner.usage[&ada].streams, SWEEP_EVERY - 1);
        assert_eq!(inner.usage[&ada].bytes, 4 * (SWEEP_EVERY - 1));
    }
}

//! `RedisStore`: streams in Redis, shared by every agentwire node. A stream written on one node
//! is read, and tailed live, on another.
//!
//! Per stream: `<prefix>:m:<path>` (the metadata as JSON), `<prefix>:d:<path>` (a sorted set of
//! chunks scored by their start position) and `<prefix>:a:<path>` (the last read, for the
//! sliding TTL). Per owner, `<prefix>:u:<owner>` counts streams and bytes. Every write is an
//! optimistic compare-and-set: the node computes the new metadata with the same rules as the
//! memory store ([`StreamMeta::admit`]), and one Lua script commits it only if the metadata is
//! still what was read (else the node re-reads and retries), adds the chunk, and publishes the
//! path on `<prefix>:notify`, which wakes live readers on every node. It also holds the
//! subscription state (`subs.rs`), so every node serves every subscription.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use tokio::sync::{OnceCell, watch};

use crate::DsError;
use crate::create::{confirm_existing, new_stream, source_error};
use crate::memory::now_ms;
use crate::model::{
    AppendRequest, Appended, CreateRequest, Created, Owner, ReadChunk, ReadRequest, StreamInfo,
};
use crate::offset::{Offset, ReadFrom};
use crate::store::{OwnerLimits, StreamStore};
use crate::stream::{Admission, Chunk, StreamMeta, read_chunks};

mod codec;
mod commit;
mod notify;
mod subs;

use codec::{decode, encode};
use commit::{COMMIT, Commit};
use notify::subscribe;

/// Retries of a compare-and-set that lost a race before giving up with 503.
const MAX_ATTEMPTS: usize = 64;
/// Chunks fetched per read (the read also stops at `max_read_bytes`).
const CHUNKS_PER_READ: isize = 256;

/// Streams in Redis (see the module docs). Connects lazily on first use.
pub struct RedisStore {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    prefix: String,
    limits: OwnerLimits,
    commit: Script,
    watchers: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
    subscriber: OnceCell<()>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn store_error(e: impl std::fmt::Display) -> DsError {
    DsError::Store(format!("redis: {e}"))
}

fn lost_race() -> DsError {
    DsError::Store("redis: too many concurrent writers on this stream; retry".into())
}

impl RedisStore {
    /// A store on the Redis at `url`, with keys under `prefix`.
    ///
    /// # Errors
    /// The URL does not parse.
    pub fn new(url: &str, prefix: &str, limits: OwnerLimits) -> Result<Self, DsError> {
        Ok(Self {
            client: redis::Client::open(url).map_err(store_error)?,
            conn: OnceCell::new(),
            prefix: prefix.to_owned(),
            limits,
            commit: Script::new(COMMIT),
            watchers: Arc::default(),
            subscriber: OnceCell::new(),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, DsError> {
        self.conn
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await
            .cloned()
            .map_err(store_error)
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{name}", self.prefix)
    }

    fn channel(&self) -> String {
        format!("{}:notify", self.prefix)
    }

    async fn load(&self, path: &str) -> Result<Option<(String, StreamMeta)>, DsError> {
        let raw: Option<String> = self
            .conn()
            .await?
            .get(self.key("m", path))
            .await
            .map_err(store_error)?;
        raw.map(|raw| {
            let meta = serde_json::from_str(&raw).map_err(store_error)?;
            Ok((raw, meta))
        })
        .transpose()
    }

    /// Metadata with the last read folded into `last_access_ms`.
    async fn load_live(
        &self,
        path: &str,
        caller: &Owner,
        now: i64,
    ) -> Result<(String, StreamMeta), DsError> {
        let Some((raw, mut meta)) = self.load(path).await? else {
            return Err(DsError::NotFound);
        };
        if meta.config.ttl_secs.is_some() {
            let read: Option<i64> = self
                .conn()
                .await?
                .get(self.key("a", path))
                .await
                .map_err(store_error)?;
            meta.last_access_ms = meta.last_access_ms.max(read.unwrap_or(0));
        }
        if meta.expired(now) {
            self.expire(path, &raw, &meta).await?;
            return Err(DsError::NotFound);
        }
        if meta.soft_deleted {
            return Err(DsError::Gone);
        }
        if &meta.owner != caller {
            return Err(DsError::Forbidden);
        }
        Ok((raw, meta))
    }

    async fn touch(&self, path: &str, now: i64) -> Result<(), DsError> {
        let _: () = self
            .conn()
            .await?
            .set(self.key("a", path), now)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn expire(&self, path: &str, raw: &str, meta: &StreamMeta) -> Result<(), DsError> {
        if meta.fork_refs > 0 {
            let mut gone = meta.clone();
            gone.soft_deleted = true;
            self.run(Commit::update(path, raw, &gone, &meta.owner))
                .await?;
            return Ok(());
        }
        self.remove(path, raw, meta).await
    }

    /// Deletes a stream and releases its fork source, collecting soft-deleted sources left
    /// without forks (up the chain).
    async fn remove(&self, path: &str, raw: &str, meta: &StreamMeta) -> Result<(), DsError> {
        let commit = Commit {
            path,
            expected: Some(raw),
            new: None,
            source: None,
            owner: &meta.owner,
            streams_delta: -1,
            bytes_delta: -(meta.bytes as i64),
            chunks: &[],
        };
        if !self.run(commit).await? {
            return Ok(()); // someone else changed or removed it first
        }
        let mut next = meta.fork.as_ref().map(|f| f.source.clone());
        while let Some(source) = next.take() {
            for _ in 0..MAX_ATTEMPTS {
                let Some((raw, mut src)) = self.load(&source).await? else {
                    break;
                };
                src.fork_refs = src.fork_refs.saturating_sub(1);
                if src.soft_deleted && src.fork_refs == 0 {
                    let gone = Commit {
                        path: &source,
                        expected: Some(&raw),
                        new: None,
                        source: None,
                        owner: &src.owner,
                        streams_delta: -1,
                        bytes_delta: -(src.bytes as i64),
                        chunks: &[],
                    };
                    if self.run(gone).await? {
                        next = src.fork.as_ref().map(|f| f.source.clone());
                        break;
                    }
                } else if self
                    .run(Commit::update(&source, &raw, &src, &src.owner))
                    .await?
                {
                    break;
                }
            }
        }
        Ok(())
    }

    async fn usage(&self, owner: &Owner) -> Result<(u64, u64), DsError> {
        let (streams, bytes): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(self.key("u", &owner.0))
            .arg("streams")
            .arg("bytes")
            .query_async(&mut self.conn().await?)
            .await
            .map_err(store_error)?;
        Ok((streams.unwrap_or(0), bytes.unwrap_or(0)))
    }

    async fn chunks_from(&self, path: &str, from: u64) -> Result<Vec<Chunk>, DsError> {
        let mut conn = self.conn().await?;
        let key = self.key("d", path);
        let containing: Vec<Vec<u8>> = conn
            .zrevrangebyscore_limit(&key, from, "-inf", 0, 1)
            .await
            .map_err(store_error)?;
        let after: Vec<Vec<u8>> = conn
            .zrangebyscore_limit(&key, format!("({from}"), "+inf", 0, CHUNKS_PER_READ)
            .await
            .map_err(store_error)?;
        containing
            .iter()
            .chain(after.iter())
            .map(|m| decode(m))
            .collect()
    }

    async fn all_chunks(&self, path: &str) -> Result<Vec<Chunk>, DsError> {
        let members: Vec<Vec<u8>> = self
            .conn()
            .await?
            .zrange(self.key("d", path), 0, -1)
            .await
            .map_err(store_error)?;
        members.iter().map(|m| decode(m)).collect()
    }

    /// Starts the node's subscriber to `<prefix>:notify` once, and waits until it listens.
    async fn ensure_subscriber(&self) -> Result<(), DsError> {
        self.subscriber
            .get_or_try_init(|| async {
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                tokio::spawn(subscribe(
                    self.client.clone(),
                    self.channel(),
                    self.watchers.clone(),
                    ready_tx,
                ));
                tokio::time::timeout(Duration::from_secs(4), ready_rx)
                    .await
                    .map_err(|_| {
                        store_error("the notification subscriber did not connect within 4s")
                    })?
                    .map_err(|_| store_error("the notification subscriber stopped"))
            })
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl StreamStore for RedisStore {
    async fn create(&self, path: &str, req: CreateRequest) -> Result<Created, DsError> {
        for _ in 0..MAX_ATTEMPTS {
            let now = now_ms();
            if let Some((raw, meta)) = self.load(path).await? {
                if !meta.expired(now) {
                    return confirm_existing(&meta, &req);
                }
                self.expire(path, &raw, &meta).await?;
                continue;
            }
            let source = match &req.fork {
                None => None,
                Some(fork) => {
                    let (raw, meta) = self
                        .load_live(&fork.source, &req.caller, now)
                        .await
                        .map_err(source_error)?;
                    let chunks = self.all_chunks(&fork.source).await?;
                    Some((raw, meta, chunks))
                }
            };
            let incarnation: u64 = self
                .conn()
                .await?
                .incr(self.key("inc", "streams"), 1)
                .await
                .map_err(store_error)?;
            let (meta, chunks) = new_stream(
                &req,
                source.as_ref().map(|(_, m, c)| (m, c.as_slice())),
                incarnation,
                now,
            )?;
            let (streams, bytes) = self.usage(&req.caller).await?;
            if streams + 1 > self.limits.max_streams || bytes + meta.bytes > self.limits.max_bytes {
                return Err(DsError::TooMany(format!(
                    "limit reached: {} streams and {} bytes per user",
                    self.limits.max_streams, self.limits.max_bytes
                )));
            }
            let bumped = source.as_ref().map(|(raw, m, _)| {
                let mut m = m.clone();
                m.fork_refs += 1;
                (raw.as_str(), m)
            });
            let fork_source = req.fork.as_ref().map(|f| f.source.as_str());
            let commit = Commit {
                path,
                expected: None,
                new: Some(&meta),
                source: fork_source
                    .zip(bumped.as_ref())
                    .map(|(p, (raw, m))| (p, *raw, m)),
                owner: &req.caller,
                streams_delta: 1,
                bytes_delta: meta.bytes as i64,
                chunks: &chunks,
            };
            if self.run(commit).await? {
                return Ok(Created {
                    new: true,
                    info: meta.info(),
                });
            }
        }
        Err(lost_race())
    }

    async fn append(&self, path: &str, req: AppendRequest) -> Result<Appended, DsError> {
        let (_, held) = self.usage(&req.caller).await?;
        if held + req.body.len() as u64 > self.limits.max_bytes {
            return Err(DsError::TooMany(format!(
                "storage limit reached: {} bytes per user; delete streams to make room",
                self.limits.max_bytes
            )));
        }
        for _ in 0..MAX_ATTEMPTS {
            let now = now_ms();
            let (raw, meta) = self.load_live(path, &req.caller, now).await?;
            let mut next = meta.clone();
            next.last_access_ms = now;
            let (parts, appended) = match next.admit(&req)? {
                Admission::Unchanged(appended) => {
                    self.touch(path, now).await?;
                    return Ok(appended);
                }
                Admission::Accept(parts, appended) => (parts, appended),
            };
            let chunk = Chunk {
                start: meta.tail,
                parts,
                json: meta.config.is_json(),
            };
            let chunks = if chunk.is_empty() {
                Vec::new()
            } else {
                vec![chunk]
            };
            let commit = Commit {
                bytes_delta: chunks.iter().map(Chunk::byte_len).sum::<u64>() as i64,
                chunks: &chunks,
                ..Commit::update(path, &raw, &next, &meta.owner)
            };
            if self.run(commit).await? {
                return Ok(appended);
            }
        }
        Err(lost_race())
    }

    async fn read(&self, path: &str, req: ReadRequest) -> Result<ReadChunk, DsError> {
        let now = now_ms();
        let (_, meta) = self.load_live(path, &req.caller, now).await?;
        if meta.config.ttl_secs.is_some() {
            self.touch(path, now).await?;
        }
        let from = match req.from {
            ReadFrom::Start => 0,
            ReadFrom::Now => meta.tail,
            ReadFrom::At(Offset(p)) => p.min(meta.tail),
        };
        let chunks = if from < meta.tail {
            self.chunks_from(path, from).await?
        } else {
            Vec::new()
        };
        Ok(read_chunks(&meta, &chunks, from, req.max_bytes))
    }

    async fn head(&self, path: &str, caller: &Owner) -> Result<StreamInfo, DsError> {
        Ok(self.load_live(path, caller, now_ms()).await?.1.info())
    }

    async fn delete(&self, path: &str, caller: &Owner) -> Result<(), DsError> {
        for _ in 0..MAX_ATTEMPTS {
            let (raw, meta) = self.load_live(path, caller, now_ms()).await?;
            if meta.fork_refs == 0 {
                return self.remove(path, &raw, &meta).await;
            }
            let mut gone = meta.clone();
            gone.soft_deleted = true;
            if self
                .run(Commit::update(path, &raw, &gone, &meta.owner))
                .await?
            {
                return Ok(());
            }
        }
        Err(lost_race())
    }

    async fn wait(
        &self,
        path: &str,
        _caller: &Owner,
        seen: Offset,
        timeout: Duration,
    ) -> Result<(), DsError> {
        self.ensure_subscriber().await?;
        // Register before looking, so a notification after the look is not missed.
        let mut changed = self
            .watchers
            .lock()
            .entry(path.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        match self.load(path).await? {
            Some((_, m)) if m.tail <= seen.0 && !m.closed && !m.soft_deleted => {
                let _ = tokio::time::timeout(timeout, changed.changed()).await;
            }
            _ => {}
        }
        Ok(())
    }
}

//! `RedisStore`: streams in Redis, shared by every agentwire node. A stream written on one node
//! is read, and tailed live, on another.
//!
//! Per stream: `<prefix>:m:<path>` (the metadata as JSON), `<prefix>:d:<path>` (a sorted set of
//! chunks scored by their start position) and `<prefix>:a:<path>` (the last read, for the
//! sliding TTL). Per owner, `<prefix>:u:<owner>` counts streams and bytes. Every write is an
//! optimistic compare-and-set: the node computes the new metadata with the same rules as the
//! memory store ([`StreamMeta::admit`]), and one Lua script commits it only if the metadata is
//! still what was read (else the node re-reads and retries), adds the chunk, and publishes the
//! path on `<prefix>:notify`, which wakes live readers on every node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
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

/// Compare-and-set of one stream's metadata (and optionally its fork source's), with its data,
/// usage counters and the live notification, in one step.
const COMMIT: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if cur then return 0 end
elseif cur ~= ARGV[1] then return 0 end
if ARGV[5] ~= '' and redis.call('GET', KEYS[5]) ~= ARGV[5] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
if ARGV[5] ~= '' then redis.call('SET', KEYS[5], ARGV[6]) end
local n = tonumber(ARGV[7])
local b = tonumber(ARGV[8])
if n ~= 0 then redis.call('HINCRBY', KEYS[4], 'streams', n) end
if b ~= 0 then redis.call('HINCRBY', KEYS[4], 'bytes', b) end
for i = 9, #ARGV, 2 do redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
";

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

/// One optimistic write.
struct Commit<'a> {
    path: &'a str,
    expected: Option<&'a str>,
    new: Option<&'a StreamMeta>,
    source: Option<(&'a str, &'a str, &'a StreamMeta)>,
    owner: &'a Owner,
    streams_delta: i64,
    bytes_delta: i64,
    chunks: &'a [Chunk],
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

    async fn run(&self, c: Commit<'_>) -> Result<bool, DsError> {
        let mut conn = self.conn().await?;
        let new = c
            .new
            .map(serde_json::to_string)
            .transpose()
            .map_err(store_error)?;
        let source_new = c
            .source
            .map(|(_, _, m)| serde_json::to_string(m))
            .transpose()
            .map_err(store_error)?;
        let mut invocation = self.commit.prepare_invoke();
        invocation
            .key(self.key("m", c.path))
            .key(self.key("d", c.path))
            .key(self.key("a", c.path))
            .key(self.key("u", &c.owner.0))
            .key(self.key("m", c.source.map_or(c.path, |(p, _, _)| p)))
            .arg(c.expected.unwrap_or(""))
            .arg(new.as_deref().unwrap_or(""))
            .arg(self.channel())
            .arg(c.path)
            .arg(c.source.map_or("", |(_, raw, _)| raw))
            .arg(source_new.as_deref().unwrap_or(""))
            .arg(c.streams_delta)
            .arg(c.bytes_delta);
        for chunk in c.chunks {
            invocation.arg(chunk.start).arg(encode(chunk));
        }
        let done: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(done == 1)
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

impl<'a> Commit<'a> {
    fn update(path: &'a str, raw: &'a str, new: &'a StreamMeta, owner: &'a Owner) -> Self {
        Self {
            path,
            expected: Some(raw),
            new: Some(new),
            source: None,
            owner,
            streams_delta: 0,
            bytes_delta: 0,
            chunks: &[],
        }
    }
}

/// The subscriber loop: wakes local waiters for each published path; on reconnect wakes them
/// all (a notification may have been missed while disconnected).
async fn subscribe(
    client: redis::Client,
    channel: String,
    watchers: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    loop {
        if let Ok(mut pubsub) = client.get_async_pubsub().await
            && pubsub.subscribe(&channel).await.is_ok()
        {
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            for tx in watchers.lock().values() {
                tx.send_modify(|v| *v += 1);
            }
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let path = String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
                let mut map = watchers.lock();
                if let Some(tx) = map.get(&path) {
                    if tx.receiver_count() == 0 {
                        map.remove(&path);
                    } else {
                        tx.send_modify(|v| *v += 1);
                    }
                }
            }
            tracing::warn!("durable streams: redis notification connection lost; reconnecting");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `start (8 bytes BE) | kind (0 bytes, 1 json) | payload`; JSON messages are length-prefixed.
fn encode(chunk: &Chunk) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + chunk.byte_len() as usize + 4 * chunk.parts.len());
    out.extend_from_slice(&chunk.start.to_be_bytes());
    out.push(u8::from(chunk.json));
    for part in &chunk.parts {
        if chunk.json {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        }
        out.extend_from_slice(part);
    }
    out
}

fn decode(member: &[u8]) -> Result<Chunk, DsError> {
    let corrupt = || store_error("a stored chunk is corrupt");
    let (head, mut rest) = member.split_at_checked(9).ok_or_else(corrupt)?;
    let start = u64::from_be_bytes(head[..8].try_into().map_err(|_| corrupt())?);
    let json = head[8] == 1;
    let mut parts = Vec::new();
    if json {
        while !rest.is_empty() {
            let (len, tail) = rest.split_at_checked(4).ok_or_else(corrupt)?;
            let len = u32::from_be_bytes(len.try_into().map_err(|_| corrupt())?) as usize;
            let (part, tail) = tail.split_at_checked(len).ok_or_else(corrupt)?;
            parts.push(Bytes::copy_from_slice(part));
            rest = tail;
        }
    } else {
        parts.push(Bytes::copy_from_slice(rest));
    }
    Ok(Chunk { start, parts, json })
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

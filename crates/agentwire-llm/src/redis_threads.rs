//! `RedisThreadStore`: thread memory shared by every node on one Redis, so a thread continued on
//! another node remembers.

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use crate::MemoryConfig;
use crate::threads::{ThreadKey, ThreadStore, Turn, newest_within, ttl_millis, turn_bytes};

/// Thread memory in Redis: one list per thread (`{prefix}:thread:{key}`) of JSON turns, trimmed
/// to `max_turns` and given a TTL on every append, in one `MULTI`.
///
/// It connects on first use, so building it needs no network and a Redis outage shows as a
/// failed load or append (the run goes on without memory) rather than a failed startup.
pub struct RedisThreadStore {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    prefix: String,
    limits: MemoryConfig,
}

impl std::fmt::Debug for RedisThreadStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("RedisThreadStore")
            .field("prefix", &self.prefix)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl RedisThreadStore {
    /// A store on the Redis at `url`, with keys under `prefix`.
    ///
    /// # Errors
    /// The URL is not a Redis URL.
    pub fn new(url: &str, prefix: impl Into<String>, limits: MemoryConfig) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
        Ok(Self {
            client,
            connection: OnceCell::new(),
            prefix: prefix.into(),
            limits,
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        self.connection
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await
            .cloned()
            .map_err(|e| format!("thread memory: cannot reach Redis: {e}"))
    }

    fn redis_key(&self, key: &ThreadKey) -> String {
        format!("{}:thread:{}", self.prefix, key.storage_key())
    }
}

#[async_trait]
impl ThreadStore for RedisThreadStore {
    async fn load(&self, key: &ThreadKey) -> Result<Vec<Turn>, String> {
        let mut conn = self.connection().await?;
        let raw: Vec<String> = conn
            .lrange(self.redis_key(key), 0, -1)
            .await
            .map_err(|e| format!("thread memory: LRANGE failed: {e}"))?;
        let mut turns = Vec::with_capacity(raw.len());
        for text in raw {
            match serde_json::from_str::<Turn>(&text) {
                Ok(turn) => turns.push((text.len(), turn)),
                // A turn another version wrote differently: skipped, not fatal.
                Err(e) => tracing::warn!(error = %e, "thread memory: unreadable turn skipped"),
            }
        }
        Ok(newest_within(turns, self.limits.max_bytes))
    }

    async fn append(&self, key: &ThreadKey, turn: Turn) -> Result<(), String> {
        if turn_bytes(&turn) > self.limits.max_bytes {
            tracing::debug!("thread memory: a turn larger than memory.max_bytes is not kept");
            return Ok(());
        }
        let text = serde_json::to_string(&turn).map_err(|e| e.to_string())?;
        let redis_key = self.redis_key(key);
        let keep = isize::try_from(self.limits.max_turns).unwrap_or(isize::MAX);
        let mut conn = self.connection().await?;
        redis::pipe()
            .atomic()
            .rpush(&redis_key, text)
            .ignore()
            .ltrim(&redis_key, -keep, -1)
            .ignore()
            .pexpire(&redis_key, ttl_millis(self.limits.ttl) as i64)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| format!("thread memory: append failed: {e}"))
    }
}

//! The one write path of the redis store: an optimistic compare-and-set in a Lua script.

use super::{RedisStore, encode, store_error};
use crate::DsError;
use crate::model::Owner;
use crate::stream::{Chunk, StreamMeta};

/// Compare-and-set of one stream's metadata (and optionally its fork source's), with its data,
/// usage counters and the live notification, in one step.
pub(super) const COMMIT: &str = r"
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

/// One optimistic write: `new` replaces the metadata (`None` deletes the stream) if it is still
/// `expected` (`None`: absent); `source` likewise for a fork's source.
pub(super) struct Commit<'a> {
    pub(super) path: &'a str,
    pub(super) expected: Option<&'a str>,
    pub(super) new: Option<&'a StreamMeta>,
    pub(super) source: Option<(&'a str, &'a str, &'a StreamMeta)>,
    pub(super) owner: &'a Owner,
    pub(super) streams_delta: i64,
    pub(super) bytes_delta: i64,
    pub(super) chunks: &'a [Chunk],
}

impl<'a> Commit<'a> {
    pub(super) fn update(
        path: &'a str,
        raw: &'a str,
        new: &'a StreamMeta,
        owner: &'a Owner,
    ) -> Self {
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

impl RedisStore {
    /// Runs `c`; `false` when the metadata changed since it was read (the caller re-reads).
    pub(super) async fn run(&self, c: Commit<'_>) -> Result<bool, DsError> {
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
}

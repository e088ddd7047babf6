//! The Lua scripts that make each stream operation atomic on the Redis server.

/// Appends a batch of events of one user (group commit): the next `n` seqs (one `INCRBY`), the
/// epoch (kept, or set for a new stream), each frame joined around its seq and added to the
/// stream with an exact length cap, the oldest entries dropped while the stream holds more than
/// `max_bytes` bytes of frames (never the newest), and — on a new stream or when the node asks (at
/// most every `ttl/8`) — entries older than the ttl trimmed and every key's expiry refreshed;
/// finally the whole batch published as one message, so publication order is seq order.
///
/// The byte bound costs one `INCRBY` per batch and no read while the stream is under it: the
/// bytes key counts the bytes of every frame appended to the stream, and each entry carries `c`,
/// that count up to and including it. The node passes `floor`, the count before the oldest entry
/// as it last saw it (0 when it does not know); what the stream holds is at most `total - floor`
/// (entries trimmed by count or age only raise the true floor), so only when that passes
/// `max_bytes` is the oldest entry read: its `c` corrects the floor, and entries are dropped until
/// the bound holds. The script returns the floor for the node to keep.
///
/// The epoch key holds `<epoch>` or, on a cluster, `<epoch>/<id of the primary that last
/// wrote>`. When the primary changed since the last write (a failover, or the slot moved), the
/// old primary may have acknowledged writes it never replicated: the counter then jumps by
/// `ARGV[9]` so no seq a client may have seen is ever given to another event — the skipped
/// range reaches clients as a `replay_gap`, never as a silent hole.
///
/// KEYS: seq, stream, epoch, bytes. ARGV: 1 candidate epoch, 2 max_events, 3 expiry_ms, 4
/// channel ('' = publish nothing), 5 now_ms, 6 publish command (`PUBLISH`/`SPUBLISH`), 7 refresh
/// ('1'/'0'), 8 history ttl_ms, 9 seq jump on a primary change ('0' = no writer check), 10
/// max_bytes, 11 floor, then one (json prefix, json suffix) pair per event. Returns {first seq,
/// epoch, floor}.
pub(crate) const APPEND: &str = r#"
local n = (#ARGV - 11) / 2
local stored = redis.call('GET', KEYS[3])
local epoch, writer
if stored then
  epoch, writer = string.match(stored, '^([^/]*)/?(.*)$')
end
local jump = tonumber(ARGV[9])
local me = ''
if jump > 0 then me = redis.call('CLUSTER', 'MYID') end
local fresh = false
if not stored then
  epoch = ARGV[1]
  fresh = true
end
local last = redis.call('INCRBY', KEYS[1], n)
if last == n then fresh = true end
if jump > 0 and stored and writer ~= me then
  last = redis.call('INCRBY', KEYS[1], jump)
end
if fresh or (jump > 0 and writer ~= me) then
  local value = epoch
  if jump > 0 then value = epoch .. '/' .. me end
  redis.call('SET', KEYS[3], value)
end
local first = last - n + 1
local max = tonumber(ARGV[2])
local max_bytes = tonumber(ARGV[10])
local floor = tonumber(ARGV[11])
local frames = {}
local bytes = 0
for i = 1, n do
  local frame = ARGV[10 + 2 * i] .. (first + i - 1) .. ARGV[11 + 2 * i]
  frames[i] = frame
  bytes = bytes + #frame
end
if max > 0 then
  local total
  if fresh then
    redis.call('SET', KEYS[4], bytes)
    total = bytes
  else
    total = redis.call('INCRBY', KEYS[4], bytes)
  end
  if floor > total - bytes then floor = 0 end
  local c = total - bytes
  for i = 1, n do
    c = c + #frames[i]
    redis.call('XADD', KEYS[2], 'MAXLEN', max, (first + i - 1) .. '-1', 't', ARGV[5], 'f', frames[i], 'c', c)
  end
  local newest = last .. '-1'
  while total - floor > max_bytes do
    local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
    if #oldest == 0 or oldest[1][1] == newest then break end
    local c = tonumber(oldest[1][2][6])
    if c then
      floor = c - #oldest[1][2][4]
      if total - floor <= max_bytes then break end
      floor = c
    end
    -- An entry without `c` predates the byte bound: dropped while the bound is unknown.
    redis.call('XDEL', KEYS[2], oldest[1][1])
  end
end
if fresh or ARGV[7] == '1' then
  local min_ts = tonumber(ARGV[5]) - tonumber(ARGV[8])
  for _ = 1, 64 do
    local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
    if #oldest == 0 or tonumber(oldest[1][2][2]) >= min_ts then break end
    redis.call('XDEL', KEYS[2], oldest[1][1])
  end
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
end
if ARGV[4] ~= '' then
  redis.call(ARGV[6], ARGV[4], first .. ' ' .. epoch .. ' ' .. table.concat(frames, '\n'))
end
return {first, epoch, floor}
"#;

/// Reads a slice: head, epoch (created for a stream that has none, so it is stable from the first
/// look), the effective `after` (0 when the caller's epoch is another), the first held seq after
/// `after` (head + 1 when none), and up to `limit` consecutive entries after `after` as (id,
/// frame) pairs — the page stops before a hole inside the stream.
///
/// On a cluster a created epoch names the primary (as `APPEND` does), so that appends on another
/// primary after a failover skip seqs the old one may have given out unreplicated.
///
/// A page also stops before the entry that would take its frames past `max_bytes` (the first
/// entry always comes).
///
/// KEYS: seq, stream, epoch, bytes. ARGV: after, requested epoch ('' for none), limit, candidate
/// epoch, ttl_ms, cluster ('1'/'0'), max_bytes.
pub(crate) const READ: &str = r#"
local head = tonumber(redis.call('GET', KEYS[1]) or '0')
local stored = redis.call('GET', KEYS[3])
local epoch
if stored then
  epoch = string.match(stored, '^([^/]*)')
else
  epoch = ARGV[4]
  local value = epoch
  if ARGV[6] == '1' then value = epoch .. '/' .. redis.call('CLUSTER', 'MYID') end
  redis.call('SET', KEYS[3], value, 'PX', ARGV[5])
end
local after = tonumber(ARGV[1])
if ARGV[2] ~= '' and ARGV[2] ~= epoch then after = 0 end
local limit = tonumber(ARGV[3])
local out = {head, epoch, after, head + 1}
if after < head then
  local count = limit
  if count < 1 then count = 1 end
  local entries = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', count)
  if #entries > 0 then out[4] = tonumber(string.match(entries[1][1], '^(%d+)')) end
  if limit > 0 then
    -- A page ends before an interior hole (seqs skipped after a failover), so the reader's next
    -- page starts at the hole and reports it as a gap.
    local expect = nil
    local max_bytes = tonumber(ARGV[7])
    local bytes = 0
    for _, e in ipairs(entries) do
      local seq = tonumber(string.match(e[1], '^(%d+)'))
      if expect and seq ~= expect then break end
      bytes = bytes + #e[2][4]
      if expect and bytes > max_bytes then break end
      table.insert(out, e[1])
      table.insert(out, e[2][4])
      expect = seq + 1
    end
  end
end
return out
"#;

/// Keeps a connected user's stream alive: trims entries older than the ttl and refreshes the
/// keys' expiry. KEYS: seq, stream, epoch, bytes. ARGV: ttl_ms, now_ms.
pub(crate) const TOUCH: &str = r#"
local min_ts = tonumber(ARGV[2]) - tonumber(ARGV[1])
for _ = 1, 64 do
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if #oldest == 0 or tonumber(oldest[1][2][2]) >= min_ts then break end
  redis.call('XDEL', KEYS[2], oldest[1][1])
end
for i = 1, 4 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return 1
"#;

/// One of the scripts above, called by its SHA1 (`EVALSHA`) and, when the server does not know
/// it (`NOSCRIPT`: a new primary after a failover, a restarted server), by its source (`EVAL`,
/// which also caches it there). Never `SCRIPT LOAD`: on a cluster that goes to every node and
/// fails while one is down.
#[derive(Debug)]
pub(crate) struct Lua {
    source: &'static str,
    hash: String,
}

impl Lua {
    pub(crate) fn new(source: &'static str) -> Self {
        Self {
            source,
            hash: redis::Script::new(source).get_hash().to_owned(),
        }
    }

    /// The call of the script on `keys` with `args`; by source when `by_source`.
    pub(crate) fn cmd(&self, by_source: bool, keys: &[String], args: &[&[u8]]) -> redis::Cmd {
        let mut cmd = redis::cmd(if by_source { "EVAL" } else { "EVALSHA" });
        cmd.arg(if by_source { self.source } else { &self.hash })
            .arg(keys.len())
            .arg(keys)
            .arg(args);
        cmd
    }

    /// Runs the script: `EVALSHA`, then `EVAL` on `NOSCRIPT`.
    pub(crate) async fn run<T: redis::FromRedisValue>(
        &self,
        conn: &mut impl redis::aio::ConnectionLike,
        keys: &[String],
        args: &[&[u8]],
    ) -> redis::RedisResult<T> {
        let reply = match self.cmd(false, keys, args).query_async(conn).await {
            Err(e) if is_no_script(&e) => self.cmd(true, keys, args).query_async(conn).await,
            reply => reply,
        };
        if let Err(e) = &reply {
            refresh_after(e, conn, &keys[1]).await;
        }
        reply
    }
}

/// After `READONLY` — a script sent to a node that is a replica now (a failed-over primary that
/// came back, or a replica the client fell back to) — makes the cluster client learn the slot's
/// primary: a plain write on that replica answers `MOVED`, on which the client rebuilds its slot
/// map. (The client does not refresh on `READONLY` by itself and would keep sending the scripts
/// to the replica.) The write is an `XTRIM` of the stream that never trims.
pub(crate) async fn refresh_after(
    e: &redis::RedisError,
    conn: &mut impl redis::aio::ConnectionLike,
    stream_key: &str,
) {
    if e.to_string().to_ascii_lowercase().contains("readonly") {
        let _: redis::RedisResult<redis::Value> = redis::cmd("XTRIM")
            .arg(stream_key)
            .arg("MAXLEN")
            .arg(u32::MAX)
            .query_async(conn)
            .await;
    }
}

/// `NOSCRIPT`, on its own or inside a pipeline's error.
pub(crate) fn is_no_script(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
        || e.to_string().to_ascii_lowercase().contains("noscript")
}

//! The Lua scripts that make each stream operation atomic on the Redis server.
//!
//! Per user two keys share a hash tag. The meta hash: `seq` (the head), `e` (the epoch; on a
//! cluster `<epoch>/<id of the primary that last wrote>[/<first seq after the newest seq
//! jump>]`), `b` (bytes of every frame ever appended), `low` (the lowest seq still held), `hk`
//! (events held: exact) and `lb` (bytes appended before `low`: a lower bound, since the count
//! trim moves `low` without reading the entry it lands in; made exact whenever entries are read).
//! The history stream has one entry per append batch: id `<last seq>-<first seq>`, fields `t`
//! (accept time, ms), `c` (the meta's `b` once the batch was added) and `f`, the batch's frames
//! in seq order joined by `\n` (frames are compact JSON, which holds no raw newline). A batch's
//! seqs are consecutive; holes lie only between entries. Events below `low` are trimmed: reads
//! skip them, whether they share an entry with a held event or sit in entries not deleted yet
//! (at most 16 events: see `APPEND`).

/// The Lua function shared by [`APPEND`] and [`TOUCH`]: drops the entries older than `min_ts`
/// from the front (at most 64 per call; entries are in accept order) and returns the new `low`,
/// `hk`, `lb`.
macro_rules! age_trim_lua {
    () => {
        r#"
local function age_trim(stream, min_ts, low, hk, lb)
  local old = redis.call('XRANGE', stream, '-', '+', 'COUNT', 64)
  local cut
  for _, e in ipairs(old) do
    if tonumber(e[2][2]) >= min_ts then break end
    local last, first = string.match(e[1], '^(%d+)-(%d+)$')
    last, first = tonumber(last), tonumber(first)
    if last >= low then hk = hk - (last - math.max(first, low) + 1) end
    cut = e
  end
  if not cut then return low, hk, lb end
  local last = tonumber(string.match(cut[1], '^(%d+)'))
  redis.call('XTRIM', stream, 'MINID', (last + 1) .. '-0')
  if last + 1 > low then return last + 1, hk, tonumber(cut[2][4]) end
  return low, hk, lb
end
"#
    };
}

/// Appends a batch of events of one user (group commit). Five commands in the common case
/// whatever the batch size, and the frames joined once, for the entry and the publication:
/// `HMGET` the meta, one `XADD` of the whole batch (which, each time `low` passes a multiple of
/// 16, also deletes the entries wholly below it: `MINID`), `HSET` the meta, one publication — and
/// the script call itself.
///
/// Steps: the next `n` seqs; the epoch (kept, or set for a new stream); each frame joined around
/// its seq; the batch added as one entry. Bounds: past `max_events` events `low` moves up to keep
/// exactly the newest `max_events` (no read while no seq jump lies in that range); past
/// `max_bytes` (by the `lb` lower bound) the oldest entries are read and `low` moves up until the
/// frames held fit — never past the newest event. On a new stream or when the node asks (at most
/// every `ttl/8`) entries older than the ttl are trimmed and both keys' expiry refreshed. Finally
/// the whole batch is published as one message, so publication order is seq order.
///
/// When the primary changed since the last write on a cluster (a failover, or the slot moved),
/// the old primary may have acknowledged writes it never replicated: the seqs jump by `ARGV[9]`
/// so no seq a client may have seen is ever given to another event — the skipped range reaches
/// clients as a `replay_gap`, never as a silent hole.
///
/// KEYS: meta, stream. ARGV: 1 candidate epoch, 2 max_events, 3 expiry_ms, 4 channel ('' =
/// publish nothing), 5 now_ms, 6 publish command (`PUBLISH`/`SPUBLISH`), 7 refresh ('1'/'0'), 8
/// history ttl_ms, 9 seq jump on a primary change ('0' = no writer check), 10 max_bytes, then one
/// (json prefix, json suffix) pair per event. Returns {first seq, epoch}.
pub(crate) const APPEND: &str = concat!(
    age_trim_lua!(),
    r#"
-- Walks the frames from `low` while they pass a bound: returns the first seq to keep, the events
-- held from it and the bytes appended before it (exact). Keeps the newest event whatever its size.
local function walk(stream, low, head, hk, b, max, max_bytes)
  local start = low .. '-0'
  while true do
    local entries = redis.call('XRANGE', stream, start, '+', 'COUNT', 16)
    if #entries == 0 then return nil end
    for _, e in ipairs(entries) do
      local last, seq = string.match(e[1], '^(%d+)-(%d+)$')
      last, seq = tonumber(last), tonumber(seq)
      local joined = e[2][6]
      local cb = tonumber(e[2][4]) - (#joined - (last - seq))
      local pos = 1
      while seq <= last do
        local stop = string.find(joined, '\n', pos, true) or (#joined + 1)
        if seq >= low then
          if seq == head or (hk <= max and b - cb <= max_bytes) then return seq, hk, cb end
          hk = hk - 1
        end
        cb = cb + (stop - pos)
        pos = stop + 1
        seq = seq + 1
      end
      start = '(' .. e[1]
    end
  end
end

-- Integers go to strings through '%d': Lua's own number-to-string conversion (`..`,
-- `table.concat`, and Redis 7.0's for `redis.call` arguments) formats a double ('%.14g',
-- '%.17g'), which cost more of Redis's CPU than any command here.
local fmt = string.format
local n = (#ARGV - 10) / 2
local m = redis.call('HMGET', KEYS[1], 'seq', 'e', 'b', 'low', 'hk', 'lb')
local stored = m[2]
local epoch, writer, j
if stored then
  epoch, writer, j = string.match(stored, '^([^/]*)/?([^/]*)/?(%d*)$')
else
  epoch = ARGV[1]
end
j = tonumber(j) or 0
local jump = tonumber(ARGV[9])
local me = ''
if jump > 0 then me = redis.call('CLUSTER', 'MYID') end
local head = tonumber(m[1])
local fresh = not head
if fresh then
  -- A stream whose meta is gone holds nothing valid (its ids would collide with new ones).
  redis.call('DEL', KEYS[2])
  head = 0
end
local meta = {}
local moved = jump > 0 and stored and writer ~= me
if moved then
  head = head + jump
  j = head + 1
end
if not stored or moved then
  local value = epoch
  if jump > 0 then value = epoch .. '/' .. me end
  if j > 0 then value = value .. '/' .. j end
  meta = {'e', value}
end
local first = head + 1
local last = head + n
local parts = {}
for i = 1, n do
  parts[4 * i - 3] = ARGV[9 + 2 * i]
  parts[4 * i - 2] = fmt('%d', first + i - 1)
  parts[4 * i - 1] = ARGV[10 + 2 * i]
  parts[4 * i] = '\n'
end
parts[4 * n] = nil
local joined = table.concat(parts)
local b = (tonumber(m[3]) or 0) + #joined - (n - 1)
local low = tonumber(m[4]) or 1
local hk = (tonumber(m[5]) or 0) + n
local lb = tonumber(m[6]) or 0
local low_was, lb_was = low, lb
local max = tonumber(ARGV[2])
local refresh = fresh or ARGV[7] == '1'
if max > 0 then
  local max_bytes = tonumber(ARGV[10])
  if refresh and not fresh then
    low, hk, lb = age_trim(KEYS[2], tonumber(ARGV[5]) - tonumber(ARGV[8]), low, hk, lb)
  end
  if hk > max and last - max + 1 >= j then
    -- No seq jump among the newest `max` seqs: they are exactly the newest `max` events.
    low = last - max + 1
    hk = max
  end
  if math.floor((low - 1) / 16) ~= math.floor((low_was - 1) / 16) then
    -- Entries wholly below `low` go once it passed a multiple of 16: at most 16 trimmed frames
    -- stay in memory (besides those in the entry `low` lies in), for a trim per 16 events.
    redis.call('XADD', KEYS[2], 'MINID', fmt('%d-0', low), fmt('%d-%d', last, first),
      't', ARGV[5], 'c', fmt('%d', b), 'f', joined)
  else
    redis.call('XADD', KEYS[2], fmt('%d-%d', last, first), 't', ARGV[5], 'c', fmt('%d', b),
      'f', joined)
  end
  if hk > max or b - lb > max_bytes then
    local keep, held, before = walk(KEYS[2], low, last, hk, b, max, max_bytes)
    if keep then
      low, hk, lb = keep, held, before
      redis.call('XTRIM', KEYS[2], 'MINID', fmt('%d-0', low))
    end
  end
end
if lb ~= lb_was then
  table.insert(meta, 'lb')
  table.insert(meta, fmt('%d', lb))
end
redis.call('HSET', KEYS[1], 'seq', fmt('%d', last), 'b', fmt('%d', b), 'low', fmt('%d', low),
  'hk', fmt('%d', hk), unpack(meta))
if refresh then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  if max > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
end
if ARGV[4] ~= '' then
  redis.call(ARGV[6], ARGV[4], fmt('%d', first) .. ' ' .. epoch .. ' ' .. joined)
end
return {first, epoch}
"#
);

/// Reads a slice: head, epoch (created for a stream that has none, so it is stable from the first
/// look), the effective `after` (0 when the caller's epoch is another), `low`, then up to `limit`
/// entries (batches) holding seqs past both as (id, joined frames) pairs; the node picks the
/// frames (`slice::parse_slice`).
///
/// On a cluster a created epoch names the primary (as `APPEND` does), so that appends on another
/// primary after a failover skip seqs the old one may have given out unreplicated.
///
/// KEYS: meta, stream. ARGV: after, requested epoch ('' for none), limit (≥ 1), candidate epoch,
/// ttl_ms, cluster ('1'/'0').
pub(crate) const READ: &str = r#"
local m = redis.call('HMGET', KEYS[1], 'seq', 'e', 'low')
local head = tonumber(m[1]) or 0
local epoch
if m[2] then
  epoch = string.match(m[2], '^([^/]*)')
else
  epoch = ARGV[4]
  local value = epoch
  if ARGV[6] == '1' then value = epoch .. '/' .. redis.call('CLUSTER', 'MYID') end
  redis.call('HSET', KEYS[1], 'e', value)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
local after = tonumber(ARGV[1])
if ARGV[2] ~= '' and ARGV[2] ~= epoch then after = 0 end
local low = tonumber(m[3]) or 1
local out = {head, epoch, after, low}
if after < head then
  local start = math.max(after + 1, low)
  -- Entries whose last seq is at least `start`; each holds one such event at least.
  local entries = redis.call('XRANGE', KEYS[2], start .. '-0', '+', 'COUNT', ARGV[3])
  for _, e in ipairs(entries) do
    table.insert(out, e[1])
    table.insert(out, e[2][6])
  end
end
return out
"#;

/// Keeps a connected user's stream alive: trims entries older than the ttl and refreshes the
/// keys' expiry. KEYS: meta, stream. ARGV: ttl_ms, now_ms.
pub(crate) const TOUCH: &str = concat!(
    age_trim_lua!(),
    r#"
local m = redis.call('HMGET', KEYS[1], 'low', 'hk', 'lb')
if m[1] then
  local low = tonumber(m[1])
  local low2, hk, lb = age_trim(KEYS[2], tonumber(ARGV[2]) - tonumber(ARGV[1]), low,
    tonumber(m[2]), tonumber(m[3]) or 0)
  if low2 ~= low then redis.call('HSET', KEYS[1], 'low', low2, 'hk', hk, 'lb', lb) end
end
for i = 1, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return 1
"#
);

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
        let script = if by_source { self.source } else { &self.hash };
        // Sized once: a batch's frames are most of the command, copied in without regrowing.
        let bytes = script.len()
            + keys.iter().map(String::len).sum::<usize>()
            + args.iter().map(|a| a.len()).sum::<usize>()
            + 16;
        let mut cmd = redis::Cmd::with_capacity(3 + keys.len() + args.len(), bytes);
        cmd.arg(if by_source { "EVAL" } else { "EVALSHA" })
            .arg(script)
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

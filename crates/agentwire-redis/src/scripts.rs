//! The Lua scripts that make each stream operation atomic on the Redis server.

/// Appends one event: the next seq (INCR), the epoch (kept, or set for a new stream), the frame
/// joined around the seq, XADD with an exact length cap, entries older than the ttl trimmed from
/// the front, every key's expiry refreshed, and the frame published to the user's channel — all
/// in one atomic step, so publication order is seq order.
///
/// KEYS: seq, stream, epoch. ARGV: candidate epoch, json prefix, json suffix, max_events, ttl_ms,
/// channel, now_ms.
pub(crate) const APPEND: &str = r#"
local seq = redis.call('INCR', KEYS[1])
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[3], epoch)
end
local frame = ARGV[2] .. seq .. ARGV[3]
local id = seq .. '-1'
if tonumber(ARGV[4]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], id, 't', ARGV[7], 'f', frame)
end
local min_ts = tonumber(ARGV[7]) - tonumber(ARGV[5])
for _ = 1, 64 do
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if #oldest == 0 or tonumber(oldest[1][2][2]) >= min_ts then break end
  redis.call('XDEL', KEYS[2], oldest[1][1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('PUBLISH', ARGV[6], seq .. ' ' .. epoch .. ' ' .. frame)
return seq
"#;

/// Reads a slice: head, epoch (created for a stream that has none, so it is stable from the first
/// look), the effective `after` (0 when the caller's epoch is another), the oldest held seq, and
/// up to `limit` entries after `after` as (id, frame) pairs.
///
/// KEYS: seq, stream, epoch. ARGV: after, requested epoch ('' for none), limit, candidate epoch,
/// ttl_ms.
pub(crate) const READ: &str = r#"
local head = tonumber(redis.call('GET', KEYS[1]) or '0')
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[3], epoch, 'PX', ARGV[5])
end
local after = tonumber(ARGV[1])
if ARGV[2] ~= '' and ARGV[2] ~= epoch then after = 0 end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first_seq = head + 1
if #first > 0 then first_seq = tonumber(string.match(first[1][1], '^(%d+)')) end
local out = {head, epoch, after, first_seq}
local limit = tonumber(ARGV[3])
if limit > 0 and after < head then
  local entries = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', limit)
  for _, e in ipairs(entries) do
    table.insert(out, e[1])
    table.insert(out, e[2][4])
  end
end
return out
"#;

/// Keeps a connected user's stream alive: trims entries older than the ttl and refreshes the
/// keys' expiry. KEYS: seq, stream, epoch. ARGV: ttl_ms, now_ms.
pub(crate) const TOUCH: &str = r#"
local min_ts = tonumber(ARGV[2]) - tonumber(ARGV[1])
for _ = 1, 64 do
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if #oldest == 0 or tonumber(oldest[1][2][2]) >= min_ts then break end
  redis.call('XDEL', KEYS[2], oldest[1][1])
end
for i = 1, 3 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return 1
"#;

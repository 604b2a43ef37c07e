//! The Lua scripts of the Redis store, one per conditional write that a single command cannot do. Each is loaded
//! once per connection (`EVALSHA`, re-sent on `NOSCRIPT`) and touches only the keys it is given, so it runs on
//! Cluster too.

/// Creates a hash field only if absent, and sets its expiry when the server has `HPEXPIREAT`.
/// KEYS[1] bucket; ARGV[1] field, ARGV[2] value, ARGV[3] expiry ms, ARGV[4] "1" to use HPEXPIREAT.
pub(super) const HASH_CREATE: &str = r"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if ARGV[4] == '1' then redis.call('HPEXPIREAT', KEYS[1], ARGV[3], 'FIELDS', 1, ARGV[1]) end
return 1";

/// Replaces a hash field only if present (a vanished session is never re-created) and, with ARGV[5] = "1", only
/// if it still holds ARGV[6] (the compare-and-set of a merging save). Returns 1 written, 0 vanished, or on a
/// conflict {the value stored now, -1}, so the merge needs no second read.
/// KEYS[1] bucket; ARGV[1] field, ARGV[2] value, ARGV[3] expiry ms, ARGV[4] "1" to use HPEXPIREAT.
pub(super) const HASH_UPDATE: &str = r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return 0 end
if ARGV[5] == '1' and current ~= ARGV[6] then return {current, -1} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] == '1' then redis.call('HPEXPIREAT', KEYS[1], ARGV[3], 'FIELDS', 1, ARGV[1]) end
return 1";

/// The compare-and-set of a string-valued session (`string` and `django-cache` layouts): `SET` only if the key
/// still holds ARGV[4]. Returns 1 written, 0 vanished, or on a conflict {the value stored now, its PTTL}, so the
/// merge needs no second read.
/// KEYS[1] key; ARGV[1] value, ARGV[2] TTL unit (PXAT|EX), ARGV[3] TTL, ARGV[4] the value loaded.
pub(super) const STRING_UPDATE_IF: &str = r"
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if current ~= ARGV[4] then return {current, redis.call('PTTL', KEYS[1])} end
redis.call('SET', KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return 1";

/// `cached_db`'s step aside on the `django-cache` layout: the tombstone (ARGV[1], Python's `None`) for ARGV[2]
/// milliseconds, unless the key holds one already (which keeps its expiry). Returns 1 when it wrote one.
#[cfg(feature = "django-cache")]
pub(super) const STEP_ASIDE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1";

/// Deletes the given fields of a bucket whose value is still expired: reads each value's header (byte 1 format
/// version 1, bytes 3-6 the expiry in Unix seconds, big-endian; see [`value`](super::value)) and deletes the field only when that
/// expiry is at or before ARGV[1]. A field refreshed since the sweeper read it is kept.
/// KEYS[1] bucket; ARGV[1] now (Unix seconds); ARGV[2..] fields.
pub(super) const HASH_SWEEP_DELETE: &str = r"
local now = tonumber(ARGV[1])
local removed = 0
for i = 2, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v and #v >= 6 and string.byte(v, 1) == 1 then
    local b3, b4, b5, b6 = string.byte(v, 3, 6)
    if ((b3 * 256 + b4) * 256 + b5) * 256 + b6 <= now then
      removed = removed + redis.call('HDEL', KEYS[1], ARGV[i])
    end
  end
end
return removed";

/// Writes a session and, only if that succeeded, records it in its user's index (standalone and Sentinel, where
/// all keys are reachable from one script). An update with ARGV[15] = "1" is a compare-and-set: it writes only if
/// the session still holds ARGV[16]. Returns 1 written, 0 vanished (update) or taken (create), or on a conflict
/// {the value stored now, its PTTL (-1 for a hash field)}.
/// KEYS: session key or bucket, user index, user details.
/// ARGV: op (create|update), kind (set|hash), value, expiry ms, SET ttl unit (PXAT|EX), SET ttl value, hash field,
/// "1" to use HPEXPIREAT, session id, now ms, user agent, IP, index score ms, "1" to rewrite the index entry, "1" to
/// compare, the value loaded.
pub(super) const INDEXED_WRITE: &str = r"
if ARGV[2] == 'hash' then
  if ARGV[1] == 'create' then
    if redis.call('HSETNX', KEYS[1], ARGV[7], ARGV[3]) == 0 then return 0 end
  else
    local current = redis.call('HGET', KEYS[1], ARGV[7])
    if not current then return 0 end
    if ARGV[15] == '1' and current ~= ARGV[16] then return {current, -1} end
    redis.call('HSET', KEYS[1], ARGV[7], ARGV[3])
  end
  if ARGV[8] == '1' then redis.call('HPEXPIREAT', KEYS[1], ARGV[4], 'FIELDS', 1, ARGV[7]) end
elseif ARGV[1] == 'create' then
  if not redis.call('SET', KEYS[1], ARGV[3], ARGV[5], ARGV[6], 'NX') then return 0 end
else
  if ARGV[15] == '1' then
    local current = redis.call('GET', KEYS[1])
    if not current then return 0 end
    if current ~= ARGV[16] then return {current, redis.call('PTTL', KEYS[1])} end
  end
  if not redis.call('SET', KEYS[1], ARGV[3], ARGV[5], ARGV[6], 'XX') then return 0 end
end
local id = ARGV[9]
if ARGV[14] ~= '1' then
  local score = redis.call('ZSCORE', KEYS[2], id)
  if score and tonumber(score) >= tonumber(ARGV[4]) then return 1 end
end
redis.call('ZADD', KEYS[2], ARGV[13], id)
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[10])) do
  redis.call('HDEL', KEYS[3], dead .. ':c', dead .. ':s', dead .. ':k', dead .. ':f', dead .. ':a', dead .. ':i')
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[10])
redis.call('HSETNX', KEYS[3], id .. ':c', ARGV[10])
redis.call('HSET', KEYS[3], id .. ':s', ARGV[10], id .. ':k', KEYS[1])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[3], id .. ':f', ARGV[7]) end
if ARGV[11] ~= '' then redis.call('HSET', KEYS[3], id .. ':a', ARGV[11]) end
if ARGV[12] ~= '' then redis.call('HSET', KEYS[3], id .. ':i', ARGV[12]) end
redis.call('PEXPIREAT', KEYS[2], ARGV[13], 'NX')
redis.call('PEXPIREAT', KEYS[2], ARGV[13], 'GT')
redis.call('PEXPIREAT', KEYS[3], ARGV[13], 'NX')
redis.call('PEXPIREAT', KEYS[3], ARGV[13], 'GT')
return 1";

/// The touch of an idle timeout: moves a session's expiry without rewriting its data. A `string` value's header
/// expiry (bytes 3-6, see [`value`](super::value)) is overwritten in place (`SETRANGE`), a `hash` field's is
/// rewritten with its payload as stored, and the key's (or the field's) expiry follows; a `django-cache` value
/// has only the key's TTL. With KEYS[2] and KEYS[3] (standalone and Sentinel) the session's entry in its user's
/// index moves too, if it is there. Returns 1 moved, 0 no such session.
/// KEYS: session key or bucket[, user index, user details].
/// ARGV: kind (set|hash|cache), hash field, expiry ms, header expiry (4 bytes), "1" to use HPEXPIREAT, session
/// id, index score ms, now ms.
pub(super) const TOUCH: &str = r"
local kind = ARGV[1]
if kind == 'hash' then
  local v = redis.call('HGET', KEYS[1], ARGV[2])
  if not v then return 0 end
  if #v >= 6 and string.byte(v, 1) == 1 then
    redis.call('HSET', KEYS[1], ARGV[2], string.sub(v, 1, 2) .. ARGV[4] .. string.sub(v, 7))
  end
  if ARGV[5] == '1' then redis.call('HPEXPIREAT', KEYS[1], ARGV[3], 'FIELDS', 1, ARGV[2]) end
else
  if kind == 'set' then
    local head = redis.call('GETRANGE', KEYS[1], 0, 5)
    if head == '' then return 0 end
    if #head == 6 and string.byte(head, 1) == 1 then redis.call('SETRANGE', KEYS[1], 2, ARGV[4]) end
  end
  if redis.call('PEXPIREAT', KEYS[1], ARGV[3]) == 0 then return 0 end
end
if #KEYS >= 3 and redis.call('ZSCORE', KEYS[2], ARGV[6]) then
  redis.call('ZADD', KEYS[2], 'XX', 'GT', ARGV[7], ARGV[6])
  redis.call('HSET', KEYS[3], ARGV[6] .. ':s', ARGV[8])
  redis.call('PEXPIREAT', KEYS[2], ARGV[7], 'GT')
  redis.call('PEXPIREAT', KEYS[3], ARGV[7], 'GT')
end
return 1";

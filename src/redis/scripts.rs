//! The Lua scripts of [`RedisUsageStore`](super::RedisUsageStore): each one acts on one counter
//! atomically, as [`MemoryStore`](crate::MemoryStore) does under its lock.
//!
//! Every script gets the hash of used counts that holds the counter as `KEYS[1]` (the user's, or
//! the user's for one period), the counter's sorted set of reservations as `KEYS[2]` (both in
//! the user's hash slot), the counter's field in the hash as `ARGV[1]` and, as its *last*
//! argument, when a period hash expires (milliseconds since the epoch; `''` for the user's
//! hash, which never does). Time is Redis's own (`TIME`), so instances whose clocks differ agree on when a
//! lease ends. Counts are kept as decimal strings and added with decimal arithmetic in Lua, since
//! Lua's numbers are doubles: counts up to `u64::MAX` stay exact, and saturate at 0 and at
//! `u64::MAX` as the in-memory store's do. A count in Redis that is not a decimal number in that
//! range is an error reply, never a guess.

use std::sync::LazyLock;

use super::link::LuaScript;

/// Helpers shared by the scripts: validation, decimal arithmetic, Redis time, key upkeep.
const LIB: &str = r#"
local MAX = '18446744073709551615'

-- A count read from Redis or given as an argument, as a canonical decimal string; nil stays nil.
local function count(value, what)
  if not value then return nil end
  if type(value) ~= 'string' or not string.find(value, '^%d+$') then
    error({err = 'ERR tower-plans: ' .. what .. ' is not a count'})
  end
  local canonical = string.gsub(value, '^0+', '')
  if canonical == '' then canonical = '0' end
  if #canonical > 20 or (#canonical == 20 and canonical > MAX) then
    error({err = 'ERR tower-plans: ' .. what .. ' is out of range'})
  end
  return canonical
end

local function compare(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end

local function digits(reversed)
  local out = {}
  for i = #reversed, 1, -1 do out[#out + 1] = string.char(48 + reversed[i]) end
  local text = string.gsub(table.concat(out), '^0+', '')
  if text == '' then return '0' end
  return text
end

-- a + b, saturating at MAX.
local function add(a, b)
  local reversed, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local d = carry
    if i > 0 then d = d + string.byte(a, i) - 48; i = i - 1 end
    if j > 0 then d = d + string.byte(b, j) - 48; j = j - 1 end
    reversed[#reversed + 1] = d % 10
    carry = (d - d % 10) / 10
  end
  local sum = digits(reversed)
  if compare(sum, MAX) > 0 then return MAX end
  return sum
end

-- a - b, saturating at 0.
local function sub(a, b)
  if compare(a, b) <= 0 then return '0' end
  local reversed, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local d = string.byte(a, i) - 48 - borrow
    i = i - 1
    if j > 0 then d = d - (string.byte(b, j) - 48); j = j - 1 end
    if d < 0 then d = d + 10; borrow = 1 else borrow = 0 end
    reversed[#reversed + 1] = d
  end
  return digits(reversed)
end

local function int(x) return string.format('%.0f', x) end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Forgets the reservations whose lease has passed (expired when now >= expiry).
local function purge(holds, now)
  redis.call('ZREMRANGEBYSCORE', holds, '-inf', int(now))
end

-- A period counter's hash expires after its period: the last argument says when.
local function expire_used()
  local at = ARGV[#ARGV]
  if at ~= '' then redis.call('PEXPIREAT', KEYS[1], at) end
end

-- Where a counter that does not exist starts: the item counter's count in the same hash when
-- the seed follows one (`follows` is its field) and it exists, else the seed.
local function seeded(seed, follows)
  if follows ~= '' then
    local items = count(redis.call('HGET', KEYS[1], follows), 'the item count')
    if items then return items end
  end
  return count(seed, 'the seed')
end

-- Lets the set of reservations expire with its last reservation.
local function keep_alive(holds)
  local last = redis.call('ZRANGE', holds, -1, -1, 'WITHSCORES')
  if last[2] == nil then return end
  local score = tonumber(last[2])
  if score == nil or score == math.huge then
    redis.call('PERSIST', holds)
  else
    redis.call('PEXPIREAT', holds, int(math.floor(score) + 1))
  end
end
"#;

/// `ARGV[2]` the limit (`''`: unlimited), `ARGV[3]` the seed, `ARGV[4]` the reservation id,
/// `ARGV[5]` the lease in milliseconds (`''`: endless), `ARGV[6]` the field of the item counter
/// the seed follows (`''`: none). Answers `{reserved (1 or 0), used, held}`, the counts as they
/// were before, excluding the reservation itself. A counter that does not exist is created at
/// its seed when the unit is reserved, never when it is refused.
const RESERVE: &str = r#"
local now = now_ms()
purge(KEYS[2], now)
local used = count(redis.call('HGET', KEYS[1], ARGV[1]), 'the used count')
local existed = used ~= nil
if not existed then
  used = seeded(ARGV[3], ARGV[6])
end
local held = redis.call('ZCARD', KEYS[2])
local expires = '+inf'
if ARGV[5] ~= '' then expires = int(now + tonumber(ARGV[5])) end
if redis.call('ZSCORE', KEYS[2], ARGV[4]) then
  redis.call('ZADD', KEYS[2], expires, ARGV[4])
  keep_alive(KEYS[2])
  return {1, used, held - 1}
end
if ARGV[2] ~= '' and compare(add(used, tostring(held)), count(ARGV[2], 'the limit')) >= 0 then
  return {0, used, held}
end
redis.call('ZADD', KEYS[2], expires, ARGV[4])
keep_alive(KEYS[2])
if not existed then
  redis.call('HSET', KEYS[1], ARGV[1], used)
  expire_used()
end
return {1, used, held}
"#;

/// `ARGV[2]` the reservation id. Answers the used count after.
const COMMIT: &str = r#"
purge(KEYS[2], now_ms())
local used = count(redis.call('HGET', KEYS[1], ARGV[1]), 'the used count') or '0'
if redis.call('ZREM', KEYS[2], ARGV[2]) == 0 then return used end
used = add(used, '1')
redis.call('HSET', KEYS[1], ARGV[1], used)
expire_used()
return used
"#;

/// `ARGV[2]` the reservation id.
const RELEASE: &str = r#"
purge(KEYS[2], now_ms())
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"#;

/// `ARGV[2]` the sign (`+` or `-`), `ARGV[3]` the magnitude, `ARGV[4]` the seed, `ARGV[5]` the
/// field of the item counter the seed follows (`''`: none). Answers the used count after.
const ADJUST: &str = r#"
local used = count(redis.call('HGET', KEYS[1], ARGV[1]), 'the used count')
if not used then used = seeded(ARGV[4], ARGV[5]) end
local delta = count(ARGV[3], 'the delta')
if ARGV[2] == '-' then used = sub(used, delta) else used = add(used, delta) end
redis.call('HSET', KEYS[1], ARGV[1], used)
expire_used()
return used
"#;

/// Answers `{used, held}` (`used` false when the counter does not exist), or nil when neither
/// the counter nor a live reservation exists.
const GET: &str = r#"
local now = now_ms()
local used = count(redis.call('HGET', KEYS[1], ARGV[1]), 'the used count')
local held = redis.call('ZCOUNT', KEYS[2], '(' .. int(now), '+inf')
if not used and held == 0 then return nil end
return {used or '0', held}
"#;

/// `ARGV[2]` the used count. Sets the count, leaving reservations alone.
const SET: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], count(ARGV[2], 'the used count'))
expire_used()
return 1
"#;

/// Removes the counter and its reservations.
const RESET: &str = r#"
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
"#;

fn script(body: &str) -> LuaScript {
    LuaScript::new(format!("{LIB}{body}"))
}

pub(crate) static RESERVE_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| script(RESERVE));
pub(crate) static COMMIT_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| script(COMMIT));
pub(crate) static RELEASE_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| script(RELEASE));
pub(crate) static ADJUST_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| script(ADJUST));
pub(crate) static GET_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| script(GET));
pub(crate) static SET_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| script(SET));
pub(crate) static RESET_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| script(RESET));

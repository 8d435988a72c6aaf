//! The Lua scripts of [`RedisUsageStore`](super::RedisUsageStore): reserve, commit and release
//! each act on a whole [`Hold`](crate::store::Hold) in one script, atomically, as
//! [`MemoryStore`](crate::MemoryStore) does under its lock; the other scripts act on one counter.
//!
//! A counter is three keys, all in its user's hash slot: the hash of used counts that holds its
//! field (the user's, or the user's for one period), the sorted set of the reservations held on
//! it (ids scored by the end of their lease) and the hash of the units each of them holds (by
//! id, with their exact sum in field `total`; a reservation holds units on a counter exactly when
//! that hash has its field). The hold scripts first forget the reservations whose lease has
//! passed, with their units, and `get` does not count them; the set and the hash of units
//! expire together with the last lease, so a crashed instance's holds vanish by themselves.
//!
//! The hold scripts read and check every count they need before they write, so that a count in
//! Redis that is not one fails the script with nothing changed (but expired reservations
//! forgotten, or a retried reservation's lease renewed).
//!
//! Time is Redis's own (`TIME`), so instances whose clocks differ agree on when a lease ends.
//! Counts are kept as decimal strings and added with decimal arithmetic in Lua, since Lua's
//! numbers are doubles: counts up to `u64::MAX` stay exact, and saturate at 0 and at `u64::MAX`
//! as the in-memory store's do (a sum of held units is kept exact, and answered saturated). A
//! count in Redis that is not a decimal number in that range is an error reply, never a guess.
//!
//! # The hold scripts' arguments
//!
//! `ARGV[1]` is the reservation id; the reserve script's `ARGV[2]` is the lease in milliseconds
//! (`''`: endless). Then come the hold's lines, each as
//! `field, expire, limit, units, seed, follows, grants` followed by `field, expire, amount` for
//! each of its `grants`: the field of its counter, when the counter's hash of used counts
//! expires (milliseconds since the epoch, `''` when it never does), the limit (`''`:
//! unlimited), the units it takes (for the commit script, the units it spent), the seed, the
//! field of the item counter the seed follows (`''`: none). Each counter, the line's and then
//! its grants', names its three keys in `KEYS`, in that order, the first line's first.

use std::sync::LazyLock;

use super::link::LuaScript;

/// Helpers shared by the scripts: validation, decimal arithmetic, Redis time.
const LIB: &str = r#"
local MAX = '18446744073709551615'

local function malformed(what)
  error({err = 'ERR tower-plans: ' .. what})
end

-- A decimal string read from Redis or given as an argument, canonical (no leading zeros); nil
-- stays nil.
local function decimal(value, what)
  if not value then return nil end
  if type(value) ~= 'string' or not string.find(value, '^%d+$') then
    malformed(what .. ' is not a count')
  end
  local canonical = string.gsub(value, '^0+', '')
  if canonical == '' then canonical = '0' end
  return canonical
end

local function compare(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end

-- A count: a decimal string up to MAX.
local function count(value, what)
  local canonical = decimal(value, what)
  if canonical and compare(canonical, MAX) > 0 then
    malformed(what .. ' is out of range')
  end
  return canonical
end

local function digits(reversed)
  local out = {}
  for i = #reversed, 1, -1 do out[#out + 1] = string.char(48 + reversed[i]) end
  local text = string.gsub(table.concat(out), '^0+', '')
  if text == '' then return '0' end
  return text
end

local function int(x) return string.format('%.0f', x) end

-- a + b, exact. Numbers of at most 15 digits add exactly as doubles (below 2^53).
local function plus(a, b)
  if #a <= 15 and #b <= 15 then return int(tonumber(a) + tonumber(b)) end
  local reversed, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local d = carry
    if i > 0 then d = d + string.byte(a, i) - 48; i = i - 1 end
    if j > 0 then d = d + string.byte(b, j) - 48; j = j - 1 end
    reversed[#reversed + 1] = d % 10
    carry = (d - d % 10) / 10
  end
  return digits(reversed)
end

-- At most MAX.
local function cap(a)
  if compare(a, MAX) > 0 then return MAX end
  return a
end

-- a + b, saturating at MAX.
local function add(a, b)
  return cap(plus(a, b))
end

-- a - b, saturating at 0.
local function sub(a, b)
  if compare(a, b) <= 0 then return '0' end
  if #a <= 15 then return int(tonumber(a) - tonumber(b)) end
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

local function min(a, b)
  if compare(a, b) <= 0 then return a end
  return b
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"#;

/// What the one-counter scripts share: `KEYS[1]` the hash of used counts, `ARGV[1]` the field
/// and, as the *last* argument, when the hash expires (`''`: never).
const ONE: &str = r#"
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
"#;

/// What the hold scripts share: reading the lines, and each counter's used count and holds.
const HOLDS: &str = r#"
-- The hold's lines, read from ARGV[from] on: each a list of counters (its own, then its
-- grants'), with the units it takes.
local function lines(from)
  local hold, a, k = {}, from, 1
  local function counter(field, expire, seed, follows, max)
    if KEYS[k + 2] == nil then malformed('a counter without its keys') end
    local c = {used = KEYS[k], held = KEYS[k + 1], units = KEYS[k + 2], field = field,
      expire = expire, seed = seed, follows = follows, max = max}
    k = k + 3
    return c
  end
  while a <= #ARGV do
    if ARGV[a + 6] == nil then malformed('a line without its arguments') end
    local limit = nil
    if ARGV[a + 2] ~= '' then limit = count(ARGV[a + 2], 'the limit') end
    local line = {units = count(ARGV[a + 3], 'the units')}
    line[1] = counter(ARGV[a], ARGV[a + 1], count(ARGV[a + 4], 'the seed'), ARGV[a + 5], limit)
    local grants = tonumber(count(ARGV[a + 6], 'the number of grants'))
    a = a + 7
    for j = 1, grants do
      if ARGV[a + 2] == nil then malformed('a grant without its arguments') end
      line[j + 1] = counter(ARGV[a], ARGV[a + 1], '0', '', count(ARGV[a + 2], 'the amount'))
      a = a + 3
    end
    hold[#hold + 1] = line
  end
  if KEYS[k] ~= nil then malformed('keys without a counter') end
  return hold
end

-- What this script read or wrote of each hash, by key then field (false: no such field), so
-- that each is read from Redis once.
local known = {}

local function hget(key, field)
  local fields = known[key]
  if not fields then
    fields = {}
    known[key] = fields
  end
  local value = fields[field]
  if value == nil then
    value = redis.call('HGET', key, field)
    fields[field] = value
  end
  return value
end

local function hset(key, field, value)
  redis.call('HSET', key, field, value)
  if not known[key] then known[key] = {} end
  known[key][field] = value
end

local function del(key)
  redis.call('DEL', key)
  known[key] = nil
end

-- The used count, nil when the counter does not exist.
local function used_of(c)
  return count(hget(c.used, c.field), 'the used count')
end

-- Where a counter that does not exist starts: the item counter's count in the same hash when
-- the seed follows one and it exists, else the seed.
local function seeded(c)
  if c.follows ~= '' then
    local items = count(hget(c.used, c.follows), 'the item count')
    if items then return items end
  end
  return c.seed
end

-- The used count, or where the counter starts.
local function used_or_seed(c)
  return used_of(c) or seeded(c)
end

local function set_used(c, used)
  hset(c.used, c.field, used)
  if c.expire ~= '' then redis.call('PEXPIREAT', c.used, c.expire) end
end

-- Creates the counter at its seed, if it does not exist.
local function create(c)
  if not used_of(c) then set_used(c, seeded(c)) end
end

-- The units held by live reservations (exact: it may pass MAX).
local function total(c)
  return decimal(hget(c.units, 'total'), 'the held units') or '0'
end

-- The units `id` holds, nil when it holds none (it holds units on a counter exactly when the
-- hash of units has a field for it, and a hold is never of 0 units).
local function units_of(c, id)
  if total(c) == '0' then return nil end
  return count(hget(c.units, id), 'the held units')
end

-- The units held by reservations other than `id`.
local function beside(c, id)
  return sub(total(c), units_of(c, id) or '0')
end

-- The set and the hash of units live as long as the last lease; the hash goes with the set.
-- Answers whether a reservation is left.
local function keep_alive(c)
  local last = redis.call('ZRANGE', c.held, -1, -1, 'WITHSCORES')
  if last[2] == nil then
    del(c.units)
    return false
  end
  local score = tonumber(last[2])
  if score == nil or score == math.huge then
    redis.call('PERSIST', c.held)
    redis.call('PERSIST', c.units)
  else
    local at = int(math.floor(score) + 1)
    redis.call('PEXPIREAT', c.held, at)
    redis.call('PEXPIREAT', c.units, at)
  end
  return true
end

-- Forgets the reservations whose lease has passed (at now >= the end), and their units.
local function purge(c, now)
  local gone = redis.call('ZRANGEBYSCORE', c.held, '-inf', int(now))
  if #gone == 0 then return end
  local sum = total(c)
  for _, id in ipairs(gone) do
    sum = sub(sum, count(hget(c.units, id), 'the held units') or '0')
  end
  redis.call('ZREMRANGEBYSCORE', c.held, '-inf', int(now))
  if redis.call('EXISTS', c.held) == 0 then
    del(c.units)
    return
  end
  for _, id in ipairs(gone) do
    redis.call('HDEL', c.units, id)
    known[c.units][id] = false
  end
  hset(c.units, 'total', sum)
end

-- Renews the lease of what `id` holds, if anything. Answers whether it held anything.
local function renew(c, id, expires)
  if not units_of(c, id) then return false end
  redis.call('ZADD', c.held, expires, id)
  keep_alive(c)
  return true
end

-- Holds `units` more for `id` until `expires`.
local function put(c, id, units, expires)
  local before = units_of(c, id) or '0'
  local sum = plus(total(c), units)
  redis.call('ZADD', c.held, expires, id)
  local held = add(before, units)
  redis.call('HSET', c.units, id, held, 'total', sum)
  if not known[c.units] then known[c.units] = {} end
  known[c.units][id] = held
  known[c.units].total = sum
  keep_alive(c)
end

-- Forgets what `id` holds, and answers its units (nil when it held nothing).
local function take(c, id)
  local units = units_of(c, id)
  if not units then return nil end
  local sum = sub(total(c), units)
  redis.call('ZREM', c.held, id)
  if keep_alive(c) then
    redis.call('HDEL', c.units, id)
    known[c.units][id] = false
    hset(c.units, 'total', sum)
  end
  return units
end

local function purge_all(hold, now)
  for _, line in ipairs(hold) do
    for _, c in ipairs(line) do purge(c, now) end
  end
end

-- Reads (and checks) what settling `id` needs of every counter, before anything is written:
-- a count in Redis that is not one fails the script with nothing changed but the purge.
local function check_all(hold, id)
  for _, line in ipairs(hold) do
    for _, c in ipairs(line) do
      units_of(c, id)
      total(c)
      used_or_seed(c)
    end
  end
end
"#;

/// The hold's lines from `ARGV[3]`. Answers `{'1', used, held, used, held, ...}` with each
/// line's count before (held by the other reservations), or `{'0', line, used, held}` with the
/// first line (from 0) that does not fit, holding nothing. A counter that does not exist is
/// created at its seed when a part is held on it, never on a refusal. Reserving an id already
/// held renews its leases and answers the counts beside it.
const RESERVE: &str = r#"
local id, now = ARGV[1], now_ms()
local expires = '+inf'
if ARGV[2] ~= '' then expires = int(now + tonumber(count(ARGV[2], 'the lease'))) end
local hold = lines(3)
purge_all(hold, now)

-- A retry: renew the leases of what is held.
local renewed = false
for _, line in ipairs(hold) do
  for _, c in ipairs(line) do
    if renew(c, id, expires) then renewed = true end
  end
end

-- What a line takes on each of its counters, nil when it does not fit: on its counter what
-- its limit allows, then on its grants in order what their amounts allow.
local function fit(line, used, held)
  local own, rest = line.units, '0'
  local max = line[1].max
  if max then
    local room = sub(max, plus(used, held))
    if #line == 1 then
      if compare(line.units, room) > 0 then return nil end
    else
      own = min(line.units, room)
      rest = sub(line.units, own)
    end
  end
  local parts = {own}
  for j = 2, #line do
    local grant = line[j]
    local room = sub(grant.max, plus(used_or_seed(grant), beside(grant, id)))
    parts[j] = min(rest, room)
    rest = sub(rest, parts[j])
  end
  if rest ~= '0' then return nil end
  return parts
end

local answer, taken = {'1'}, {}
for i, line in ipairs(hold) do
  local used, held = used_or_seed(line[1]), beside(line[1], id)
  answer[#answer + 1] = used
  answer[#answer + 1] = cap(held)
  if not renewed then
    taken[i] = fit(line, used, held)
    if not taken[i] then return {'0', tostring(i - 1), used, cap(held)} end
  end
end

if renewed then
  for _, line in ipairs(hold) do
    for _, c in ipairs(line) do
      if units_of(c, id) then create(c) end
    end
  end
  return answer
end
for i, line in ipairs(hold) do
  for j, c in ipairs(line) do
    if taken[i][j] ~= '0' then
      create(c)
      put(c, id, taken[i][j], expires)
    end
  end
end
return answer
"#;

/// The hold's lines from `ARGV[2]`, each with the units it spent. Counts them on the parts
/// each line held first, in order; beyond, on its counter while its limit allows, then on its
/// grants while their amounts allow, and the rest on its counter past its limit. A line whose
/// counters hold nothing for the id (settled, expired, unknown) counts nothing.
const COMMIT: &str = r#"
local id, now = ARGV[1], now_ms()
local hold = lines(2)
purge_all(hold, now)
check_all(hold, id)

local function spend(line, held, spent)
  local taken, rest = {}, spent
  for j = 1, #line do
    taken[j] = min(rest, held[j])
    rest = sub(rest, taken[j])
  end
  if rest == '0' then return taken end
  for j, c in ipairs(line) do
    if not c.max then
      taken[j] = add(taken[j], rest)
      return taken
    end
    local room = sub(c.max, plus(plus(used_or_seed(c), total(c)), taken[j]))
    local more = min(rest, room)
    taken[j] = plus(taken[j], more)
    rest = sub(rest, more)
    if rest == '0' then return taken end
  end
  taken[1] = add(taken[1], rest)
  return taken
end

for _, line in ipairs(hold) do
  local held, any = {}, false
  for j, c in ipairs(line) do
    local units = take(c, id)
    if units then any = true end
    held[j] = units or '0'
  end
  if any then
    local taken = spend(line, held, line.units)
    for j, c in ipairs(line) do
      if taken[j] ~= '0' then set_used(c, add(used_or_seed(c), taken[j])) end
    end
  end
end
return 1
"#;

/// The hold's lines from `ARGV[2]`. Forgets what the id holds.
const RELEASE: &str = r#"
local id, now = ARGV[1], now_ms()
local hold = lines(2)
purge_all(hold, now)
check_all(hold, id)
for _, line in ipairs(hold) do
  for _, c in ipairs(line) do take(c, id) end
end
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

/// `ARGV[2]` the used count. Sets the count, leaving reservations alone.
const SET: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], count(ARGV[2], 'the used count'))
expire_used()
return 1
"#;

/// `KEYS[2]` the sorted set of reservations, `KEYS[3]` the hash of their units. Answers
/// `{used, held}` (`used` `'0'` when the counter does not exist), or nil when neither the
/// counter nor a live reservation exists. Reads only: reservations whose lease has passed are
/// left for the next write to forget, and not counted.
const GET: &str = r#"
local used = count(redis.call('HGET', KEYS[1], ARGV[1]), 'the used count')
local held = decimal(redis.call('HGET', KEYS[3], 'total'), 'the held units') or '0'
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', int(now_ms()))) do
  held = sub(held, count(redis.call('HGET', KEYS[3], id), 'the held units') or '0')
end
if not used and held == '0' then return nil end
return {used or '0', cap(held)}
"#;

/// `KEYS[2]` and `KEYS[3]` as for `GET`. Removes the counter and its reservations.
const RESET: &str = r#"
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
return 1
"#;

/// `KEYS[1]` the hash of a counter's alert markers, `ARGV[1]` the marker, `ARGV[2]` when the
/// hash expires (milliseconds since the epoch, `''`: never). Sets the marker and answers 1 when
/// it was not set, else 0. Each marker newly set sets the hash's expiry (the same for every
/// marker of the counter), which is checked before anything is written.
const MARK: &str = r#"
local expires = ARGV[2]
if expires ~= '' and not string.find(expires, '^%d+$') then
  return redis.error_reply('ERR tower-plans: the expiry of the markers is not a time')
end
if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 0 then return 0 end
if expires ~= '' then redis.call('PEXPIREAT', KEYS[1], expires) end
return 1
"#;

fn one_counter(body: &str) -> LuaScript {
    LuaScript::new(format!("{LIB}{ONE}{body}"))
}

fn whole_hold(body: &str) -> LuaScript {
    LuaScript::new(format!("{LIB}{HOLDS}{body}"))
}

pub(crate) static RESERVE_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| whole_hold(RESERVE));
pub(crate) static COMMIT_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| whole_hold(COMMIT));
pub(crate) static RELEASE_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| whole_hold(RELEASE));
pub(crate) static ADJUST_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| one_counter(ADJUST));
pub(crate) static GET_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| one_counter(GET));
pub(crate) static SET_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| one_counter(SET));
pub(crate) static MARK_SCRIPT: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(MARK.to_owned()));
pub(crate) static RESET_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| one_counter(RESET));

// The scripts of `RedisRates`: one key, a rate's theoretical arrival time (TAT), in
// microseconds as a decimal string. Time is the caller's (the layer's clock), never Redis's, so
// that the TAT is on the same clock as the `now` it is compared with. The arithmetic is
// `Gcra::step`'s and `Gcra::refund`'s on decimal strings, exact up to `u64::MAX` and saturating
// as they do; a TAT in Redis that is not a decimal number in that range is an error reply.

/// `KEYS[1]` the rate's key; `ARGV[1]` now, `ARGV[2]` the emission interval `T` and `ARGV[3]`
/// the tolerance `tau` (microseconds), `ARGV[4]` how long the key outlives its TAT
/// (milliseconds). A missing key is a TAT of 0. The request passes when
/// `max(tat, now) - now <= tau`: the key is then set to `max(tat, now) + T` (saturating), to
/// expire once that TAT is past (rounded up to a millisecond) and `ARGV[4]` more. Answers
/// `{tat, new}`: the TAT it read and the one it stored, `''` when it refused and stored
/// nothing, so that the caller decides with the step itself and checks that both agree.
const RATE_ACQUIRE: &str = r#"
local now = count(ARGV[1], 'the time')
local t = count(ARGV[2], 'the emission interval')
local tau = count(ARGV[3], 'the tolerance')
local kept = count(ARGV[4], 'the time kept')
local tat = count(redis.call('GET', KEYS[1]), 'the theoretical arrival time') or '0'

-- Below 2^53 a double holds every integer exactly: a decimal of at most 15 digits, or of 16
-- up to 2^53 - 1. Then the step runs on doubles, as long as the new TAT stays there too.
local EXACT = '9007199254740991'
local function exact(d) return #d < 16 or (#d == 16 and d <= EXACT) end
local new, ahead
if exact(tat) and exact(now) and exact(t) and exact(tau) then
  local start = math.max(tonumber(tat), tonumber(now))
  if start - tonumber(now) > tonumber(tau) then return {tat, ''} end
  local sum = start + tonumber(t)
  if sum <= tonumber(EXACT) then
    new = int(sum)
    ahead = sum - tonumber(now)
  end
end
if not new then
  local start = tat
  if compare(start, now) < 0 then start = now end
  if compare(sub(start, now), tau) > 0 then return {tat, ''} end
  new = add(start, t)
  ahead = tonumber(sub(new, now))
end
-- `new - now` is at most `tau + T = T * burst <= per`, at most 2^52: exact as a double, and
-- so is its quotient rounded up.
local ttl = math.floor((ahead + 999) / 1000) + tonumber(kept)
redis.call('SET', KEYS[1], new, 'PX', int(math.max(ttl, 1)))
return {tat, new}
"#;

/// `KEYS[1]` the rate's key, `ARGV[1]` the emission interval `T` (microseconds). Moves the TAT
/// back by `T` (saturating at 0) and keeps the key's expiry; a missing key stays missing.
/// Answers 1 when it moved a TAT, 0 otherwise.
const RATE_REFUND: &str = r#"
local t = count(ARGV[1], 'the emission interval')
local tat = count(redis.call('GET', KEYS[1]), 'the theoretical arrival time')
if not tat then return 0 end
redis.call('SET', KEYS[1], sub(tat, t), 'KEEPTTL')
return 1
"#;

pub(crate) static RATE_ACQUIRE_SCRIPT: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(format!("{LIB}{RATE_ACQUIRE}")));
pub(crate) static RATE_REFUND_SCRIPT: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(format!("{LIB}{RATE_REFUND}")));

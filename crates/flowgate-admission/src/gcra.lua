-- flowgate's shared GCRA, version 1 (the version is part of every key: `<prefix>:rl1:...`).
-- The same arithmetic as gcra.rs, on the Redis server's clock, so that every replica
-- counts against one timestamp whatever its own clock says.
--
-- KEYS[1]  the theoretical arrival time (TAT) of one limit's value: microseconds on the
--          server's clock, kept until the value is back to its full burst (its TTL).
-- ARGV[1]  "check" or "settle"
-- ARGV[2]  the emission interval, microseconds (may have a fraction)
-- ARGV[3]  the burst
-- ARGV[4]  check: the request's cost; settle: the units reserved
-- ARGV[5]  settle: the units used
--
-- check  -> {admitted 1|0, remaining, reset_us, retry_after_us (-1: never)}
-- settle -> microseconds until the value is back to its full burst
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or 0
local tolerance = burst * interval

local function store(v)
  if v > now then
    redis.call('SET', KEYS[1], string.format('%.17g', v), 'PX', math.ceil((v - now) / 1000))
  else
    redis.call('DEL', KEYS[1])
  end
end

if ARGV[1] == 'settle' then
  local reserved, actual = tonumber(ARGV[4]), tonumber(ARGV[5])
  if actual >= reserved then
    tat = math.max(tat, now) + (actual - reserved) * interval
  else
    tat = math.max(tat - (reserved - actual) * interval, now)
  end
  store(tat)
  return math.floor(tat - now)
end

local cost = tonumber(ARGV[4])
local start = math.max(tat, now)
local nxt = start + cost * interval
-- A hair of slack for the fractions of a fractional interval.
if nxt - now <= tolerance + 1e-6 then
  store(nxt)
  return {1, math.floor((tolerance - (nxt - now)) / interval + 1e-9), math.ceil(nxt - now), 0}
end
local retry = -1
if cost <= burst then
  retry = math.ceil(nxt - now - tolerance)
end
return {0, math.floor(math.max(0, tolerance - (start - now)) / interval + 1e-9), math.ceil(start - now), retry}

-- flowgate's shared budget counters (bud2): one replica's spend per bucket, summed.
--
-- KEYS: one budget counter's buckets (hashes: replica -> whole micro-dollars it spent in
-- the bucket). ARGV[1]: the replica; then for each key: what the replica has spent in
-- that bucket (0: nothing to write) and the key's TTL in seconds.
-- Writes are absolute, so sending them again (after a timeout, or to a Redis that came
-- back empty) is harmless. Returns each bucket's total over all replicas, in KEYS order.
local totals = {}
for i = 1, #KEYS do
  local mine = tonumber(ARGV[2 * i])
  if mine > 0 then
    redis.call('HSET', KEYS[i], ARGV[1], mine)
    redis.call('EXPIRE', KEYS[i], ARGV[2 * i + 1])
  end
  local sum = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[i])) do
    sum = sum + tonumber(v)
  end
  totals[i] = sum
end
return totals

-- One round of the trainer lease and of the replicas' heartbeats (see
-- models.go): this replica's heartbeat is recorded and those older than
-- the lease forgotten; the lease is taken when free, extended when held
-- by this replica (compare-and-extend), else left to its holder.
-- KEYS[1] the lease, KEYS[2] the heartbeats (sorted set, score: Redis's
-- time in ms, so replicas' clocks do not matter)
-- ARGV[1] this replica, ARGV[2] the lease time in ms.
-- Returns {1 when this replica holds the lease else 0, live replicas}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - lease)
redis.call('PEXPIRE', KEYS[2], 2 * lease)
local n = redis.call('ZCARD', KEYS[2])
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], lease)
  return {1, n}
end
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', lease)
  return {1, n}
end
return {0, n}

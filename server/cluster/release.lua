-- A replica shutting down: it gives the trainer lease up when it holds it
-- (another replica takes it at its next round, not after the lease time)
-- and leaves the heartbeats. KEYS[1] the lease, KEYS[2] the heartbeats,
-- ARGV[1] this replica. Returns 1 when the lease was given up.
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0

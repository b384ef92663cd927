-- The trainer lease: take it when free, extend it when held by this
-- replica (compare-and-extend), else leave it (see models.go).
-- KEYS[1] the lease, ARGV[1] this replica, ARGV[2] lease time in ms.
-- Returns 1 when this replica holds the lease, 0 when another does.
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0

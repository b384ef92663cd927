-- Publish one API's model document, only while holding the trainer lease
-- (a replica that lost it publishes nothing), under the next version.
-- KEYS[1] the lease, KEYS[2] the versions hash, KEYS[3] the model's hash
-- ARGV[1] this replica, ARGV[2] the API, ARGV[3] the document (JSON).
-- Returns the version, or -1 when this replica does not hold the lease.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local v = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('HSET', KEYS[3], 'version', v, 'replica', ARGV[1], 'doc', ARGV[3])
return v

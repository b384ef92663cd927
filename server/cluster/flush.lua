-- One identity's behaviour windows: add a replica's delta and read the
-- cluster's merged windows back, in one round trip (see flush.go).
--
-- KEYS[1]  the identity's hash (<prefix>b:{<hash of api, kind, id>})
-- ARGV[1]  key expiry in milliseconds (a little past the widest window)
-- ARGV[2]  short buckets kept, ARGV[3] long buckets kept (counted back
--          from the newest bucket the hash holds, so pruning follows the
--          data's own time, not Redis's clock: replays work too)
-- ARGV[4]  this flusher's field of the last segment applied (q<flusher id>)
-- ARGV[5]  S, the number of segments of counter increments that follow;
--          each: seq, n, then n pairs (field, increment). A segment whose
--          seq is not past the flusher's last one is skipped: a flush that
--          timed out may still run after the flusher resent its segment,
--          and each increment must count once.
-- then pairs (field, registers) to the end.
--
-- Fields: s<i> a short bucket's requests; l<i>.<c> long bucket i's
-- counter c (0 requests, 1 errors, 2 failed, 3 login failures, 4 deletes);
-- b<i> long bucket i's response bytes; k<s>.<e> sketch s's registers of
-- epoch e, one byte per register, merged by register-wise max; q<id> a
-- flusher's last segment (kept, never returned).
--
-- Returns the hash after pruning, as HGETALL does, without the q fields.
local key = KEYS[1]
local qf = ARGV[4]
local last = tonumber(redis.call('HGET', key, qf) or '0')
local seen = last
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  local seq, n = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  if seq > last then
    for _ = 1, n do
      redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1])
      i = i + 2
    end
    last = seq
  else
    i = i + 2 * n
  end
end
if last ~= seen then
  redis.call('HSET', key, qf, last)
end
while i < #ARGV do
  local f, regs = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', key, f)
  if old and #old == #regs then
    local a = {string.byte(old, 1, -1)}
    local b = {string.byte(regs, 1, -1)}
    local changed = false
    for j = 1, #b do
      if b[j] > a[j] then
        a[j] = b[j]
        changed = true
      end
    end
    if changed then
      redis.call('HSET', key, f, string.char(unpack(a)))
    end
  else
    redis.call('HSET', key, f, regs)
  end
  i = i + 2
end

local all = redis.call('HGETALL', key)
-- Each field parsed once: its type, bucket index or epoch, sketch.
local typ, num, skn = {}, {}, {}
local maxS, maxL = nil, nil
local maxE = {}
for j = 1, #all, 2 do
  local f = all[j]
  local t = string.sub(f, 1, 1)
  local x, s
  if t == 's' or t == 'b' then
    x = tonumber(string.sub(f, 2))
  elseif t == 'l' then
    local dot = string.find(f, '.', 2, true)
    if dot then x = tonumber(string.sub(f, 2, dot - 1)) end
  elseif t == 'k' then
    local dot = string.find(f, '.', 2, true)
    if dot then
      s = string.sub(f, 2, dot - 1)
      x = tonumber(string.sub(f, dot + 1))
    end
  end
  typ[j], num[j], skn[j] = t, x, s
  if x then
    if t == 's' then
      if not maxS or x > maxS then maxS = x end
    elseif t == 'l' or t == 'b' then
      if not maxL or x > maxL then maxL = x end
    elseif t == 'k' then
      if not maxE[s] or x > maxE[s] then maxE[s] = x end
    end
  end
end

local keepS, keepL = tonumber(ARGV[2]), tonumber(ARGV[3])
local drop, out = {}, {}
for j = 1, #all, 2 do
  local t, x = typ[j], num[j]
  local stale
  if t == 'q' then
    stale = nil -- kept, not returned
  elseif not x then
    stale = true
  elseif t == 's' then
    stale = x <= maxS - keepS
  elseif t == 'l' or t == 'b' then
    stale = x <= maxL - keepL
  elseif t == 'k' then
    stale = x < maxE[skn[j]] - 1
  else
    stale = true
  end
  if stale then
    drop[#drop + 1] = all[j]
  elseif stale == false then
    out[#out + 1] = all[j]
    out[#out + 1] = all[j + 1]
  end
end
for j = 1, #drop, 1000 do
  redis.call('HDEL', key, unpack(drop, j, math.min(j + 999, #drop)))
end
redis.call('PEXPIRE', key, ARGV[1])
return out

-- Releases reservations that outlived any request (an instance died holding them).
-- KEYS: [1] reservation index. ARGV: [1] cutoff (ms), [2] key prefix of reservation hashes.
-- Returns how many were released.
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1000)
for _, id in ipairs(stale) do
  local held = redis.call('HGETALL', ARGV[2] .. id)
  for j = 1, #held, 2 do
    if redis.call('HINCRBY', held[j], 'reserved', '-' .. held[j + 1]) < 0 then
      redis.call('HSET', held[j], 'reserved', 0)
    end
  end
  redis.call('DEL', ARGV[2] .. id)
  redis.call('ZREM', KEYS[1], id)
end
return #stale

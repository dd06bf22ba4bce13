-- Reserves a request's estimate on every line, or on none.
-- KEYS: [1] reservation index (sorted set), [2] reservation id sequence, [3..] the lines.
-- ARGV: [1] now (ms, the reservation's score), [2] key prefix of reservation hashes,
--       then per line: limit, estimate, start of the line's current window (µs since the epoch),
--       when the line may expire (ms since the epoch, after its window ends; 0: never).
-- Returns {1, id} when reserved, or {0, line index, used plus reserved, window start, ...}.
local lines = #KEYS - 2
local denied = {}
for i = 1, lines do
  local at = 2 + (i - 1) * 4
  local limit, estimate, start = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local line = redis.call('HMGET', KEYS[2 + i], 'start', 'used', 'reserved')
  local window, used = tonumber(line[1]), tonumber(line[2]) or 0
  if window == nil or window < start then
    window, used = start, 0
  end
  local taken = used + (tonumber(line[3]) or 0)
  if taken + estimate > limit then
    denied[#denied + 1] = i
    denied[#denied + 1] = taken
    denied[#denied + 1] = window
  end
end
if #denied > 0 then
  table.insert(denied, 1, 0)
  return denied
end
local id = redis.call('INCR', KEYS[2])
local held = ARGV[2] .. id
for i = 1, lines do
  local at = 2 + (i - 1) * 4
  local window = tonumber(redis.call('HGET', KEYS[2 + i], 'start'))
  if window == nil or window < tonumber(ARGV[at + 3]) then
    redis.call('HSET', KEYS[2 + i], 'start', ARGV[at + 3], 'used', 0)
  end
  redis.call('HINCRBY', KEYS[2 + i], 'reserved', ARGV[at + 2])
  redis.call('HSET', held, KEYS[2 + i], ARGV[at + 2])
  if tonumber(ARGV[at + 4]) > 0 then
    redis.call('PEXPIREAT', KEYS[2 + i], ARGV[at + 4])
  end
end
redis.call('ZADD', KEYS[1], ARGV[1], id)
return {1, id}

-- Reserves a request's estimate on every line, or on none.
-- KEYS: [1] reservation index (sorted set), [2] reservation id sequence, [3..] the lines.
-- ARGV: [1] now (ms, the reservation's score), [2] key prefix of reservation hashes,
--       then per line: limit, estimate, start of the line's current window (µs since the epoch),
--       when the line may expire (ms since the epoch, after its window ends; 0: never), and its
--       kind (b, t or r).
-- Returns {1, id} when reserved, {0, line index, used plus reserved, window start, ...} when
-- refused, or {2, line index, ...} when lines are missing (Redis lost them): then nothing is
-- changed, and the caller rebuilds them from stored usage and asks again. A missing line is never
-- taken as empty, or a Redis that lost its data would serve every budget again from zero.
local lines = #KEYS - 2
local missing = {2}
for i = 1, lines do
  if redis.call('EXISTS', KEYS[2 + i]) == 0 then
    missing[#missing + 1] = i
  end
end
if #missing > 1 then
  return missing
end
local denied = {}
local windows = {}
for i = 1, lines do
  local at = 2 + (i - 1) * 5
  local limit, estimate, start = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local line = redis.call('HMGET', KEYS[2 + i], 'start', 'used', 'reserved')
  local window, used = tonumber(line[1]), tonumber(line[2]) or 0
  -- Kept as text: Lua would print a number of microseconds in exponent form.
  windows[i] = line[1]
  if window == nil or window < start then
    window, used, windows[i] = start, 0, ARGV[at + 3]
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
  local at = 2 + (i - 1) * 5
  if tonumber(redis.call('HGET', KEYS[2 + i], 'start')) < tonumber(windows[i]) then
    redis.call('HSET', KEYS[2 + i], 'start', windows[i], 'used', 0)
  end
  redis.call('HINCRBY', KEYS[2 + i], 'reserved', ARGV[at + 2])
  -- What a sweep needs to charge the estimate if this instance dies: estimate, window, kind.
  redis.call('HSET', held, KEYS[2 + i], ARGV[at + 2] .. ':' .. windows[i] .. ':' .. ARGV[at + 5])
  if tonumber(ARGV[at + 4]) > 0 then
    redis.call('PEXPIREAT', KEYS[2 + i], ARGV[at + 4])
  end
end
redis.call('ZADD', KEYS[1], ARGV[1], id)
return {1, id}

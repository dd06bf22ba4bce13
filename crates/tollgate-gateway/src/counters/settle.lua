-- Ends a reservation: releases its estimates (unless a sweep already did) and charges the actuals.
-- KEYS: [1] reservation index, [2] the reservation's hash, [3..] the lines.
-- ARGV: [1] reservation id, then per line: estimate, charge, start of the current window (µs),
--       when the line may expire (ms, after its window ends; 0: never).
-- Returns {used, window start} per line.
local live = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
local out = {}
for i = 1, #KEYS - 2 do
  local key, at = KEYS[2 + i], 1 + (i - 1) * 4
  if live == 1 and redis.call('HINCRBY', key, 'reserved', '-' .. ARGV[at + 1]) < 0 then
    redis.call('HSET', key, 'reserved', 0)
  end
  local window, start = tonumber(redis.call('HGET', key, 'start')), tonumber(ARGV[at + 3])
  if window == nil or window < start then
    redis.call('HSET', key, 'start', ARGV[at + 3], 'used', 0)
    window = start
  end
  out[#out + 1] = redis.call('HINCRBY', key, 'used', ARGV[at + 2])
  out[#out + 1] = window
  if tonumber(ARGV[at + 4]) > 0 then
    redis.call('PEXPIREAT', key, ARGV[at + 4])
  end
end
return out

-- Ends a reservation: releases its estimates (unless a sweep already did) and charges the actuals,
-- less what a sweep already charged for it (a request whose reservation was swept as if its
-- instance had died pays the larger of its estimate and its actual, never both). Every key is
-- one user copy's bucket (one hash tag, one Redis Cluster slot).
-- KEYS: [1] the bucket's reservation index, [2] the reservation's record, [3] its sweep marker,
--       [4..] the lines.
-- ARGV: [1] the reservation's name in the index, then per line: estimate, charge, start of the
--       current window (µs), when the line may expire (ms, after its window ends; 0: never).
-- Returns {1, used, window start, ...} per line, or {2, line index, ...} when lines are missing
-- (Redis lost them): then nothing is changed, and the caller rebuilds them and asks again.
local missing = {2}
for i = 1, #KEYS - 3 do
  if redis.call('EXISTS', KEYS[3 + i]) == 0 then
    missing[#missing + 1] = i
  end
end
if #missing > 1 then
  return missing
end
local live = redis.call('ZREM', KEYS[1], ARGV[1])
local swept = {}
if live == 1 then
  redis.call('DEL', KEYS[2])
else
  local marker = redis.call('HGETALL', KEYS[3])
  for j = 1, #marker, 2 do
    swept[marker[j]] = tonumber(marker[j + 1])
  end
  redis.call('DEL', KEYS[2], KEYS[3])
end
local out = {1}
for i = 1, #KEYS - 3 do
  local key, at = KEYS[3 + i], 1 + (i - 1) * 4
  if live == 1 and redis.call('HINCRBY', key, 'reserved', '-' .. ARGV[at + 1]) < 0 then
    redis.call('HSET', key, 'reserved', 0)
  end
  local window, start = tonumber(redis.call('HGET', key, 'start')), tonumber(ARGV[at + 3])
  if window < start then
    redis.call('HSET', key, 'start', ARGV[at + 3], 'used', 0)
    window = start
  end
  local charge = math.max(0, tonumber(ARGV[at + 2]) - (swept[key] or 0))
  if charge > 0 then
    out[#out + 1] = redis.call('HINCRBY', key, 'used', string.format('%d', charge))
  else
    out[#out + 1] = tonumber(redis.call('HGET', key, 'used')) or 0
  end
  out[#out + 1] = window
  if tonumber(ARGV[at + 4]) > 0 then
    redis.call('PEXPIREAT', key, ARGV[at + 4])
  end
end
return out

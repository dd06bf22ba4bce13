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
-- A line is read once and written at most once; its expiry is set only when it differs from the
-- one it was last given (`exp`), as in reserve.lua.
local lines = #KEYS - 3
local missing = {2}
local read = {}
for i = 1, lines do
  read[i] = redis.call('HMGET', KEYS[3 + i], 'start', 'used', 'reserved', 'exp')
  if not read[i][1] then
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
for i = 1, lines do
  local key, at, line = KEYS[3 + i], 1 + (i - 1) * 4, read[i]
  local fields = {}
  if live == 1 then
    local reserved = (tonumber(line[3]) or 0) - tonumber(ARGV[at + 1])
    fields[1], fields[2] = 'reserved', string.format('%d', math.max(0, reserved))
  end
  local window, used, start = tonumber(line[1]), tonumber(line[2]) or 0, tonumber(ARGV[at + 3])
  local charge = math.max(0, tonumber(ARGV[at + 2]) - (swept[key] or 0))
  if window < start then
    -- Kept as text: Lua would print a number of microseconds in exponent form.
    window, used = start, charge
    fields[#fields + 1], fields[#fields + 2] = 'start', ARGV[at + 3]
    fields[#fields + 1], fields[#fields + 2] = 'used', string.format('%d', used)
  elseif charge > 0 then
    used = used + charge
    fields[#fields + 1], fields[#fields + 2] = 'used', string.format('%d', used)
  end
  local expires = ARGV[at + 4]
  local renew = tonumber(expires) > 0 and line[4] ~= expires
  if renew then
    fields[#fields + 1], fields[#fields + 2] = 'exp', expires
  end
  if #fields > 0 then
    redis.call('HSET', key, unpack(fields))
  end
  if renew then
    redis.call('PEXPIREAT', key, expires)
  end
  out[#out + 1] = used
  out[#out + 1] = window
end
return out

-- Ends a reservation: releases its estimates (unless a sweep already did) and charges the actuals,
-- less what a sweep already charged for it (a request whose reservation was swept as if its
-- instance had died pays the larger of its estimate and its actual, never both). The lines and
-- the record live in the copy's hash (see reserve.lua).
-- KEYS: [1] the bucket's reservation index, [2] the copy's hash, [3] the reservation's sweep marker.
-- ARGV: [1] the reservation's name, then per line: its name, estimate, charge and the start of
--       its current window (µs).
-- Returns {1, used, window start, ...} per line, or {2, line index, ...} when lines are missing
-- (Redis lost them): then nothing is changed, and the caller rebuilds them and asks again.
local lines = (#ARGV - 1) / 4
local names = {}
for i = 1, lines do
  names[i] = ARGV[(i - 1) * 4 + 2]
end
local read = redis.call('HMGET', KEYS[2], unpack(names))
local missing = {2}
for i = 1, lines do
  if not read[i] then
    missing[#missing + 1] = i
  end
end
if #missing > 1 then
  return missing
end
local live = redis.call('ZREM', KEYS[1], ARGV[1])
local swept = {}
if live == 0 then
  local marker = redis.call('HGETALL', KEYS[3])
  for j = 1, #marker, 2 do
    swept[marker[j]] = tonumber(marker[j + 1])
  end
  redis.call('DEL', KEYS[3])
end
local fields = {}
local out = {1}
for i = 1, lines do
  local at = (i - 1) * 4 + 2
  local window, used, reserved = string.match(read[i], '^(%-?%d+):(%d+):(%d+)$')
  used, reserved = tonumber(used), tonumber(reserved)
  if live == 1 then
    reserved = math.max(0, reserved - tonumber(ARGV[at + 1]))
  end
  local charge = math.max(0, tonumber(ARGV[at + 2]) - (swept[names[i]] or 0))
  if tonumber(window) < tonumber(ARGV[at + 3]) then
    window, used = ARGV[at + 3], charge
  else
    used = used + charge
  end
  fields[#fields + 1] = names[i]
  fields[#fields + 1] = window .. ':' .. string.format('%d', used) .. ':' .. string.format('%d', reserved)
  out[#out + 1] = used
  out[#out + 1] = window
end
if lines > 0 then
  redis.call('HSET', KEYS[2], unpack(fields))
end
if live == 1 then
  redis.call('HDEL', KEYS[2], '@' .. ARGV[1])
end
return out

-- Reserves a request's estimate on every line, or on none. Every key is one user copy's bucket
-- (one hash tag, one Redis Cluster slot).
-- KEYS: [1] the bucket's reservation index (sorted set), [2] this reservation's record (a hash),
--       [3..] the lines.
-- ARGV: [1] now (ms, the reservation's score), [2] the reservation's name in the index,
--       then per line: limit, estimate, start of the line's current window (µs since the epoch),
--       when the line may expire (ms since the epoch, after its window ends; 0: never), and its
--       kind (b, t or r).
-- Returns {1} when reserved, {0, line index, used plus reserved, window start, ...} when refused,
-- or {2, line index, ...} when lines are missing (Redis lost them): then nothing is changed, and
-- the caller rebuilds them from stored usage and asks again. A missing line is never taken as
-- empty, or a Redis that lost its data would serve every budget again from zero.
-- A line is read once and written once (one HSET); its expiry is set only when it differs from
-- the one it was last given (`exp`), which is once per window.
local lines = #KEYS - 2
local missing = {2}
local denied = {}
local read = {}
for i = 1, lines do
  -- A line always has a window start: one without is missing.
  read[i] = redis.call('HMGET', KEYS[2 + i], 'start', 'used', 'reserved', 'exp')
  if not read[i][1] then
    missing[#missing + 1] = i
  end
end
if #missing > 1 then
  return missing
end
local windows = {}
for i = 1, lines do
  local at = 2 + (i - 1) * 5
  local limit, estimate, start = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local line = read[i]
  local window, used = tonumber(line[1]), tonumber(line[2]) or 0
  -- Kept as text: Lua would print a number of microseconds in exponent form.
  windows[i] = line[1]
  if window < start then
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
-- What a sweep needs to charge the estimate if this instance dies: per line key, estimate,
-- window and kind.
local record = {}
for i = 1, lines do
  local at = 2 + (i - 1) * 5
  local key, line = KEYS[2 + i], read[i]
  local expires = ARGV[at + 4]
  local fields = {'reserved', string.format('%d', (tonumber(line[3]) or 0) + tonumber(ARGV[at + 2]))}
  if windows[i] ~= line[1] then
    fields[3], fields[4], fields[5], fields[6] = 'start', windows[i], 'used', 0
  end
  local renew = tonumber(expires) > 0 and line[4] ~= expires
  if renew then
    fields[#fields + 1], fields[#fields + 2] = 'exp', expires
  end
  redis.call('HSET', key, unpack(fields))
  if renew then
    redis.call('PEXPIREAT', key, expires)
  end
  record[#record + 1] = key
  record[#record + 1] = ARGV[at + 2] .. ':' .. windows[i] .. ':' .. ARGV[at + 5]
end
if lines > 0 then
  redis.call('HSET', KEYS[2], unpack(record))
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return {1}

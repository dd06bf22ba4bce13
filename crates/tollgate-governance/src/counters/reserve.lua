-- Reserves a request's estimate on every line, or on none. All of a request's lines belong to
-- one user copy and live in that copy's hash (one key, one Redis Cluster slot with its bucket's
-- index): field `<line>` holds `<window start µs>:<used>:<reserved>`, field `exp` when the hash
-- expires, and field `@<reservation>` what each reservation holds, for a sweep.
-- KEYS: [1] the bucket's reservation index (sorted set), [2] the copy's hash.
-- ARGV: [1] now (ms, the reservation's score), [2] the reservation's name, [3] when the hash may
--       expire (ms since the epoch, after the last of these lines' windows ends; 0: never), then
--       per line: its name, limit, estimate, start of its current window (µs) and kind (b, t, r).
-- Returns {1, line index, used plus reserved, window start, ...} when reserved, naming each rate
-- line (kind t or r) with what it holds now, this reservation included (for the rate-limit
-- headers); {0, line index, used plus reserved, window start, ...} when refused,
-- or {2, line index, ...} when lines are missing (Redis lost them): then nothing is changed, and
-- the caller rebuilds them from stored usage and asks again. A missing line is never taken as
-- empty, or a Redis that lost its data would serve every budget again from zero.
-- One HMGET reads every line, one HSET writes them with the record; the expiry only ever moves
-- later (or is replaced when the database set it), so it is renewed about once per window.
local lines = (#ARGV - 3) / 5
local names = {}
for i = 1, lines do
  names[i] = ARGV[(i - 1) * 5 + 4]
end
local read = redis.call('HMGET', KEYS[2], 'exp', unpack(names))
local missing = {2}
for i = 1, lines do
  if not read[i + 1] then
    missing[#missing + 1] = i
  end
end
if #missing > 1 then
  return missing
end
local denied = {}
local rooms = {1}
local fields = {}
local record = {}
for i = 1, lines do
  local at = (i - 1) * 5 + 4
  local estimate = tonumber(ARGV[at + 2])
  -- The window start stays text: Lua would print a number of microseconds in exponent form.
  local window, used, reserved = string.match(read[i + 1], '^(%-?%d+):(%d+):(%d+)$')
  used, reserved = tonumber(used), tonumber(reserved)
  if tonumber(window) < tonumber(ARGV[at + 3]) then
    window, used = ARGV[at + 3], 0
  end
  if used + reserved + estimate > tonumber(ARGV[at + 1]) then
    denied[#denied + 1] = i
    denied[#denied + 1] = used + reserved
    denied[#denied + 1] = window
  end
  local kind = ARGV[at + 4]
  if kind ~= 'b' then
    rooms[#rooms + 1] = i
    rooms[#rooms + 1] = used + reserved + estimate
    rooms[#rooms + 1] = window
  end
  fields[#fields + 1] = names[i]
  fields[#fields + 1] = window .. ':' .. string.format('%d', used) .. ':' .. string.format('%d', reserved + estimate)
  record[#record + 1] = ARGV[at + 2] .. ' ' .. window .. ' ' .. ARGV[at + 4] .. ' ' .. names[i] .. '\n'
end
if #denied > 0 then
  table.insert(denied, 1, 0)
  return denied
end
fields[#fields + 1] = '@' .. ARGV[2]
fields[#fields + 1] = table.concat(record)
local expires, kept = ARGV[3], read[1]
local renew = kept ~= '0' and kept ~= expires
  and (expires == '0' or not kept or string.sub(kept, 1, 1) == 'a' or tonumber(expires) > tonumber(kept))
if renew then
  fields[#fields + 1] = 'exp'
  fields[#fields + 1] = expires
end
redis.call('HSET', KEYS[2], unpack(fields))
if renew then
  if expires == '0' then
    redis.call('PERSIST', KEYS[2])
  else
    redis.call('PEXPIREAT', KEYS[2], expires)
  end
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return rooms

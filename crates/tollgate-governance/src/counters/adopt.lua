-- Takes a line value from stored usage (at start, after a reset, or to rebuild a line Redis
-- lost) if the line is unknown or holds an older window, or holds less in the same window (a
-- line only grows within a window, so the larger value is the truer one). What the line has
-- reserved is kept.
-- KEYS: [1] the copy's hash. ARGV: [1] the line, [2] used, [3] window start (µs), [4] when the
-- hash may expire if it has no expiry of its own yet (ms; 0: never). An expiry set here is marked
-- (`a…`), so the next reservation replaces it with the exact one of its lines (reserve.lua).
-- Returns 1 if taken.
local read = redis.call('HMGET', KEYS[1], ARGV[1], 'exp')
local kept = read[2]
if not kept or (string.sub(kept, 1, 1) == 'a' and ARGV[4] ~= '0' and tonumber(ARGV[4]) > tonumber(string.sub(kept, 2))) then
  if ARGV[4] == '0' then
    redis.call('HSET', KEYS[1], 'exp', '0')
    redis.call('PERSIST', KEYS[1])
  else
    redis.call('HSET', KEYS[1], 'exp', 'a' .. ARGV[4])
    redis.call('PEXPIREAT', KEYS[1], ARGV[4])
  end
end
local start = tonumber(ARGV[3])
if not read[1] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. ':' .. ARGV[2] .. ':0')
  return 1
end
local window, used, reserved = string.match(read[1], '^(%-?%d+):(%d+):(%d+)$')
if tonumber(window) < start or (tonumber(window) == start and tonumber(used) < tonumber(ARGV[2])) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. ':' .. ARGV[2] .. ':' .. reserved)
  return 1
end
return 0

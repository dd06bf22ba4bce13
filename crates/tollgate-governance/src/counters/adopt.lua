-- Takes a line value from stored usage (at start, after a reset, or to rebuild a line Redis
-- lost) if the line is unknown or holds an older window, or holds less in the same window (a
-- line only grows within a window, so the larger value is the truer one).
-- KEYS: [1] the line. ARGV: [1] used, [2] window start (µs), [3] when a line created here may
-- expire (ms; 0: never). Returns 1 if taken. The expiry it sets is kept as `exp`, so a request
-- that computes another sets its own (reserve.lua).
local line = redis.call('HMGET', KEYS[1], 'start', 'used')
local window, used = tonumber(line[1]), tonumber(line[2]) or 0
local start = tonumber(ARGV[2])
if window == nil or window < start then
  redis.call('HSET', KEYS[1], 'start', ARGV[2], 'used', ARGV[1], 'exp', ARGV[3])
  if tonumber(ARGV[3]) > 0 then
    redis.call('PEXPIREAT', KEYS[1], ARGV[3])
  else
    redis.call('PERSIST', KEYS[1])
  end
  return 1
end
if window == start and used < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'used', ARGV[1])
  return 1
end
return 0

-- Takes a persisted line value if the line is unknown or holds an older window.
-- KEYS: [1] the line. ARGV: [1] used, [2] window start (µs), [3] when a line taken here may
-- expire (ms; the next reservation or settlement sets the exact time). Returns 1 if taken.
local window = tonumber(redis.call('HGET', KEYS[1], 'start'))
if window == nil or window < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'start', ARGV[2], 'used', ARGV[1])
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
  return 1
end
return 0

-- Ends one reservation that outlived any request: its instance died (or lost Redis for minutes),
-- and the upstream may well have served it, so it is charged at its estimate on every line still
-- in the window it was reserved in (the room it held moves from reserved to used). A marker
-- remembers what was charged for a day, so a settlement arriving later charges only the rest. A
-- line Redis lost is left alone (it is rebuilt from stored usage when next asked for).
-- KEYS: [1] the bucket's reservation index, [2] the copy's hash, [3] the reservation's sweep marker.
-- ARGV: [1] the reservation's name, [2] cutoff (ms), [3] how long a marker lives (ms).
-- Returns {0} if the reservation was settled or refreshed meanwhile, else {1, then per charged
-- line: name, kind, used, window start}.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then
  return {0}
end
local out = {1}
local record = redis.call('HGET', KEYS[2], '@' .. ARGV[1])
if record then
  local marker = {}
  for estimate, window, kind, name in string.gmatch(record, '(%d+) (%-?%d+) (%a) ([^\n]*)\n') do
    local charged = 0
    local value = redis.call('HGET', KEYS[2], name)
    if value then
      local start, used, reserved = string.match(value, '^(%-?%d+):(%d+):(%d+)$')
      used, reserved = tonumber(used), math.max(0, tonumber(reserved) - tonumber(estimate))
      if tonumber(start) == tonumber(window) then
        used = used + tonumber(estimate)
        charged = estimate
        out[#out + 1] = name
        out[#out + 1] = kind
        out[#out + 1] = used
        out[#out + 1] = window
      end
      redis.call('HSET', KEYS[2], name, start .. ':' .. string.format('%d', used) .. ':' .. string.format('%d', reserved))
    end
    marker[#marker + 1] = name
    marker[#marker + 1] = charged
  end
  if #marker > 0 then
    redis.call('HSET', KEYS[3], unpack(marker))
    redis.call('PEXPIRE', KEYS[3], ARGV[3])
  end
  redis.call('HDEL', KEYS[2], '@' .. ARGV[1])
end
redis.call('ZREM', KEYS[1], ARGV[1])
return out

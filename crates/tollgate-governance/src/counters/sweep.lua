-- Ends one reservation that outlived any request: its instance died (or lost Redis for minutes),
-- and the upstream may well have served it, so it is charged at its estimate on every line still
-- in the window it was reserved in (the room it held moves from reserved to used). A marker
-- remembers what was charged for a day, so a settlement arriving later charges only the rest. A
-- line Redis lost is left alone (it is rebuilt from stored usage when next asked for).
-- KEYS: [1] the bucket's reservation index, [2] the reservation's record, [3] its sweep marker,
--       [4..] the lines its record names (read by the caller just before).
-- ARGV: [1] the reservation's name in the index, [2] cutoff (ms), [3] how long a marker lives (ms).
-- Returns {0} if the reservation was settled or refreshed meanwhile, else {1, then per charged
-- line: key, kind, used, window start}.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then
  return {0}
end
local out = {1}
for i = 4, #KEYS do
  local key = KEYS[i]
  local held = redis.call('HGET', KEYS[2], key)
  if held then
    local estimate, window, kind = string.match(held, '^(%d+):(%-?%d+):(%a)$')
    estimate = estimate or held
    local charged = 0
    if redis.call('EXISTS', key) == 1 then
      if redis.call('HINCRBY', key, 'reserved', '-' .. estimate) < 0 then
        redis.call('HSET', key, 'reserved', 0)
      end
      if window ~= nil and tonumber(redis.call('HGET', key, 'start')) == tonumber(window) then
        out[#out + 1] = key
        out[#out + 1] = kind
        out[#out + 1] = redis.call('HINCRBY', key, 'used', estimate)
        out[#out + 1] = window
        charged = estimate
      end
    end
    redis.call('HSET', KEYS[3], key, charged)
  end
end
if #KEYS > 3 then
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return out

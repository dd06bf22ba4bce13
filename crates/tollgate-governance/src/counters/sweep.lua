-- Ends reservations that outlived any request: their instance died (or lost Redis for minutes),
-- and the upstream may well have served them, so each is charged at its estimate on every line
-- still in the window it was reserved in (the room it held moves from reserved to used). A
-- marker remembers what was charged for a day, so a settlement arriving later charges only the
-- rest. A line Redis lost is left alone (it is rebuilt from stored usage when next asked for).
-- KEYS: [1] reservation index. ARGV: [1] cutoff (ms), [2] key prefix of reservation hashes,
-- [3] key prefix of sweep markers, [4] how long a marker lives (ms).
-- Returns {reservations swept, then per charged line: key, kind, used, window start}.
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1000)
local out = {#stale}
for _, id in ipairs(stale) do
  local held = redis.call('HGETALL', ARGV[2] .. id)
  local marker = ARGV[3] .. id
  for j = 1, #held, 2 do
    local key = held[j]
    local estimate, window, kind = string.match(held[j + 1], '^(%d+):(%-?%d+):(%a)$')
    estimate = estimate or held[j + 1]
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
    redis.call('HSET', marker, key, charged)
  end
  if #held > 0 then
    redis.call('PEXPIRE', marker, ARGV[4])
  end
  redis.call('DEL', ARGV[2] .. id)
  redis.call('ZREM', KEYS[1], id)
end
return out

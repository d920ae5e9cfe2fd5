#!lua flags=no-writes
-- Reads what the writer published about a table, in one atomic call.
-- KEYS[1] meta hash, KEYS[2] lease key
-- ARGV[1] the key layout format the caller reads
-- Returns { status ("ok", "unloaded" or "format"), format, generation, codec,
-- index names JSON, step, refreshedAt, loadedAt, record count, writer id,
-- lease ms left }; absent values are nil.
local meta = redis.call('HMGET', KEYS[1], 'format', 'gen', 'codec', 'indexes', 'step', 'refreshedAt', 'loadedAt', 'overlay', 'count')
local generation = meta[2]
local status = 'ok'
local count = 0
if not generation then
  status = 'unloaded'
elseif meta[1] ~= ARGV[1] then
  status = 'format'
elseif meta[8] then
  -- During a large merge the generation's hash is half updated; the merge published the count.
  count = tonumber(meta[9])
else
  count = redis.call('HLEN', string.sub(KEYS[1], 1, -5) .. 'g' .. generation .. ':r')
end
local writer = redis.call('GET', KEYS[2])
local lease_ms = false
if writer then lease_ms = redis.call('PTTL', KEYS[2]) end
return { status, meta[1], generation, meta[3], meta[4], meta[5], meta[6], meta[7], count, writer, lease_ms }

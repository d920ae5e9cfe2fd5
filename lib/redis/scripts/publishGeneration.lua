-- Switches readers to a fully written generation: the pointer swap of an
-- initial load or reload. Readers resolve the generation inside their own
-- scripts, so each read sees the old generation or the new one, never both.
-- KEYS[1] meta hash, KEYS[2] the generation's records hash, KEYS[3..] its
-- sorted sets, one per index
-- ARGV[1] the writer's fence token, ARGV[2] generation id, ARGV[3] layout
-- format, ARGV[4] codec id, ARGV[5] index names (JSON), ARGV[6] coverage JSON,
-- ARGV[7] now (ms since the epoch), ARGV[8] the record count the writer's
-- loads left in the generation, or "" when it does not know it
-- An evicting Redis (allkeys-*) can drop the records hash and the indexes
-- between two batches of a load; later batches recreate them, with counts
-- that agree with each other but miss the evicted records. So the counts
-- must equal what the writer wrote, or nothing is published and the reply
-- is the error "TC_GENERATION_INCOMPLETE <records> <index counts...>".
-- Sets meta.count (see liveRecordCount.lua): that count, or HLEN when the
-- writer does not know it.
-- Announced on the change channel as "all".
-- Returns the previous live generation id, or nil. Atomic.
-- #include checkFence
-- #include announceStep
local records = redis.call('HLEN', KEYS[2])
if ARGV[8] ~= '' then
  local expected = tonumber(ARGV[8])
  local counts = { records }
  for j = 3, #KEYS do counts[#counts + 1] = redis.call('ZCARD', KEYS[j]) end
  for _, count in ipairs(counts) do
    if count ~= expected then return redis.error_reply('TC_GENERATION_INCOMPLETE ' .. table.concat(counts, ' ')) end
  end
end
local previous = redis.call('HGET', KEYS[1], 'gen')
redis.call('HSET', KEYS[1],
  'format', ARGV[3], 'gen', ARGV[2], 'loaded', '1', 'codec', ARGV[4], 'indexes', ARGV[5],
  'coverage', ARGV[6], 'refreshedAt', ARGV[7], 'loadedAt', ARGV[7], 'count', records)
local step = redis.call('HINCRBY', KEYS[1], 'step', 1)
-- An overlay belongs to the previous generation's unfinished merge.
redis.call('HDEL', KEYS[1], 'overlay')
announce(step, nil)
return previous

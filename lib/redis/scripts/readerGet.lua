#!lua flags=no-writes
-- Reads records by primary key from the live generation, resolving the
-- generation (and a merge's overlay) in the same atomic call, so the answer
-- is the state between two writer steps, never a mix.
-- KEYS[1] meta hash
-- ARGV[1] the key layout format the caller reads, ARGV[2] the codec id it
-- decodes, ARGV[3..] primary-key fields
-- Returns { step, then one record (or nil) per field }: the step is the
-- writer step the records were read at (a near-cache needs it, see
-- docs/redis-key-layout.md, "Change stream"). Errors: "TC_UNLOADED", "TC_FORMAT <format>", "TC_CODEC <codec>".
local meta = redis.call('HMGET', KEYS[1], 'format', 'codec', 'gen', 'overlay', 'step')
local generation, overlay = meta[3], meta[4]
if not generation then return redis.error_reply('TC_UNLOADED no generation is published') end
if meta[1] ~= ARGV[1] then return redis.error_reply('TC_FORMAT ' .. (meta[1] or '')) end
if meta[2] ~= ARGV[2] then return redis.error_reply('TC_CODEC ' .. meta[2]) end
local records = string.sub(KEYS[1], 1, -5) .. 'g' .. generation .. ':r'
local step = meta[5] or '0'
if not overlay then
  if #ARGV == 3 then return { step, redis.call('HGET', records, ARGV[3]) } end
  -- Lua's unpack() takes at most about 8000 values.
  if #ARGV <= 7002 then
    local values = redis.call('HMGET', records, unpack(ARGV, 3))
    table.insert(values, 1, step)
    return values
  end
  local reply = { step }
  for first = 3, #ARGV, 7000 do
    local values = redis.call('HMGET', records, unpack(ARGV, first, math.min(first + 6999, #ARGV)))
    for i = 1, #values do reply[#reply + 1] = values[i] end
  end
  return reply
end
-- During a large merge the session's staged changes count as applied.
local base = string.sub(KEYS[1], 1, -5) .. 's' .. overlay
local staged, deleted = base .. ':r', base .. ':d'
local reply = { step }
for i = 3, #ARGV do
  local value = redis.call('HGET', staged, ARGV[i])
  if not value and redis.call('SISMEMBER', deleted, ARGV[i]) == 0 then
    value = redis.call('HGET', records, ARGV[i])
  end
  reply[i - 1] = value
end
return reply

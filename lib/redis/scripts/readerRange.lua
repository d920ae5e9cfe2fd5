#!lua flags=no-writes
-- Reads the records whose score in one index lies in any of the given
-- half-open intervals [ge, lt), from the live generation, in one atomic call:
-- the index lookup and the record fetch see the same writer step. Records
-- come in ascending score order per interval.
-- KEYS[1] meta hash
-- ARGV[1] the key layout format the caller reads, ARGV[2] the codec id it
-- decodes, ARGV[3] index name, ARGV[4] the step whose coverage the caller has
-- ("" when it wants no coverage), ARGV[5] "1" to get each record's field
-- before it, ARGV[6..] pairs of interval bounds ge, lt (score texts)
-- Returns the list of records; when coverage is wanted, the list starts with
-- the current step and the coverage JSON (nil when the caller has it).
-- Errors: "TC_UNLOADED", "TC_FORMAT <format>", "TC_CODEC <codec>",
-- "TC_NOINDEX <the index name as JSON> <the table's index names as JSON>".
local meta = redis.call('HMGET', KEYS[1], 'format', 'codec', 'gen', 'overlay', 'step')
local generation, overlay, step = meta[3], meta[4], meta[5]
if not generation then return redis.error_reply('TC_UNLOADED no generation is published') end
if meta[1] ~= ARGV[1] then return redis.error_reply('TC_FORMAT ' .. (meta[1] or '')) end
if meta[2] ~= ARGV[2] then return redis.error_reply('TC_CODEC ' .. meta[2]) end
local base = string.sub(KEYS[1], 1, -5)
local index = base .. 'g' .. generation .. ':i:' .. ARGV[3]
local records = base .. 'g' .. generation .. ':r'
local with_fields = ARGV[5] == '1'
local reply = {}
if ARGV[4] ~= '' then
  reply[1] = step
  reply[2] = ARGV[4] ~= step and redis.call('HGET', KEYS[1], 'coverage')
end

local function append(fields, values)
  for i = 1, #values do
    if with_fields then reply[#reply + 1] = fields[i] end
    reply[#reply + 1] = values[i]
  end
end

local found = 0
if not overlay then
  for at = 6, #ARGV, 2 do
    local fields = redis.call('ZRANGEBYSCORE', index, ARGV[at], '(' .. ARGV[at + 1])
    found = found + #fields
    if #fields > 0 and #fields <= 7000 and #reply == 0 and not with_fields and #ARGV == 7 then
      -- The common case, one interval: Redis's own reply, no copying.
      return redis.call('HMGET', records, unpack(fields))
    end
    -- Lua's unpack() takes at most about 8000 values.
    for first = 1, #fields, 7000 do
      local part = { unpack(fields, first, math.min(first + 6999, #fields)) }
      append(part, redis.call('HMGET', records, unpack(part)))
    end
  end
else
  -- During a large merge the session's staged changes count as applied: a
  -- staged put replaces the generation's record (at its new score), a staged
  -- deletion hides it. The two score-ordered lists are merged.
  local session = base .. 's' .. overlay
  local staged, deleted, staged_index = session .. ':r', session .. ':d', session .. ':i:' .. ARGV[3]
  for at = 6, #ARGV, 2 do
    local live = redis.call('ZRANGEBYSCORE', index, ARGV[at], '(' .. ARGV[at + 1], 'WITHSCORES')
    local new = redis.call('ZRANGEBYSCORE', staged_index, ARGV[at], '(' .. ARGV[at + 1], 'WITHSCORES')
    found = found + #live + #new
    local i, j = 1, 1
    while i <= #live or j <= #new do
      if j > #new or (i <= #live and tonumber(live[i + 1]) <= tonumber(new[j + 1])) then
        local field = live[i]
        i = i + 2
        if redis.call('HEXISTS', staged, field) == 0 and redis.call('SISMEMBER', deleted, field) == 0 then
          append({ field }, { redis.call('HGET', records, field) })
        end
      else
        append({ new[j] }, { redis.call('HGET', staged, new[j]) })
        j = j + 2
      end
    end
  end
end
if found == 0 then
  -- An empty index has no key either: only then is the name list consulted.
  local names = redis.call('HGET', KEYS[1], 'indexes')
  local known = false
  for _, name in ipairs(cjson.decode(names)) do
    if name == ARGV[3] then known = true end
  end
  if not known then return redis.error_reply('TC_NOINDEX ' .. cjson.encode(ARGV[3]) .. ' ' .. names) end
end
return reply

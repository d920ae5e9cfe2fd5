-- Stores a batch of records straight into a generation, replacing records
-- with the same primary key (a sorted-set member has one score, so ZADD moves
-- a replaced record to its new score in each index).
-- KEYS[1] meta hash, KEYS[2] records hash, KEYS[3..] one sorted set per index
-- ARGV[1] the writer's fence token, ARGV[2] n, then n times:
--   primary-key field, encoded record, one score per index (in KEYS order)
-- Into the live generation (a direct write, not a load) the batch is a
-- writer step: it bumps the step, moves meta.count by the records it added,
-- and is announced on the change channel.
-- Returns how many of the records were new in the records hash (not
-- replacing one), which lets a load know the count it must publish.
-- Atomic per batch; refuses to write once another writer holds the fence.
-- #include checkFence
-- #include announceStep
-- #include liveRecordCount
-- Lua's unpack() takes at most about 8000 values.
local CHUNK = 7000
local function call_chunked(command, key, values)
  local added = 0
  for first = 1, #values, CHUNK do
    added = added + redis.call(command, key, unpack(values, first, math.min(first + CHUNK - 1, #values)))
  end
  return added
end
local n = tonumber(ARGV[2])
local index_count = #KEYS - 2
local stride = 2 + index_count
local fields = {}
local members = {}
for j = 1, index_count do members[j] = {} end
for i = 0, n - 1 do
  local at = 3 + i * stride
  local pk = ARGV[at]
  fields[#fields + 1] = pk
  fields[#fields + 1] = ARGV[at + 1]
  for j = 1, index_count do
    local m = members[j]
    m[#m + 1] = ARGV[at + 1 + j]
    m[#m + 1] = pk
  end
end
local added = 0
if n > 0 then
  local generation = redis.call('HGET', KEYS[1], 'gen')
  local live = generation and KEYS[2] == string.sub(KEYS[1], 1, -5) .. 'g' .. generation .. ':r'
  local count = live and live_record_count(KEYS[2])
  added = call_chunked('HSET', KEYS[2], fields)
  for j = 1, index_count do call_chunked('ZADD', KEYS[2 + j], members[j]) end
  if live then
    redis.call('HSET', KEYS[1], 'count', count + added)
    local changed = {}
    for i = 1, #fields, 2 do changed[#changed + 1] = fields[i] end
    announce(redis.call('HINCRBY', KEYS[1], 'step', 1), changed)
  end
end
return added

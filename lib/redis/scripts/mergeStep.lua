-- Applies up to `budget` staged changes of a scratch session to its
-- generation. The first step of a live generation's merge is the atomic
-- switch readers observe: it bumps the step, publishes the coverage and, when
-- changes remain, sets the overlay marker. While the marker names the session,
-- readers treat staged changes as already applied (a staged put replaces the
-- generation's record, a staged deletion hides it), so every later step,
-- moving a batch of changes from the session into the generation, changes
-- nothing a reader sees; the last step removes the marker. Staged puts and
-- deletions are disjoint (see stagePut.lua), so both apply as bulk commands. So a merge of any
-- size is one atomic step for readers, and Redis is never blocked for longer
-- than one budget of changes.
-- KEYS[1] meta hash, KEYS[2] owned hash, KEYS[3] records hash, KEYS[4] staged
-- records hash, KEYS[5] staged deletions set, KEYS[6..5+k] the generation's
-- indexes, KEYS[6+k..5+2k] the session's staged scores (same index order)
-- ARGV[1] the writer's fence token, ARGV[2] budget, ARGV[3] "1" on the first
-- step, ARGV[4] "1" when the generation is the live one, ARGV[5] session id,
-- ARGV[6] record count change computed while staging, ARGV[7] coverage JSON
-- ("" leaves it), ARGV[8] now (ms since the epoch)
-- The first step of a live merge is announced on the change channel with
-- the keys it changes (collected before any is applied), or "all".
-- The first step of a live merge also sets meta.count, the record count
-- after the whole merge (readers report it while the overlay is set).
-- Returns how many staged changes remain; with none left, the session's entry
-- in the owned hash is removed too (its keys are gone once empty).
-- #include checkFence
-- #include announceStep
-- #include liveRecordCount
local k = (#KEYS - 5) / 2
local budget = tonumber(ARGV[2])
local first_step = ARGV[3] == '1'
local live = ARGV[4] == '1'
local records, staged, deletes = KEYS[3], KEYS[4], KEYS[5]

-- Lua's unpack() takes at most about 8000 values; 7000 is even, so field-value pairs never split.
local CHUNK = 7000
local function call_chunked(command, key, values)
  for first = 1, #values, CHUNK do
    redis.call(command, key, unpack(values, first, math.min(first + CHUNK - 1, #values)))
  end
end
local function fetch_chunked(command, key, fields)
  local all = {}
  for first = 1, #fields, CHUNK do
    local part = redis.call(command, key, unpack(fields, first, math.min(first + CHUNK - 1, #fields)))
    for i = 1, #part do all[#all + 1] = part[i] end
  end
  return all
end

local count
local changed = nil
if first_step and live then
  count = live_record_count(records) + tonumber(ARGV[6])
  if redis.call('SCARD', deletes) + redis.call('ZCARD', KEYS[6 + k]) <= 1000 then
    changed = redis.call('SMEMBERS', deletes)
    for _, field in ipairs(redis.call('ZRANGE', KEYS[6 + k], 0, -1)) do changed[#changed + 1] = field end
  end
end

local deletions = redis.call('SPOP', deletes, budget)
if #deletions > 0 then
  call_chunked('HDEL', records, deletions)
  for j = 1, k do call_chunked('ZREM', KEYS[5 + j], deletions) end
end
budget = budget - #deletions

if budget > 0 then
  local first_scores = redis.call('ZRANGE', KEYS[6 + k], 0, budget - 1, 'WITHSCORES')
  local fields = {}
  for i = 1, #first_scores, 2 do fields[#fields + 1] = first_scores[i] end
  if #fields > 0 then
    local values = fetch_chunked('HMGET', staged, fields)
    local field_values = {}
    for i = 1, #fields do
      field_values[2 * i - 1] = fields[i]
      field_values[2 * i] = values[i]
    end
    call_chunked('HSET', records, field_values)
    for j = 1, k do
      local scores
      if j == 1 then
        scores = {}
        for i = 2, #first_scores, 2 do scores[#scores + 1] = first_scores[i] end
      else
        scores = fetch_chunked('ZMSCORE', KEYS[5 + k + j], fields)
      end
      local score_members = {}
      for i = 1, #fields do
        score_members[2 * i - 1] = scores[i]
        score_members[2 * i] = fields[i]
      end
      call_chunked('ZADD', KEYS[5 + j], score_members)
      call_chunked('ZREM', KEYS[5 + k + j], fields)
    end
    call_chunked('HDEL', staged, fields)
  end
end
local remaining = redis.call('SCARD', deletes) + redis.call('ZCARD', KEYS[6 + k])
if remaining == 0 then redis.call('HDEL', KEYS[2], 's' .. ARGV[5]) end

if live then
  if first_step then
    local step = redis.call('HINCRBY', KEYS[1], 'step', 1)
    redis.call('HSET', KEYS[1], 'refreshedAt', ARGV[8])
    if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'coverage', ARGV[7]) end
    redis.call('HSET', KEYS[1], 'count', count)
    if remaining > 0 then redis.call('HSET', KEYS[1], 'overlay', ARGV[5]) end
    announce(step, changed)
  elseif remaining == 0 then
    redis.call('HDEL', KEYS[1], 'overlay')
  end
end
return remaining

-- Applies a small scratch session that the writer held in memory straight to
-- its generation, in one call: no staging keys, no overlay. Being one script,
-- it is one atomic step for readers, like the first step of a merge. The
-- writer sends a session this way only while it is small (a few hundred
-- records), so the call blocks Redis no longer than one merge step.
-- Deletions come before puts: the writer holds a session back only while
-- every deletion was asked for before every put, so this order is the order
-- of the calls.
-- KEYS[1] meta hash, KEYS[2] the generation's records hash, KEYS[3..] one
-- sorted set per index
-- ARGV[1] the writer's fence token, ARGV[2] "1" when the generation is the
-- live one, ARGV[3] coverage JSON ("" leaves it), ARGV[4] now (ms since the
-- epoch), ARGV[5] d, then d primary-key fields to delete, then n, then n
-- times: primary-key field, encoded record, one score per index (KEYS order)
-- A live step moves meta.count by the change of the record count and is
-- announced on the change channel with the keys it changed.
-- Returns the change of the record count.
-- #include checkFence
-- #include announceStep
-- #include liveRecordCount
local records = KEYS[2]
local index_count = #KEYS - 2
local delta = 0
local changed = {}
local count = ARGV[2] == '1' and live_record_count(records)

local d = tonumber(ARGV[5])
for i = 6, 5 + d do
  local pk = ARGV[i]
  changed[#changed + 1] = pk
  if redis.call('HDEL', records, pk) == 1 then
    delta = delta - 1
    for j = 1, index_count do redis.call('ZREM', KEYS[2 + j], pk) end
  end
end

local n_at = 6 + d
local n = tonumber(ARGV[n_at])
local stride = 2 + index_count
for i = 0, n - 1 do
  local at = n_at + 1 + i * stride
  local pk = ARGV[at]
  changed[#changed + 1] = pk
  delta = delta + redis.call('HSET', records, pk, ARGV[at + 1])
  -- A sorted-set member has one score, so ZADD moves a replaced record.
  for j = 1, index_count do redis.call('ZADD', KEYS[2 + j], ARGV[at + 1 + j], pk) end
end

if ARGV[2] == '1' then
  local step = redis.call('HINCRBY', KEYS[1], 'step', 1)
  redis.call('HSET', KEYS[1], 'refreshedAt', ARGV[4], 'count', count + delta)
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'coverage', ARGV[3]) end
  announce(step, changed)
end
return delta

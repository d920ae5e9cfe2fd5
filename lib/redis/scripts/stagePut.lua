-- Stages records in a scratch session: invisible to readers until the merge
-- publishes the session. A staged put always wins over a staged deletion of
-- the same key, so the key leaves the deletion set (the two stay disjoint,
-- which lets the merge apply deletions without looking at puts). Also
-- computes how the record count will change, so the merge can publish the
-- new count at once.
-- KEYS[1] meta hash, KEYS[2] the generation's records hash, KEYS[3] staged
-- records hash, KEYS[4] staged deletions set, KEYS[5..] staged scores, one
-- sorted set per index
-- ARGV[1] the writer's fence token, ARGV[2] n, then n times:
--   primary-key field, encoded record, one score per index
-- Returns the change of the record count the batch causes at the merge.
-- Atomic per batch.
-- #include checkFence
local CHUNK = 7000
local n = tonumber(ARGV[2])
local index_count = #KEYS - 4
local stride = 2 + index_count
local members = {}
for j = 1, index_count do members[j] = {} end
local delta = 0
for i = 0, n - 1 do
  local at = 3 + i * stride
  local pk = ARGV[at]
  if redis.call('HSET', KEYS[3], pk, ARGV[at + 1]) == 1 then
    -- A new staged key adds a record, unless it replaces one that was not staged for deletion.
    if redis.call('SREM', KEYS[4], pk) == 1 or redis.call('HEXISTS', KEYS[2], pk) == 0 then
      delta = delta + 1
    end
  end
  for j = 1, index_count do
    local m = members[j]
    m[#m + 1] = ARGV[at + 1 + j]
    m[#m + 1] = pk
  end
end
for j = 1, index_count do
  local m = members[j]
  for first = 1, #m, CHUNK do
    redis.call('ZADD', KEYS[4 + j], unpack(m, first, math.min(first + CHUNK - 1, #m)))
  end
end
return delta

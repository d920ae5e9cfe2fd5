-- Included (`-- #include liveRecordCount`) by every script that changes the
-- records of the live generation; not a script of its own. KEYS[1] must be
-- the table's meta hash.
-- `meta.count` is how many records the live generation must hold:
-- publishGeneration.lua sets it, and every step that changes the live
-- generation's records moves it by what the step changed, in the same
-- script. Redis evicts whole keys, so a records hash (or index) that was
-- evicted and then recreated in part by later steps holds fewer records than
-- the count says, although the hash and the indexes agree with each other:
-- the writer's intactness check compares HLEN with the count. A table
-- published before the count existed starts it from HLEN at its next step.
local function live_record_count(records)
  local count = redis.call('HGET', KEYS[1], 'count')
  if count then return tonumber(count) end
  return redis.call('HLEN', records)
end

-- Stages deletions in a scratch session, so that staging behaves like
-- applying the calls in order. Mode "live": the fields name records of the
-- generation; each joins the deletion set, unless a put of the same key is
-- staged (that put replaces the record anyway and wins). A field the
-- generation holds no record of is skipped: a deletion by primary key names
-- keys unread, and a deletion of nothing must not count. Mode "staged": the
-- fields name staged puts, which are withdrawn; the generation's record of
-- the same key (if any) is then staged for deletion, so the key ends up
-- deleted either way. Staged puts and staged deletions stay disjoint.
-- KEYS[1] meta hash, KEYS[2] the generation's records hash, KEYS[3] staged
-- records hash, KEYS[4] staged deletions set, KEYS[5..] staged scores per index
-- ARGV[1] the writer's fence token, ARGV[2] mode ("live" or "staged"), ARGV[3..] primary-key fields
-- Returns the change of the record count this causes at the merge. Atomic per call.
-- #include checkFence
local delta = 0
if ARGV[2] == 'live' then
  for i = 3, #ARGV do
    local pk = ARGV[i]
    if redis.call('HEXISTS', KEYS[2], pk) == 1 and redis.call('HEXISTS', KEYS[3], pk) == 0 and redis.call('SADD', KEYS[4], pk) == 1 then
      delta = delta - 1
    end
  end
  return delta
end
for i = 3, #ARGV do
  local pk = ARGV[i]
  if redis.call('HDEL', KEYS[3], pk) == 1 then
    for j = 5, #KEYS do redis.call('ZREM', KEYS[j], pk) end
    delta = delta - 1
    if redis.call('HEXISTS', KEYS[2], pk) == 1 then redis.call('SADD', KEYS[4], pk) end
  end
end
return delta

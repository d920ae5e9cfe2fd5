-- Deletes key groups (generations or scratch sessions) that no reader uses:
-- UNLINK frees large values in a background thread, so this stays fast.
-- KEYS[1] meta hash, KEYS[2] owned hash
-- ARGV[1] the writer's fence token, ARGV[2..] group ids ("g7", "s9")
-- Returns how many groups were dropped. Atomic per call.
-- #include checkFence
local dropped = 0
for i = 2, #ARGV do
  local listed = redis.call('HGET', KEYS[2], ARGV[i])
  if listed then
    local keys = cjson.decode(listed)
    for first = 1, #keys, 500 do
      redis.call('UNLINK', unpack(keys, first, math.min(first + 499, #keys)))
    end
    redis.call('HDEL', KEYS[2], ARGV[i])
    dropped = dropped + 1
  end
end
return dropped

-- Allocates a new key group (a generation "g<id>" or a scratch session
-- "s<id>") and records its key names in the owned hash, so that whichever
-- writer comes next can delete the group if this one dies before finishing.
-- KEYS[1] meta hash, KEYS[2] owned hash
-- ARGV[1] the writer's fence token, ARGV[2] kind ("g" or "s"),
-- ARGV[3] the table's key base ("{prefix+table}:"), ARGV[4..] key suffixes after the group id
-- Returns the new id. Atomic: the id is unique and listed before any key of the group exists.
-- #include checkFence
local id = redis.call('HINCRBY', KEYS[1], 'nextId', 1)
local group = ARGV[2] .. id
local keys = {}
for i = 4, #ARGV do
  keys[#keys + 1] = ARGV[3] .. group .. ARGV[i]
end
redis.call('HSET', KEYS[2], group, cjson.encode(keys))
return id

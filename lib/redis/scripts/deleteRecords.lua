-- Deletes records of a generation by primary key, from the records hash and
-- from every index.
-- KEYS[1] meta hash, KEYS[2] records hash, KEYS[3..] one sorted set per index
-- ARGV[1] the writer's fence token, ARGV[2..] primary-key fields
-- In the live generation (a direct write, not a load) the call is a writer
-- step: it bumps the step, moves meta.count by the records it deleted, and
-- is announced on the change channel.
-- Returns how many records existed. Atomic per call.
-- #include checkFence
-- #include announceStep
-- #include liveRecordCount
local generation = redis.call('HGET', KEYS[1], 'gen')
local live = #ARGV > 1 and generation and KEYS[2] == string.sub(KEYS[1], 1, -5) .. 'g' .. generation .. ':r'
local count = live and live_record_count(KEYS[2])
local CHUNK = 7000
local deleted = 0
for first = 2, #ARGV, CHUNK do
  local last = math.min(first + CHUNK - 1, #ARGV)
  deleted = deleted + redis.call('HDEL', KEYS[2], unpack(ARGV, first, last))
  for j = 3, #KEYS do redis.call('ZREM', KEYS[j], unpack(ARGV, first, last)) end
end
if live then
  redis.call('HSET', KEYS[1], 'count', count - deleted)
  local step = redis.call('HINCRBY', KEYS[1], 'step', 1)
  if #ARGV > 1001 then announce(step, nil) else announce(step, { unpack(ARGV, 2) }) end
end
return deleted

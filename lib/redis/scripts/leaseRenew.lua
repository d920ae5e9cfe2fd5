-- Extends the writer lease. A lease that expired but was taken by nobody
-- (the fence token is still this writer's) is taken back.
-- KEYS[1] lease key, KEYS[2] meta hash
-- ARGV[1] the writer's id, ARGV[2] lease TTL in ms, ARGV[3] the writer's fence token
-- Returns 1 when the lease is this writer's, 0 when another writer took it,
-- -1 when the lease and the table's fence are both gone: Redis lost the keys
-- (eviction, FLUSHALL, a restart without persistence), nobody took them. Atomic.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
local fence = redis.call('HGET', KEYS[2], 'fence')
if not holder and fence == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if not holder and not fence then
  return -1
end
return 0

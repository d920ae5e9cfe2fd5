-- Takes the writer lease of a table if nobody holds it, and then draws a new
-- fence token: every write script compares it, so a writer whose lease lapsed
-- and was taken over can no longer write, even if it does not know yet.
-- KEYS[1] lease key, KEYS[2] meta hash
-- ARGV[1] the writer's id, ARGV[2] lease TTL in ms
-- Returns { 1, fence } when taken, { 0, holder, remaining ms } when held. Atomic.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local fence = redis.call('HINCRBY', KEYS[2], 'fence', 1)
  redis.call('HSET', KEYS[2], 'writer', ARGV[1])
  return { 1, fence }
end
return { 0, redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]) }

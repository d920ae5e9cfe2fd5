-- Takes the writer lease of a table if nobody holds it, and then draws a new
-- fence token: every write script compares it, so a writer whose lease lapsed
-- and was taken over can no longer write, even if it does not know yet.
-- A token is never handed out twice, also when Redis loses the table's keys
-- (a restart without persistence, a flush) or goes back to an older snapshot:
-- the new token is the server's clock in microseconds, or the last token + 1
-- if that is larger. (A count from 1 in an empty Redis gave the next writer
-- the token of a writer from before the loss, which then wrote into the new
-- writer's generation.)
-- KEYS[1] lease key, KEYS[2] meta hash
-- ARGV[1] the writer's id, ARGV[2] lease TTL in ms
-- Returns { 1, fence } when taken, { 0, holder, remaining ms } when held. Atomic.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local time = redis.call('TIME')
  -- Below 2^53 (until the year 2255), so exact as a Lua number.
  local fence = math.max(tonumber(time[1]) * 1000000 + tonumber(time[2]), (tonumber(redis.call('HGET', KEYS[2], 'fence')) or 0) + 1)
  fence = string.format('%.0f', fence)
  redis.call('HSET', KEYS[2], 'fence', fence, 'writer', ARGV[1])
  return { 1, fence }
end
return { 0, redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]) }

-- Gives the writer lease up, if this writer still holds it.
-- KEYS[1] lease key
-- ARGV[1] the writer's id
-- Returns 1 when released, 0 when someone else held it. Atomic.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0

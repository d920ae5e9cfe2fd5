-- Included (`-- #include checkFence`) first by every write script; not a
-- script of its own. KEYS[1] must be the table's meta hash and ARGV[1] the
-- writer's fence token. A writer whose lease was taken over (or lost with the
-- table's keys: the fence reads false) gets the error reply
-- "TC_LEASE_LOST the fence token is now <fence>" and writes nothing.
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then
  return redis.error_reply('TC_LEASE_LOST the fence token is now ' .. tostring(redis.call('HGET', KEYS[1], 'fence')))
end

-- Saves the change source's position beside the generation it describes
-- (logical capture: every transaction committing before the LSN is in that
-- generation), so that a restarted daemon can resume from it instead of
-- reloading. A position is never saved beside data it does not describe:
-- nothing is written unless the generation is still the live one.
-- KEYS[1] meta hash
-- ARGV[1] the writer's fence token, ARGV[2] generation id, ARGV[3] position
-- Returns 1 when saved, 0 when the live generation is another. Atomic.
-- #include checkFence
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'capturePosition', ARGV[2] .. '@' .. ARGV[3])
return 1

-- Switches readers to a fully written generation: the pointer swap of an
-- initial load or reload. Readers resolve the generation inside their own
-- scripts, so each read sees the old generation or the new one, never both.
-- KEYS[1] meta hash
-- ARGV[1] the writer's fence token, ARGV[2] generation id, ARGV[3] layout
-- format, ARGV[4] codec id, ARGV[5] index names (JSON), ARGV[6] coverage JSON,
-- ARGV[7] now (ms since the epoch)
-- Announced on the change channel as "all".
-- Returns the previous live generation id, or nil. Atomic.
-- #include checkFence
-- #include announceStep
local previous = redis.call('HGET', KEYS[1], 'gen')
redis.call('HSET', KEYS[1],
  'format', ARGV[3], 'gen', ARGV[2], 'loaded', '1', 'codec', ARGV[4], 'indexes', ARGV[5],
  'coverage', ARGV[6], 'refreshedAt', ARGV[7], 'loadedAt', ARGV[7])
local step = redis.call('HINCRBY', KEYS[1], 'step', 1)
-- An overlay belongs to the previous generation's unfinished merge.
redis.call('HDEL', KEYS[1], 'overlay', 'count')
announce(step, nil)
return previous

#!lua flags=no-writes
-- Reads the coverage the writer published, unless the caller already has
-- the coverage of the current step (coverage changes only with the step).
-- KEYS[1] meta hash
-- ARGV[1] the key layout format the caller reads, ARGV[2] the step whose coverage the caller has
-- Returns { step, coverage JSON, or nil when the caller has it }.
-- Errors: "TC_UNLOADED", "TC_FORMAT <format>".
local meta = redis.call('HMGET', KEYS[1], 'format', 'gen', 'step')
if not meta[2] then return redis.error_reply('TC_UNLOADED no generation is published') end
if meta[1] ~= ARGV[1] then return redis.error_reply('TC_FORMAT ' .. (meta[1] or '')) end
if meta[3] == ARGV[2] then return { meta[3], false } end
return { meta[3], redis.call('HGET', KEYS[1], 'coverage') }

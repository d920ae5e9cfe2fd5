-- Included (`-- #include announceStep`) by every script that publishes a
-- writer step; not a script of its own. KEYS[1] must be the table's meta key.
-- Announces the step on the table's change channel (docs/redis-key-layout.md,
-- "Change stream"), inside the step's script so that it is atomic with it:
-- the primary keys it changed, or "all" when there are more than 1,000 or
-- they would make the message larger than 64 KB.
local function announce(step, fields)
  local time = redis.call('TIME')
  local message = { v = 1, step = step, at = time[1] .. string.format('%06d', tonumber(time[2])) }
  local bytes = 0
  if fields then
    for i = 1, #fields do bytes = bytes + #fields[i] end
  end
  if not fields or #fields > 1000 or bytes > 65536 then
    message.all = true
  elseif #fields > 0 then
    message.keys = fields
  end
  redis.call('PUBLISH', string.sub(KEYS[1], 1, -5) .. 'changes', cjson.encode(message))
end

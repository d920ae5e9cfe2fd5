#!lua flags=no-writes
-- Reads one page of the records whose score in one index lies in any of a
-- list of intervals [ge, lt), walking the intervals in order. Pages by rank
-- (ZCOUNT gives the rank of a bound), so a page costs O(log n + page size)
-- however many records share one score, and many small intervals (primary
-- keys, say) share one call.
-- KEYS[1] the index's sorted set, KEYS[2] the records hash
-- ARGV[1] page size, ARGV[2] how many records of the first interval to skip,
-- ARGV[3..] pairs of interval bounds ge, lt (score texts)
-- Returns { done, interval1, field1, record1, interval2, field2, record2, ... }:
-- `done` intervals (a prefix of those given) were read to their end; each
-- record comes with the 1-based number of its interval; a missing record is nil.
local budget = tonumber(ARGV[1])
local skip = tonumber(ARGV[2])
local reply = { 0 }
local done = 0
for at = 3, #ARGV, 2 do
  local interval = (at - 1) / 2
  local first = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[at]) + skip
  local stop = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[at + 1])
  skip = 0
  local last = math.min(first + budget, stop) - 1
  if last >= first then
    local fields = redis.call('ZRANGE', KEYS[1], first, last)
    local records = redis.call('HMGET', KEYS[2], unpack(fields))
    for i = 1, #fields do
      reply[#reply + 1] = interval
      reply[#reply + 1] = fields[i]
      reply[#reply + 1] = records[i]
    end
    budget = budget - #fields
  end
  if last + 1 < stop then break end
  done = done + 1
  if budget == 0 then break end
end
reply[1] = done
return reply

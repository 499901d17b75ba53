local stream, messages, attempts, errors, leased, leases, delayed, dead, done, seq, bodies =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10],
  KEYS[11]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Whether `id` is leased with `token`.
local function fenced(id, token)
  return redis.call('HGET', leases, id) == token
end

-- Ends the lease of `id`. (Its stream entry went when it was claimed.)
local function unlease(id)
  redis.call('HDEL', leases, id)
  redis.call('ZREM', leased, id)
end

-- The odd arguments (ids, of id-value pairs), for one multi-key command
-- per batch instead of one command per id.
local function pair_keys()
  local ids = {}
  for i = 1, #ARGV - 1, 2 do ids[#ids + 1] = ARGV[i] end
  return ids
end

-- Pending at once: a new entry at the end of the stream.
local function enqueue(id)
  redis.call('XADD', stream, '*', 'id', id)
end

-- Dead, in the order the notifications were received.
local function bury(id)
  local message = redis.call('HGET', messages, id)
  local n = 0
  if message then n = tonumber(string.match(message, '^(%d+):')) or 0 end
  redis.call('ZADD', dead, n, id)
end

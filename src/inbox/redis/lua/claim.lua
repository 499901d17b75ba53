local max, lease, max_attempts = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local token, lapse_error, chunk = ARGV[4], ARGV[5], tonumber(ARGV[6])
local now = now_ms()

-- Lapsed leases: each a failed attempt; dead at the maximum.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'LIMIT', 0, chunk)) do
  unlease(id)
  if redis.call('HEXISTS', messages, id) == 1 then
    redis.call('HSET', errors, id, lapse_error)
    if (tonumber(redis.call('HGET', attempts, id)) or 0) >= max_attempts then
      bury(id)
    else
      enqueue(id)
    end
  end
end

-- Retries that are due join the queue.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, chunk)) do
  redis.call('ZREM', delayed, id)
  enqueue(id)
end

-- Lease the oldest entries. NOACK: the group's cursor is all the
-- stream is for (leases are `leased` and `leases`), and the entries it
-- passed are trimmed.
local claimed = {}
for _ = 1, 16 do
  if #claimed >= max then break end
  local read = redis.pcall('XREADGROUP', 'GROUP', GROUP, GROUP, 'COUNT', max - #claimed, 'NOACK',
                           'STREAMS', stream, '>')
  if type(read) == 'table' and read.err then
    if not string.find(read.err, 'NOGROUP', 1, true) then
      return redis.error_reply(read.err)
    end
    -- From the start: entries written before the group existed are read.
    redis.call('XGROUP', 'CREATE', stream, GROUP, '0', 'MKSTREAM')
    read = redis.call('XREADGROUP', 'GROUP', GROUP, GROUP, 'COUNT', max - #claimed, 'NOACK',
                      'STREAMS', stream, '>')
  end
  if not read or not read[1] or #read[1][2] == 0 then break end
  local entries = read[1][2]
  local ids = {}
  for _, e in ipairs(entries) do
    local id = e[2] and e[2][2]
    if type(id) == 'string' then ids[#ids + 1] = id end
  end
  if #ids > 0 then
    local kept = redis.call('HMGET', messages, unpack(ids))
    local held = redis.call('HMGET', leases, unpack(ids))
    local buried = redis.call('ZMSCORE', dead, unpack(ids))
    local later = redis.call('ZMSCORE', delayed, unpack(ids))
    local made = redis.call('HMGET', attempts, unpack(ids))
    -- Numbers become text once, not once per notification.
    local lease_end = string.format('%d', now + lease)
    local taken, counted, ends, tokens = {}, {}, {}, {}
    for j, id in ipairs(ids) do
      -- Else not a notification waiting (a leftover entry): skipped.
      if kept[j] and not held[j] and not buried[j] and not later[j] and not taken[id] then
        taken[id] = true
        local attempt = (tonumber(made[j]) or 0) + 1
        counted[#counted + 1] = id
        counted[#counted + 1] = attempt
        ends[#ends + 1] = lease_end
        ends[#ends + 1] = id
        tokens[#tokens + 1] = id
        tokens[#tokens + 1] = token
        claimed[#claimed + 1] = {id, attempt, kept[j]}
      end
    end
    if #tokens > 0 then
      redis.call('HSET', attempts, unpack(counted))
      redis.call('ZADD', leased, unpack(ends))
      redis.call('HSET', leases, unpack(tokens))
    end
  end
  -- Entries up to the last one read leave the stream (no arithmetic on
  -- the id: its parts are 64-bit).
  local last = entries[#entries][1]
  redis.call('XTRIM', stream, 'MINID', last)
  redis.call('XDEL', stream, last)
end

-- When the next one is due: now when entries are still waiting in the
-- stream, else the earliest retry or lease end. (Not from the counts: a
-- message without its entry, which no claim can take, would make every
-- claim answer 'now' for ever.)
local next_due = -1
if redis.call('XLEN', stream) > 0 then
  next_due = 0
else
  for _, key in ipairs({delayed, leased}) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] then
      local due = tonumber(first[2]) - now
      if due < 0 then due = 0 end
      if next_due < 0 or due < next_due then next_due = due end
    end
  end
end
return {next_due, claimed}

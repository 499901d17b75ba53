local ids = pair_keys()
local results, finished, scored = {}, {}, {}
if #ids > 0 then
  local held = redis.call('HMGET', leases, unpack(ids))
  local now, seen = string.format('%d', now_ms()), {}
  for i, id in ipairs(ids) do
    if held[i] == ARGV[2 * i] and not seen[id] then
      seen[id] = true
      results[i] = 1
      finished[#finished + 1] = id
      scored[#scored + 1] = now
      scored[#scored + 1] = id
    else
      results[i] = 0
    end
  end
end
if #finished > 0 then
  redis.call('HDEL', leases, unpack(finished))
  redis.call('ZREM', leased, unpack(finished))
  redis.call('HDEL', messages, unpack(finished))
  redis.call('HDEL', bodies, unpack(finished))
  redis.call('HDEL', attempts, unpack(finished))
  redis.call('HDEL', errors, unpack(finished))
  redis.call('ZADD', done, unpack(scored))
end
return results

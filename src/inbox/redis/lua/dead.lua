local found = redis.call('ZRANGEBYSCORE', dead, '(' .. ARGV[1], '+inf', 'WITHSCORES',
                         'LIMIT', 0, ARGV[2])
local page = {}
for i = 1, #found, 2 do
  local id = found[i]
  page[#page + 1] = {
    id, found[i + 1], redis.call('HGET', messages, id) or '',
    tonumber(redis.call('HGET', attempts, id)) or 0, redis.call('HGET', errors, id) or '',
    redis.call('HGET', bodies, id)
  }
end
return page

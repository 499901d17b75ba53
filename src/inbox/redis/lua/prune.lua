local cutoff = now_ms() - tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', done, '-inf', string.format('(%d', cutoff),
                       'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then redis.call('ZREM', done, unpack(ids)) end
return #ids

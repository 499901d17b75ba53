local id = ARGV[1]
if not redis.call('ZSCORE', dead, id) then return 0 end
redis.call('ZREM', dead, id)
redis.call('HSET', attempts, id, 0)
redis.call('HDEL', errors, id)
enqueue(id)
return 1

local id = ARGV[1]
if not fenced(id, ARGV[2]) then return 0 end
unlease(id)
redis.call('HSET', errors, id, ARGV[3])
if ARGV[4] == '' then
  bury(id)
else
  redis.call('ZADD', delayed, now_ms() + tonumber(ARGV[4]), id)
end
return 1

local released = 0
for i = 1, #ARGV - 1, 2 do
  local id = ARGV[i]
  if fenced(id, ARGV[i + 1]) then
    unlease(id)
    local n = tonumber(redis.call('HGET', attempts, id)) or 0
    if n > 0 then n = n - 1 end
    redis.call('HSET', attempts, id, n)
    enqueue(id)
    released = released + 1
  end
end
return released

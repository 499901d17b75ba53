local stream, messages, done, seq, bodies = KEYS[1], KEYS[2], KEYS[9], KEYS[10], KEYS[11]
local ids, results, stored = {}, {}, 0
for i = 1, #ARGV - 1, 2 do ids[#ids + 1] = ARGV[i] end
if #ids > 0 then
  local kept = redis.call('HMGET', messages, unpack(ids))
  local finished = redis.call('ZMSCORE', done, unpack(ids))
  local seen, forget = {}, {}
  for i, id in ipairs(ids) do
    if kept[i] or seen[id] then
      results[i] = 0
    elseif finished[i] then
      results[i] = 0
      forget[#forget + 1] = id
    else
      seen[id] = true
      results[i] = 1
      stored = stored + 1
    end
  end
  if #forget > 0 then redis.call('HDEL', bodies, unpack(forget)) end
end
if stored > 0 then
  local n = redis.call('INCRBY', seq, stored) - stored
  local fields = {}
  for i, id in ipairs(ids) do
    if results[i] == 1 then
      n = n + 1
      fields[#fields + 1] = id
      fields[#fields + 1] = string.format('%d:', n) .. ARGV[2 * i]
    end
  end
  for i, id in ipairs(ids) do
    if results[i] == 1 then redis.call('XADD', stream, '*', 'id', id) end
  end
  redis.call('HSET', messages, unpack(fields))
end
return results

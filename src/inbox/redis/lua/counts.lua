-- When the longest-waiting due notification became due: the time in the
-- stream's first entry's id (written when it joined the queue), or a
-- retry whose backoff ended and that no claim has moved to the stream yet.
-- -1: none is due.
local oldest = -1
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
if first[1] then oldest = tonumber(string.match(first[1][1], '^(%d+)')) or -1 end
local retry = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
if retry[2] then
  local due = tonumber(retry[2])
  if due <= now_ms() and (oldest < 0 or due < oldest) then oldest = due end
end
return {redis.call('HLEN', messages), redis.call('ZCARD', leased),
        redis.call('ZCARD', dead), redis.call('ZCARD', done), oldest}

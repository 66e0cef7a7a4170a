-- take_slots: the sliding one-minute window of broker calls (a sorted set of members by time).
-- take_slots(key, limit, member, n) takes `n` slots at once or none: 0 when taken, else
-- the milliseconds until enough slots are free.
local function take_slots(key, limit, member, n)
  local t = redis.call('TIME')
  local now = t[1] * 1000 + math.floor(t[2] / 1000)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 60000)
  local used = redis.call('ZCARD', key)
  if used + n <= limit then
    for i = 1, n do redis.call('ZADD', key, now, member .. ':' .. i) end
    redis.call('PEXPIRE', key, 61000)
    return 0
  end
  local nth = redis.call('ZRANGE', key, used + n - limit - 1, used + n - limit - 1, 'WITHSCORES')
  if #nth == 0 then return 60000 end
  return math.max(1, tonumber(nth[2]) + 60000 - now)
end

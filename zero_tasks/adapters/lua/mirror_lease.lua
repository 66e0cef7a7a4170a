-- mirror_lease: take or keep the account mirror's leadership; a new holder gets a new fencing token.
-- KEYS[1] lease hash (holder, token)  KEYS[2] fencing token counter
-- ARGV[1] this consumer's holder id  ARGV[2] lease length in ms
-- returns {1, token} while this holder leads, {0, holder} when another does
-- The token only grows, even across a Redis that lost its data (restarted empty, keys
-- deleted by hand): never below the Redis clock in microseconds. A leader whose lease vanished thus
-- gets a token of its own again, sees that it was not leading all along, and resyncs; a
-- deposed leader's old token never matches a new lease.
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder and holder ~= ARGV[1] then
  return {0, holder}
end
local token = redis.call('HGET', KEYS[1], 'token')
if not holder then
  local now = redis.call('TIME')
  local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local n = redis.call('INCR', KEYS[2])
  if n < floor then
    n = floor
    redis.call('SET', KEYS[2], string.format('%.0f', n))
  end
  token = string.format('%.0f', n)
  redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, tonumber(token)}

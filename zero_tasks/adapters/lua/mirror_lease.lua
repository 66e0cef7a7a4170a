-- mirror_lease: take or keep the account mirror's leadership; a new holder gets a new fencing token.
-- KEYS[1] lease hash (holder, token)  KEYS[2] fencing token counter
-- ARGV[1] this consumer's holder id  ARGV[2] lease length in ms
-- returns {1, token} while this holder leads, {0, holder} when another does
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder and holder ~= ARGV[1] then
  return {0, holder}
end
local token = redis.call('HGET', KEYS[1], 'token')
if not holder then
  token = tostring(redis.call('INCR', KEYS[2]))
  redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, tonumber(token)}

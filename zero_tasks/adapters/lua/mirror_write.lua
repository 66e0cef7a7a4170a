-- mirror_write: the mirror's writes, made only while the writer's fencing token holds the lease.
-- KEYS[1] lease hash (holder, token)  KEYS[2] and on: the keys written, in order
-- ARGV[1] the writer's fencing token; then three values per written key: op (set, del, sadd,
-- incr_if_added: INCR when the sadd just before it added its member, hincrby), value
-- (hincrby: the field), ttl in ms (0: none; hincrby: the increment)
-- returns 1 when everything was written, 0 when the token does not hold the lease (nothing written)
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return 0
end
local added = 0
for i = 2, #KEYS do
  local base = 2 + (i - 2) * 3
  local op, value, ttl = ARGV[base], ARGV[base + 1], tonumber(ARGV[base + 2])
  if op == 'set' then
    if ttl > 0 then
      redis.call('SET', KEYS[i], value, 'PX', ttl)
    else
      redis.call('SET', KEYS[i], value)
    end
  elseif op == 'del' then
    redis.call('DEL', KEYS[i])
  elseif op == 'sadd' then
    added = redis.call('SADD', KEYS[i], value)
    if ttl > 0 then
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
  elseif op == 'incr_if_added' then
    if added == 1 then
      redis.call('INCR', KEYS[i])
    end
    if ttl > 0 then
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
  elseif op == 'hincrby' then
    redis.call('HINCRBY', KEYS[i], value, ttl)
  else
    return redis.error_reply('mirror_write: unknown op ' .. tostring(op))
  end
end
return 1

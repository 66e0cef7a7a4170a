-- admit: claim the execution_id, reserve the cooldown, take the day's slot and the placement's broker budget (rows 7-8), in one step.
-- Claim and cooldown remember their owner, so a redelivered task (same message) tells its
-- own earlier claim from somebody else's. A daily-cap refusal gives back what this step
-- took, so a later decision is not stopped by it. The slots are taken only once admitted,
-- and only all of them: when the budget is spent none are, and the order task asks again.
-- KEYS[1] claim (seen) key  KEYS[2] cooldown  KEYS[3] cooldown owner  KEYS[4] daily hash
-- KEYS[5] broker rate window
-- ARGV[1] message_id  ARGV[2] claim ttl  ARGV[3] now iso  ARGV[4] cooldown s  ARGV[5] execution_id
-- ARGV[6] daily cap  ARGV[7] daily ttl  ARGV[8] received iso  ARGV[9] broker calls per minute
-- ARGV[10] rate member  ARGV[11] slots to take (0: none)
-- returns {claim (0 taken, 1 claimed, 2 re-entered), refusal ('' | 'duplicate' | 'cooldown' | 'daily cap'),
-- cooldown since, broker slots taken}
-- needs: take_slots
local claim
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then claim = 1
elseif redis.call('GET', KEYS[1]) == ARGV[1] then claim = 2
else return {0, 'duplicate', '', 0} end
if redis.call('GET', KEYS[3]) ~= ARGV[5] then
  local current = redis.call('GET', KEYS[2])
  if current then return {claim, 'cooldown', current, 0} end
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
  redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[4])
end
if redis.call('HEXISTS', KEYS[4], ARGV[5]) == 0 then
  if redis.call('HLEN', KEYS[4]) >= tonumber(ARGV[6]) then
    redis.call('DEL', KEYS[2], KEYS[3])
    if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
    return {claim, 'daily cap', '', 0}
  end
  redis.call('HSET', KEYS[4], ARGV[5], ARGV[8])
  redis.call('EXPIRE', KEYS[4], ARGV[7])
end
local slots = tonumber(ARGV[11])
if slots > 0 and take_slots(KEYS[5], tonumber(ARGV[9]), ARGV[10], slots) ~= 0 then slots = 0 end
return {claim, '', '', slots}

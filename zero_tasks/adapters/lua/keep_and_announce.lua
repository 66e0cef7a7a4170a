-- keep_and_announce: keep a message's first decision, add it to the audit stream, publish its event once, take the message off the hand-over ledger (outbox.py).
-- A SUBMITTED entry's lifecycle is seeded in the same step (ARGV[6], KEYS[5], KEYS[6]): no
-- kept order ever lacks its exit schedule.
-- KEYS[1] the message's outbox hash  KEYS[2] the audit stream
-- KEYS[3] the ledger's sorted set  KEYS[4] the ledger's entries
-- KEYS[5] the lifecycle hash (optional)  KEYS[6] the lifecycle due set (optional)
-- ARGV[1] record JSON  ARGV[2] ttl  ARGV[3] channel  ARGV[4] event JSON  ARGV[5] message id
-- ARGV[6] lifecycle record JSON, or absent  ARGV[7] the execution_id it is due under
-- ARGV[8] the audit stream's field ('row' for a decision, 'outcome' for an outcome)
-- ARGV[9] the lifecycle record's seal (with ARGV[6])
-- returns {the record that counts, or '' when it is the one given, 1 if its event was published now}
-- needs: ledger
ledger_forget(KEYS[3], KEYS[4], ARGV[5])
local rec = redis.call('HGET', KEYS[1], 'record')
if not rec then
  redis.call('HSET', KEYS[1], 'record', ARGV[1], 'event', ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('XADD', KEYS[2], '*', ARGV[8] or 'row', ARGV[1])
  if ARGV[6] and ARGV[6] ~= '' then
    if redis.call('HSETNX', KEYS[5], 'record', ARGV[6]) == 1 then
      redis.call('HSET', KEYS[5], 'seal', ARGV[9])
      redis.call('ZADD', KEYS[6], 'NX', 0, ARGV[7])  -- due at once
    end
  end
  rec = ''
end
if redis.call('HEXISTS', KEYS[1], 'sent') == 1 then return {rec, 0} end
redis.call('PUBLISH', ARGV[3], redis.call('HGET', KEYS[1], 'event'))
redis.call('HSET', KEYS[1], 'sent', '1')
return {rec, 1}

-- keep_and_announce: keep a message's first decision, add it to the audit stream, publish its event once, take the message off the hand-over ledger (outbox.py).
-- KEYS[1] the message's outbox hash  KEYS[2] the audit stream
-- KEYS[3] the ledger's sorted set  KEYS[4] the ledger's entries
-- ARGV[1] record JSON  ARGV[2] ttl  ARGV[3] channel  ARGV[4] event JSON  ARGV[5] message id
-- returns {the record that counts, or '' when it is the one given, 1 if its event was published now}
-- needs: ledger
ledger_forget(KEYS[3], KEYS[4], ARGV[5])
local rec = redis.call('HGET', KEYS[1], 'record')
if not rec then
  redis.call('HSET', KEYS[1], 'record', ARGV[1], 'event', ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('XADD', KEYS[2], '*', 'row', ARGV[1])
  rec = ''
end
if redis.call('HEXISTS', KEYS[1], 'sent') == 1 then return {rec, 0} end
redis.call('PUBLISH', ARGV[3], redis.call('HGET', KEYS[1], 'event'))
redis.call('HSET', KEYS[1], 'sent', '1')
return {rec, 1}

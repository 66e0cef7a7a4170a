-- ledger_record: record messages in the hand-over ledger before they go on the queue (in_flight.record).
-- KEYS[1] the ledger's sorted set  KEYS[2] the ledger's entries
-- ARGV pairs: message id, entry JSON, ... (ARGV[i], ARGV[i + 1])
-- returns how many were recorded
-- needs: ledger
local t = redis.call('TIME')
local ms = t[1] * 1000 + math.floor(t[2] / 1000)
for i = 1, #ARGV, 2 do
  ledger_record(KEYS[1], KEYS[2], ms, ARGV[i], ARGV[i + 1])
end
return #ARGV / 2

-- ledger_due: take what has waited long enough since its last hand-over (in_flight.due).
-- Each is taken by this sweep (its time set to now), so another bridge sweeping at the same
-- moment does not queue it too; it is due again after ARGV[1] if still undecided. An id
-- whose entry is gone is dropped.
-- KEYS[1] the ledger's sorted set  KEYS[2] the ledger's entries
-- ARGV[1] wait ms  ARGV[2] at most this many
-- returns the entries taken
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(due) do
  local entry = redis.call('HGET', KEYS[2], id)
  if entry then
    redis.call('ZADD', KEYS[1], now, id)
    out[#out + 1] = entry
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out

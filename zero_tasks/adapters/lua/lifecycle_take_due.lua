-- lifecycle_take_due: take the executions whose next lifecycle step is due (lifecycle_store.take_due).
-- Each is leased by this tick (its due time moved ARGV[1] ms on), so a tick on another host
-- does not send it again; the step reschedules it, and a step that died is due again when
-- the lease runs out.
-- KEYS[1] the lifecycle due set
-- ARGV[1] lease ms  ARGV[2] at most this many  ARGV[3] now (ms, the gateway's clock, as schedule writes it)
-- returns the execution_ids taken
local now = tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), id)
end
return due

-- ledger: the hand-over ledger (bridge/handover.py), a sorted set of message ids by hand-over
-- time and a hash of their entries.
-- ledger_record(zset, tasks, ms, message_id, entry) records one message handed over at `ms`;
-- ledger_forget(zset, tasks, message_id) takes it off (its decision is kept).
local function ledger_record(zset, tasks, ms, message_id, entry)
  redis.call('ZADD', zset, ms, message_id)
  redis.call('HSET', tasks, message_id, entry)
end

local function ledger_forget(zset, tasks, message_id)
  redis.call('ZREM', zset, message_id)
  redis.call('HDEL', tasks, message_id)
end

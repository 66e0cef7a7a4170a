-- message_claim: the bridge's cross-bridge claim of a payload's next occurrences (bridge/dedup.py).
-- One round trip per payload: on its first sight by this bridge (ARGV[1] = -1) the claims
-- older than the bridge's subscription (ARGV[2]) are counted as history, atomically with
-- claiming the next ARGV[4] occurrences (the same bytes may come several times in one batch).
-- KEYS[1] the payload's claim hash (occurrence -> claimed at, ms)
-- ARGV[1] occurrences this bridge counted before, or -1 on first sight  ARGV[2] the
--   bridge's subscription time, ms  ARGV[3] the hash's TTL, s  ARGV[4] occurrences to claim
-- returns {occurrences before, won 1|0 per occurrence claimed}
local t = redis.call('TIME')
local ms = t[1] * 1000 + math.floor(t[2] / 1000)
local before = tonumber(ARGV[1])
if before < 0 then
  before = 0
  local since = tonumber(ARGV[2])
  for _, claimed_ms in ipairs(redis.call('HVALS', KEYS[1])) do
    if tonumber(claimed_ms) < since then before = before + 1 end
  end
end
local result = {before}
for i = 1, tonumber(ARGV[4]) do
  result[i + 1] = redis.call('HSETNX', KEYS[1], before + i, ms)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return result

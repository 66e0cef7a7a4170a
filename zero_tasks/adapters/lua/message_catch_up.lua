-- message_catch_up: the bridge's catch-up of the stored ranking (bridge/dedup.py): the claim
-- of occurrence 1, taken only when no bridge has claimed any occurrence of these bytes.
-- KEYS[1] the claim hash of the stored ranking's bytes
-- ARGV[1] the hash's TTL, s
-- returns 1 when this bridge took it, 0 otherwise
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 1, t[1] * 1000 + math.floor(t[2] / 1000))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1

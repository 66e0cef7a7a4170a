-- release_claim: give back an execution_id's claim, only if this message holds it.
-- KEYS[1] claim (seen) key
-- ARGV[1] message_id
-- returns 1 when released, 0 otherwise
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0

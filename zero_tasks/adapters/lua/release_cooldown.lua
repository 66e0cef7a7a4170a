-- release_cooldown: give back a ticker's cooldown, only if this execution_id holds it.
-- KEYS[1] cooldown  KEYS[2] cooldown owner
-- ARGV[1] execution_id
-- returns 1 when released, 0 when another execution_id holds it
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0

-- breaker_failure: count a broker failure; open the breaker at the threshold (risk.CircuitBreaker).
-- KEYS[1] consecutive failures  KEYS[2] the breaker
-- ARGV[1] threshold  ARGV[2] window s (the count's expiry)  ARGV[3] the open state JSON
-- returns the count, negated when this failure opened the breaker
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if n >= tonumber(ARGV[1]) and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], ARGV[3])
  return -n
end
return n

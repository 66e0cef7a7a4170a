-- take_broker_slots: take broker calls of this minute's budget together, or none (risk.BrokerRateLimit).
-- KEYS[1] the broker rate window
-- ARGV[1] calls per minute  ARGV[2] member (a name for this taking)  ARGV[3] slots to take
-- returns 0 when taken, else the milliseconds until enough slots are free
-- needs: take_slots
return take_slots(KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]))

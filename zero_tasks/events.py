"""Publishing TradeUpdate events on chan:trade_update, once per decision.

A marker per decision moves from absent to `pending:<ms>` (one publisher won the right to
publish) to `sent`. A concurrent duplicate run waits for `sent`; a run that finds a
`pending` left by a crashed publisher (older than STALE_MS) takes over. The one window
left is a crash between PUBLISH and `sent`, which repeats the event: pub/sub offers
nothing stronger.
"""

from __future__ import annotations

import time

import redis

from . import keys
from .record import DecisionRecord

STALE_MS = 5000
WAIT_STEP_S = 0.05

_BEGIN = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local v = redis.call('GET', KEYS[1])
if v == 'sent' then return 0 end
if v then
  local ts = tonumber(string.sub(v, 9))
  if ts and now_ms - ts <= tonumber(ARGV[1]) then return 2 end
end
redis.call('SET', KEYS[1], 'pending:' .. now_ms, 'EX', ARGV[2])
return 1
"""

PUBLISH, ALREADY_SENT, IN_PROGRESS = 1, 0, 2


def publish_once(r: redis.Redis, record: DecisionRecord) -> bool:
    """True when published now; False when this decision was already announced."""
    marker = keys.event_sent_key(record.event_key)
    deadline = time.monotonic() + 2 * STALE_MS / 1000
    while True:
        state = int(r.eval(_BEGIN, 1, marker, STALE_MS, keys.CLAIM_TTL_SECONDS))
        if state == ALREADY_SENT:
            return False
        if state == PUBLISH:
            r.publish(keys.TRADE_UPDATE_CHANNEL, record.to_trade_update())
            r.set(marker, "sent", ex=keys.CLAIM_TTL_SECONDS)
            return True
        if time.monotonic() > deadline:
            raise redis.RedisError(f"publish of {record.event_key} stuck in progress")
        time.sleep(WAIT_STEP_S)

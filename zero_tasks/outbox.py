"""The decision outbox: a message's decision is kept in Redis and announced in one step.

The first decision stored for a message wins. Whoever runs that message again (a
redelivery after a crash, a duplicate delivery, a retry) finds it and only completes
what is missing — the event, the row — so the event and the row always say the same
thing, and a BLOCKED announcement can never be followed by an order for that message.

Keeping the decision, publishing its TradeUpdate and marking it sent is one Lua script:
atomic, so a crash can never leave a decision announced twice or kept but never
announced, and one round trip instead of four.
"""

from __future__ import annotations

import redis

from . import keys
from .record import DecisionRecord

# KEYS[1]: the outbox hash of one message. ARGV: record JSON, TTL, channel, event JSON.
# Returns {the record that counts, 1 if its event was published now}.
_KEEP_AND_ANNOUNCE = """
local rec = redis.call('HGET', KEYS[1], 'record')
if not rec then
  redis.call('HSET', KEYS[1], 'record', ARGV[1], 'event', ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  rec = ARGV[1]
end
if redis.call('HEXISTS', KEYS[1], 'sent') == 1 then return {rec, 0} end
redis.call('PUBLISH', ARGV[3], redis.call('HGET', KEYS[1], 'event'))
redis.call('HSET', KEYS[1], 'sent', '1')
return {rec, 1}
"""


def decision_key(event_key: str) -> str:
    return keys.DECISION_PREFIX + event_key


def keep_and_announce(r: redis.Redis, rec: DecisionRecord) -> tuple[DecisionRecord, bool]:
    """(the decision that counts for this message, True if its event went out now)."""
    stored, published = r.eval(_KEEP_AND_ANNOUNCE, 1, decision_key(rec.event_key), rec.to_json(),
                               keys.CLAIM_TTL_SECONDS, keys.TRADE_UPDATE_CHANNEL, rec.to_trade_update())
    kept = rec if stored == rec.to_json() else DecisionRecord.from_json(stored)
    return kept, bool(int(published))


def find(r: redis.Redis, event_key: str) -> DecisionRecord | None:
    stored = r.hget(decision_key(event_key), "record")
    return DecisionRecord.from_json(stored) if stored else None

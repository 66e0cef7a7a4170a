"""The decision outbox: a message's decision is kept in Redis before it is announced.

The first decision stored for a message wins. Whoever runs that message again (a
redelivery after a crash, a duplicate delivery, a retry) finds it and only completes
what is missing — the event, the row — so the event and the row always say the same
thing, and a BLOCKED announcement can never be followed by an order for that message.
"""

from __future__ import annotations

import redis

from . import keys
from .record import DecisionRecord

_KEEP = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return ARGV[1] end
return redis.call('GET', KEYS[1])
"""


def decision_key(event_key: str) -> str:
    return keys.DECISION_PREFIX + event_key


def keep(r: redis.Redis, rec: DecisionRecord) -> DecisionRecord:
    """Store `rec` unless this message already has a decision; return the one that counts."""
    stored = r.eval(_KEEP, 1, decision_key(rec.event_key), rec.to_json(), keys.CLAIM_TTL_SECONDS)
    return rec if stored is None else DecisionRecord.from_json(stored)


def find(r: redis.Redis, event_key: str) -> DecisionRecord | None:
    stored = r.get(decision_key(event_key))
    return DecisionRecord.from_json(stored) if stored else None

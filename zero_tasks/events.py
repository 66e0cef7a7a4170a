"""Publishing TradeUpdate events on chan:trade_update, once per decision.

A marker key is set after a successful publish and checked before one, so a task that
runs again after a crash does not announce the same decision twice. (The window between
PUBLISH and the marker is the one place a duplicate event remains possible; pub/sub
offers nothing stronger.)
"""

from __future__ import annotations

import redis

from . import keys
from .record import DecisionRecord


def publish_once(r: redis.Redis, record: DecisionRecord) -> bool:
    """True when published now; False when this decision was already announced."""
    marker = keys.event_sent_key(record.event_key)
    if r.exists(marker):
        return False
    r.publish(keys.TRADE_UPDATE_CHANNEL, record.to_trade_update())
    r.set(marker, "1", ex=keys.CLAIM_TTL_SECONDS)
    return True

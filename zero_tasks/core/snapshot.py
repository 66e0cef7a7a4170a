"""What the checks read: the operator and regime keys as one snapshot, and the limits.

Plain data, read by the Redis adapter (`redis_state.read_snapshot`, one MGET) and judged by
the checks in `checks/`; `now` is always passed in, so every rule is testable at any instant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Snapshot:
    """The operator/regime keys (and the session the gateway keeps) as read from Redis,
    raw, in one round trip.

    `error` is set when Redis could not be read at all: every check then fails closed.
    """

    execution_enabled: str | None
    market_state: str | None
    stand_down: str | None
    error: str | None = None
    breaker: str | None = None  # key:execution_breaker, set while the circuit is open
    blocklist: str | None = None  # key:execution_blocklist:<ticker> of the signal's ticker
    session: str | None = None  # key:execution_session: the broker's trading session (session.py)
    session_error: str | None = None  # why the broker could not tell the session just now
    # The account mirror (core/mirror.py), read in the same round trip by the worker's reads
    # that ask for it (`mirror_read`): its sync record and the ticker's book, raw.
    mirror_read: bool = False
    mirror_sync: str | None = None
    mirror_book: str | None = None


@dataclass(frozen=True)
class Limits:
    min_probability: float
    market_state_max_age_s: float | None  # an optional extra bound; off (None) by default
    signal_max_age_s: float


def json_object(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def operator_time(value: object) -> datetime | str:
    """A time an operator wrote into a key: aware ISO 8601, or the reason it is not one.

    Operator keys are typed by hand; a naive or garbled time must block the message it
    concerns (with the reason), never raise inside a batch of other messages."""
    if not isinstance(value, str):
        return f"time {value!r} is not an ISO 8601 string"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"time {value[:40]!r} is not ISO 8601"
    if parsed.tzinfo is None:
        return f"time {value[:40]!r} has no UTC offset"
    return parsed

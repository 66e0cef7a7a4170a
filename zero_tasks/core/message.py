"""What the bridge hands to the worker: the raw payload (or its verdict) and its identity.

Kept apart from the decision path so that the bridge imports no broker client (alpaca-py
pulls in pandas and numpy: ~90 MB the bridge does not need).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from zero_tasks.core.decision import Code
from zero_tasks.core.intake import Invalid, Signal, parse_payload

log = logging.getLogger(__name__)

# Messages already waiting on a bridge's socket are taken together, up to this many, and go
# to the worker as one task (tasks.decide_many); a batch of more is no bridge's.
BATCH_MAX = 200


@dataclass(frozen=True)
class Message:
    """What the bridge hands over: the raw payload (or its verdict) and its identity."""

    message_id: str
    received_at: datetime
    payload: str | None
    invalid_reason: str | None = None
    invalid_id: str | None = None
    hint_ticker: str = ""
    hint_horizon: str = ""

    def to_task(self) -> dict[str, Any]:
        data = asdict(self)
        data["received_at"] = self.received_at.isoformat()
        return data

    @classmethod
    def from_task(cls, data: dict[str, Any]) -> Message:
        data = dict(data)
        data["received_at"] = datetime.fromisoformat(data["received_at"])
        return cls(**data)


def message_from_bytes(data: bytes, message_id: str, received_at: datetime,
                       max_bytes: int) -> tuple[Message, Signal | Invalid]:
    """The bridge's half of row 1: never raises, whatever the bytes are."""
    try:
        parsed: Signal | Invalid = parse_payload(data, max_bytes)
    except Exception as exc:  # a parser bug must still end as a SKIPPED decision
        log.exception("intake failed on a message")
        parsed = Invalid(f"{Code.INVALID.value}: unreadable ({type(exc).__name__})",
                         "invalid:" + hashlib.sha256(data).hexdigest()[:16])
    if isinstance(parsed, Invalid):
        return Message(message_id, received_at, None, parsed.reason, parsed.execution_id,
                       parsed.ticker, parsed.horizon), parsed
    return Message(message_id, received_at, data.decode("utf-8")), parsed

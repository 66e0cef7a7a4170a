"""What comes in: a raw chan:opportunity_update message, read into a Signal or an Invalid
verdict, and the Message the bridge hands to the worker (the raw payload, or its verdict,
and its identity).

Row 1 of the decision table lives here. It never raises: any bytes at all (non-UTF-8,
1 MB, deeply nested, NaN) come out as a value with a clear reason. It loads no broker
client (alpaca-py pulls in pandas and numpy: ~90 MB the bridge does not need).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from zero_tasks.core.contract import Opportunity, OpportunityRank, execution_id
from zero_tasks.core.decision import Code

log = logging.getLogger(__name__)

INVALID = "invalid payload"
NO_OPPORTUNITIES = "no opportunities"
_MAX_REASON = 300


@dataclass(frozen=True)
class Signal:
    """A well-formed ranking with its rank-1 opportunity and execution_id."""

    rank: OpportunityRank
    top: Opportunity
    execution_id: str

    @property
    def audit_copy(self) -> dict[str, Any]:
        """The rank-1 opportunity as received, unknown fields included."""
        return self.top.model_dump(mode="json")


@dataclass(frozen=True)
class Invalid:
    """A message that cannot be traded; still decided (SKIPPED) and audited."""

    reason: str
    execution_id: str
    ticker: str = ""
    horizon: str = ""


def parse_payload(data: bytes | str, max_bytes: int) -> Signal | Invalid:
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    fallback_id = "invalid:" + hashlib.sha256(raw).hexdigest()[:16]
    if len(raw) > max_bytes:
        return Invalid(f"{INVALID}: {len(raw)} bytes exceeds the {max_bytes}-byte limit", fallback_id)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Invalid(f"{INVALID}: not UTF-8 ({exc.reason} at byte {exc.start})", fallback_id)
    try:
        rank = OpportunityRank.model_validate_json(text, strict=True)
    except ValidationError as exc:
        return Invalid(f"{INVALID}: {_describe(exc)}", fallback_id, **_hints(text))
    except (ValueError, RecursionError, OverflowError) as exc:  # parser limits beyond pydantic's own
        return Invalid(f"{INVALID}: {type(exc).__name__}", fallback_id)
    if not rank.opportunities:
        return Invalid(f"{NO_OPPORTUNITIES}: empty opportunities list", fallback_id,
                       horizon=rank.horizon or "")
    try:
        top = Opportunity.model_validate(rank.opportunities[0], strict=True)
    except ValidationError as exc:
        return Invalid(f"{INVALID}: rank 1 {_describe(exc)}", fallback_id, **_hints(text))
    return Signal(rank=rank, top=top, execution_id=execution_id(top.ticker, top.horizon, rank.rank_time))


def _describe(exc: ValidationError) -> str:
    """Field paths and messages, never the offending input (it may be huge)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    text = "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
    return text[:_MAX_REASON]


def _hints(text: str) -> dict[str, Any]:
    """Best-effort ticker/horizon of a malformed message, so its audit row says what it was."""
    try:
        obj = json.loads(text)
        top = obj["opportunities"][0]
        ticker, horizon = top.get("ticker"), top.get("horizon")
    except Exception:  # noqa: BLE001 - salvage only; the verdict is already INVALID
        return {}
    hints: dict[str, Any] = {}
    if isinstance(ticker, str) and _PRINTABLE.match(ticker[:16]):
        hints["ticker"] = ticker[:16]
    if isinstance(horizon, str) and _PRINTABLE.match(horizon[:8]):
        hints["horizon"] = horizon[:8]
    return hints


# A salvaged hint must be safe on the wire and in every database: printable ASCII only.
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")


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
    """The message to hand over, and what its bytes are: the bridge names the task by the
    execution_id found here, and the worker's row 1 decides on an Invalid. Never raises,
    whatever the bytes are."""
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

"""One decision as it is recorded: the execution_log row and the TradeUpdate event.

Both are built from the same DecisionRecord, so the audit and the event can never say
different things about one decision.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from zero_tasks.core.checks.market_state import market_state_snapshot
from zero_tasks.core.contract import HORIZONS, ExitReason, Horizon, Intent, Side, TradeUpdate, is_market_state
from zero_tasks.core.decision import Code, Status, Verdict
from zero_tasks.core.intake import Invalid, Message, Signal
from zero_tasks.secrets import scrub, scrub_any

if TYPE_CHECKING:  # alpaca-py is the worker's, loaded by the adapters
    from zero_tasks.adapters.alpaca_adapter import PlacedOrder

decision_log = logging.getLogger("zero_tasks.core.decision")


@dataclass(frozen=True)
class DecisionRecord:
    event_key: str  # the message's own id: one record per message, ever
    time: datetime  # when the bridge received the message (stable across redelivery)
    decided_at: datetime
    execution_id: str
    ticker: str
    horizon: str
    probability: float | None
    opportunity_score: float | None
    status: Status
    reason: str
    why: list[str]
    market_state_snapshot: dict[str, Any] | None
    alpaca_order_id: str | None = None
    client_order_id: str | None = None
    submitted_at: datetime | None = None
    payload: dict[str, Any] | None = field(default=None, repr=False)
    # The position lifecycle (CONTRACT.md "Exits and outcomes"): an exit decision carries its
    # entry's execution_id with intent protect|exit, side sell and the exit_reason.
    intent: str = "entry"
    side: str = "buy"
    exit_reason: str | None = None

    def __post_init__(self) -> None:
        """The reason and `why` may quote a broker's or a library's error text: no
        configured secret survives into the audit row, the event or the decision log,
        whoever built the record. The stored payload is scrubbed the same way (whole
        values only, zero_tasks/secrets.py), so the row says what the event says."""
        reason, why = scrub(self.reason), [scrub(line) for line in self.why]
        if reason != self.reason or why != self.why:
            object.__setattr__(self, "reason", reason)
            object.__setattr__(self, "why", why)
        if self.payload is not None:
            payload = scrub_any(self.payload)
            if payload != self.payload:
                object.__setattr__(self, "payload", payload)

    @property
    def latency_ms(self) -> float:
        return round((self.decided_at - self.time).total_seconds() * 1000, 3)

    def _fields(self) -> dict[str, Any]:
        """The fields as they are, status as its value. Shallow: dataclasses.asdict would
        deep-copy the payload of every decision for nothing."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["status"] = self.status.value
        return data

    def to_row(self) -> dict[str, Any]:
        row = self._fields()
        row["latency_ms"] = self.latency_ms
        return row

    def to_trade_update(self) -> str:
        """The event, valid for ZERO's own TradeUpdate model whatever the decision: a field
        the message did not give (an unparsable payload) is null, never a made-up value;
        `submitted_at` is the attempt time for every status, as ZERO's M6 sets it."""
        score = self.opportunity_score
        update = TradeUpdate(
            timestamp=self.decided_at,
            execution_id=self.execution_id,
            ticker=self.ticker or None,
            horizon=cast(Horizon, self.horizon) if self.horizon in HORIZONS else None,
            probability=self.probability if self.probability is not None and 0 <= self.probability <= 1 else None,
            opportunity_score=(int(score) if float(score).is_integer() else score)
            if score is not None and 0 <= score <= 100 else None,
            status=self.status.value,
            alpaca_order_id=self.alpaca_order_id,
            why=self.why,
            market_state_snapshot=self.market_state_snapshot,
            market_state=self.market_state_snapshot if is_market_state(self.market_state_snapshot) else None,
            submitted_at=self.submitted_at or self.decided_at,
            client_order_id=self.client_order_id,
            decision_id=self.event_key,
            intent=cast(Intent, self.intent),
            side=cast(Side, self.side),
            exit_reason=cast(ExitReason, self.exit_reason),
        )
        return update.model_dump_json()

    def to_json(self) -> str:
        return json.dumps(self._fields(), default=_iso)

    @classmethod
    def from_json(cls, text: str | bytes) -> DecisionRecord:
        data = json.loads(text)
        data["status"] = Status(data["status"])
        for name in ("time", "decided_at", "submitted_at"):
            if data.get(name):
                data[name] = datetime.fromisoformat(data[name])
        return cls(**data)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def why_lines(verdict: Verdict, opportunity_why: list[str] | None) -> list[str]:
    """The gateway's reason first, then the opportunity's own lines (contract)."""
    return [verdict.reason, *(opportunity_why or [])]


def clean(value: Any) -> Any:
    """Text that every consumer can store: no NUL (PostgreSQL refuses it in text and
    JSONB) and no lone UTF-16 surrogate (not encodable as UTF-8: no JSON event could
    carry it). Valid JSON can hold both; a decision must still be recorded."""
    if isinstance(value, str):
        if "\x00" in value or not (value.isascii() or _utf8_encodable(value)):
            value = value.replace("\x00", "\ufffd").encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        return value
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    return value


def _utf8_encodable(text: str) -> bool:
    """False for a lone surrogate; checked in C (a per-character loop costs a burst dearly)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def log_decision(rec: DecisionRecord) -> None:
    """One line per decision; its facts are the record's extra fields (JSON keys, zero_tasks/logs.py)."""
    decision_log.info("decision %s %s: %s", rec.status.value, rec.ticker, rec.reason, extra={
        "event": "decision", "execution_id": rec.execution_id, "ticker": rec.ticker,
        "status": rec.status.value, "reason": rec.reason, "latency_ms": rec.latency_ms,
        "alpaca_order_id": rec.alpaca_order_id, "event_key": rec.event_key,
    })


def build_record(msg: Message, subject: Signal | Invalid, verdict: Verdict, market_raw: str | None,
                 now: datetime, order: PlacedOrder | None = None) -> DecisionRecord:
    """The record of a message's decision: what the signal (or the invalid message) names,
    the verdict, the market state as read, and the order when one was placed."""
    if isinstance(subject, Signal):
        top = subject.top
        ident = {"execution_id": subject.execution_id, "ticker": top.ticker, "horizon": top.horizon,
                 "probability": top.probability, "opportunity_score": float(top.opportunity_score),
                 "why": why_lines(verdict, top.why), "payload": subject.audit_copy}
    else:
        ident = {"execution_id": subject.execution_id, "ticker": subject.ticker, "horizon": subject.horizon,
                 "probability": None, "opportunity_score": None, "why": why_lines(verdict, None), "payload": None}
    ident = clean(ident)
    return DecisionRecord(
        event_key=msg.message_id, time=msg.received_at, decided_at=now, status=verdict.status,
        reason=clean(verdict.reason), market_state_snapshot=clean(market_state_snapshot(market_raw)),
        alpaca_order_id=order.order_id if order else None,
        client_order_id=order.client_order_id if order else None,
        submitted_at=(datetime.fromisoformat(order.submitted_at) if order and order.submitted_at
                      else (now if order else None)),
        **ident,
    )


def invalid_record(msg: Message, subject: Invalid, now: datetime) -> DecisionRecord:
    """Row 1: SKIPPED `invalid payload` or `no opportunities`."""
    code = Code.NO_OPPORTUNITIES if subject.reason.startswith(Code.NO_OPPORTUNITIES) else Code.INVALID
    return build_record(msg, subject, Verdict(code, subject.reason.split(": ", 1)[-1]), None, now)

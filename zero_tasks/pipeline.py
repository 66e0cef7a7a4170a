"""The decision path of one message, top to bottom, in the contract's order.

`evaluate` runs rows 1-8 (validation, veto, claim, cooldown) and either decides or
hands an OrderTicket to the order task. `place` runs rows 9-12 at the broker. Neither
knows Celery: the tasks in tasks.py call them and own retries.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import redis

from . import failpoints
from .alpaca_adapter import BrokerRejected, PlacedOrder
from .contract import client_order_id
from .decision import Code, Verdict, deny
from .intake import Invalid, Signal, parse_payload
from .record import DecisionRecord, why_lines
from .redis_state import Claim, read_snapshot
from .runtime import Runtime
from .veto import market_state_snapshot, recheck_before_submit, veto

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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
    def from_task(cls, data: dict[str, Any]) -> "Message":
        data = dict(data)
        data["received_at"] = datetime.fromisoformat(data["received_at"])
        return cls(**data)


@dataclass(frozen=True)
class OrderTicket:
    """Everything the order task needs; serialisable as the task's argument."""

    message: dict[str, Any]
    execution_id: str
    ticker: str
    reentered: bool
    broker_attempt: int = 0  # failed broker rounds so far (network, timeout, 5xx, 429)

    def next_attempt(self) -> "OrderTicket":
        return OrderTicket(self.message, self.execution_id, self.ticker, self.reentered, self.broker_attempt + 1)

    def to_task(self) -> dict[str, Any]:
        return asdict(self)


def message_from_bytes(data: bytes, message_id: str, received_at: datetime, max_bytes: int) -> tuple[Message, Signal | Invalid]:
    """The bridge's half of row 1: never raises, whatever the bytes are."""
    parsed = parse_payload(data, max_bytes)
    if isinstance(parsed, Invalid):
        return Message(message_id, received_at, None, parsed.reason, parsed.execution_id,
                       parsed.ticker, parsed.horizon), parsed
    return Message(message_id, received_at, data.decode("utf-8")), parsed


def _signal_of(rt: Runtime, msg: Message) -> Signal | Invalid:
    if msg.invalid_reason is not None:
        return Invalid(msg.invalid_reason, msg.invalid_id or f"invalid:{msg.message_id}",
                       msg.hint_ticker, msg.hint_horizon)
    return parse_payload(msg.payload or "", rt.settings.max_payload_bytes)


def build_record(msg: Message, subject: Signal | Invalid, verdict: Verdict, market_raw: str | None,
                 now: datetime, order: PlacedOrder | None = None) -> DecisionRecord:
    if isinstance(subject, Signal):
        top = subject.top
        ident = dict(execution_id=subject.execution_id, ticker=top.ticker, horizon=top.horizon,
                     probability=top.probability, opportunity_score=float(top.opportunity_score),
                     why=why_lines(verdict, top.why), payload=subject.audit_copy)
    else:
        ident = dict(execution_id=subject.execution_id, ticker=subject.ticker, horizon=subject.horizon,
                     probability=None, opportunity_score=None, why=why_lines(verdict, None), payload=None)
    return DecisionRecord(
        event_key=msg.message_id, time=msg.received_at, decided_at=now, status=verdict.status,
        reason=verdict.reason, market_state_snapshot=market_state_snapshot(market_raw),
        alpaca_order_id=order.order_id if order else None,
        client_order_id=order.client_order_id if order else None,
        submitted_at=datetime.fromisoformat(order.submitted_at) if order and order.submitted_at else (now if order else None),
        **ident,
    )


def evaluate(rt: Runtime, msg: Message, now: datetime) -> DecisionRecord | OrderTicket:
    """Rows 1-8. A record is a final decision; a ticket goes on to the broker."""
    subject = _signal_of(rt, msg)
    if isinstance(subject, Invalid):
        code = Code.NO_OPPORTUNITIES if subject.reason.startswith(Code.NO_OPPORTUNITIES) else Code.INVALID
        return build_record(msg, subject, Verdict(code, subject.reason.split(": ", 1)[-1]), None, now)
    snap = read_snapshot(rt.redis)
    denial = veto(subject, snap, now, rt.limits)
    if denial:
        return build_record(msg, subject, denial, snap.market_state, now)
    try:
        claim = rt.locks.claim(subject.execution_id, msg.message_id)
        if claim is Claim.TAKEN:
            return build_record(msg, subject, deny(Code.DUPLICATE, f"{subject.execution_id} already claimed"),
                                snap.market_state, now)
        held, since = rt.locks.reserve_cooldown(subject.top.ticker, subject.execution_id, now)
    except redis.RedisError as exc:
        return build_record(msg, subject, deny(Code.ERROR, f"redis unavailable during claim ({type(exc).__name__}); no order"),
                            snap.market_state, now)
    if not held:
        return build_record(msg, subject, deny(Code.COOLDOWN, f"{subject.top.ticker} last order at {since}"),
                            snap.market_state, now)
    return OrderTicket(msg.to_task(), subject.execution_id, subject.top.ticker, claim is Claim.REENTERED)


def place(rt: Runtime, ticket: OrderTicket, now_fn=utcnow) -> DecisionRecord:
    """Rows 9-12. Raises BrokerTransient when the broker's answer is unknown (retry)."""
    msg = Message.from_task(ticket.message)
    subject = _signal_of(rt, msg)
    assert isinstance(subject, Signal), "a ticket is only issued for a valid signal"
    cid = client_order_id(ticket.execution_id)
    ticker = ticket.ticker

    if rt.locks.count_attempt(ticket.execution_id) > 1 or ticket.reentered:
        existing = rt.broker.find_order(cid)  # never resubmit blindly
        if existing:
            return _submitted(rt, msg, subject, existing, now_fn(), "found by client_order_id on retry")

    exposure = rt.broker.open_exposure(ticker)
    if exposure:
        rt.locks.release_cooldown(ticker, ticket.execution_id)
        return build_record(msg, subject, deny(Code.OPEN_POSITION, exposure), None, now_fn())

    snap = read_snapshot(rt.redis)
    denial = recheck_before_submit(snap, now_fn(), rt.limits)
    if denial:
        _release_all(rt, ticket, msg)
        return build_record(msg, subject, deny(denial.code, f"at submit: {denial.detail}"), snap.market_state, now_fn())

    try:
        order = rt.broker.submit_buy(ticker, cid)
        failpoints.hit("after_submit")
    except BrokerRejected as exc:
        if exc.status == 422:  # a reused client_order_id: it is already placed
            existing = rt.broker.find_order(cid)
            if existing:
                return _submitted(rt, msg, subject, existing, now_fn(), "already placed (422 on reuse)", snap.market_state)
        rt.locks.release_cooldown(ticker, ticket.execution_id)
        return build_record(msg, subject, deny(Code.BROKER_REJECTED, f"{exc.status} {exc.detail}"),
                            snap.market_state, now_fn())
    return _submitted(rt, msg, subject, order, now_fn(), None, snap.market_state)


def _submitted(rt: Runtime, msg: Message, subject: Signal, order: PlacedOrder, now: datetime,
               note: str | None, market_raw: str | None = None) -> DecisionRecord:
    submitted_at = datetime.fromisoformat(order.submitted_at) if order.submitted_at else now
    try:
        rt.locks.confirm_cooldown(subject.top.ticker, subject.execution_id, submitted_at)
    except redis.RedisError:
        log.warning("cooldown for %s not confirmed (redis down); the reservation still holds", subject.top.ticker)
    detail = f"1 share {subject.top.ticker} buy market day"
    if note:
        detail += f" ({note})"
    if market_raw is None:
        market_raw = read_snapshot(rt.redis).market_state
    return build_record(msg, subject, deny(Code.SUBMITTED, detail), market_raw, now, order)


def _release_all(rt: Runtime, ticket: OrderTicket, msg: Message) -> None:
    """No order was attempted: give the id and the ticker back for a later decision."""
    try:
        rt.locks.release_cooldown(ticket.ticker, ticket.execution_id)
        rt.locks.release_claim(ticket.execution_id, msg.message_id)
    except redis.RedisError:
        log.warning("could not release claim/cooldown of %s (redis down); they expire by TTL", ticket.execution_id)


def exhausted(rt: Runtime, ticket: OrderTicket, detail: str, now: datetime) -> DecisionRecord:
    """Retries are used up: ERROR. The cooldown stays unless the broker shows no order."""
    msg = Message.from_task(ticket.message)
    subject = _signal_of(rt, msg)
    assert isinstance(subject, Signal)
    try:
        if rt.broker.find_order(client_order_id(ticket.execution_id)) is None:
            rt.locks.release_cooldown(ticket.ticker, ticket.execution_id)
    except Exception:  # noqa: BLE001 - unknown state: keep the reservation (fail closed)
        log.warning("order state of %s unknown; cooldown kept", ticket.execution_id)
    return build_record(msg, subject, deny(Code.ERROR, detail), None, now)


def unexpected(rt: Runtime, message: dict[str, Any], exc: BaseException, now: datetime) -> DecisionRecord:
    """Any error nobody foresaw still ends as one ERROR decision, not a lost message."""
    msg = Message.from_task(message)
    subject = _signal_of(rt, msg)
    return build_record(msg, subject, deny(Code.ERROR, f"unexpected {type(exc).__name__}: {str(exc)[:200]}"), None, now)

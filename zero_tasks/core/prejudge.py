"""Rows 1-6 as a decision: what the message and one snapshot settle before any claim.

Pure: no Redis, SQL or broker. The worker runs it first (`flow.evaluate`), for a message
alone or for each of a batch; only a refusal can come out of here. An order is only ever
placed after the claim, the cooldown, the day's cap and a fresh read of the kill switch.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from zero_tasks.core.checks.market_state import market_state_snapshot
from zero_tasks.core.decision import Code, Verdict
from zero_tasks.core.intake import Invalid, Signal
from zero_tasks.core.message import Message
from zero_tasks.core.pipeline import veto
from zero_tasks.core.record import DecisionRecord, clean, why_lines
from zero_tasks.core.snapshot import Limits, Snapshot

if TYPE_CHECKING:  # alpaca-py is the worker's, loaded by the adapters
    from zero_tasks.adapters.alpaca_adapter import PlacedOrder
    from zero_tasks.settings import Settings


def limits_of(settings: Settings) -> Limits:
    return Limits(min_probability=settings.min_probability,
                  market_state_max_age_s=settings.market_state_max_age_s,
                  signal_max_age_s=settings.signal_max_age_s)


def build_record(msg: Message, subject: Signal | Invalid, verdict: Verdict, market_raw: str | None,
                 now: datetime, order: PlacedOrder | None = None) -> DecisionRecord:
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


def refusal_before_claim(msg: Message, subject: Signal, snap: Snapshot, now: datetime,
                         limits: Limits) -> DecisionRecord | None:
    """Rows 2-6 (with the breaker and the block list): the refusal, or None to go on."""
    denial = veto(subject, snap, now, limits)
    return build_record(msg, subject, denial, snap.market_state, now) if denial else None

"""Reconcile: does what the audit says match what the broker holds?

`compare` is pure: SUBMITTED audit rows of a window and the broker's orders of the same
window in, findings out. Three kinds:
- UNKNOWN_ORDER: an order at the broker that no audit row knows (the worst case: an
  order placed behind the gateway's back, or one whose decision was lost);
- MISSING_ORDER: a SUBMITTED row whose client_order_id the broker does not know;
- STATUS_DRIFT: the order ended canceled, rejected or expired after it was submitted.
A filled order is the expected ending, not a finding; its status is recorded on its row.
Reconcile never places or cancels an order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from zero_tasks.core.contract import PROTECT_PREFIX

UNKNOWN_ORDER = "unknown order"
MISSING_ORDER = "missing order"
STATUS_DRIFT = "status drift"
BAD_ENDINGS = frozenset({"canceled", "rejected", "expired", "suspended", "stopped", "done_for_day"})


@dataclass(frozen=True)
class BrokerOrder:
    order_id: str
    client_order_id: str
    symbol: str
    status: str
    submitted_at: datetime


@dataclass(frozen=True)
class AuditedOrder:
    event_key: str
    execution_id: str
    ticker: str
    client_order_id: str
    alpaca_order_id: str | None
    order_status: str | None
    time: datetime


@dataclass(frozen=True)
class Finding:
    kind: str
    client_order_id: str
    ticker: str
    execution_id: str
    detail: str
    at: datetime  # the order's or the row's time: a finding keeps one identity across runs

    @property
    def key(self) -> str:
        return f"reconcile:{self.kind.replace(' ', '_')}:{self.client_order_id}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "client_order_id": self.client_order_id, "ticker": self.ticker,
                "execution_id": self.execution_id, "detail": self.detail, "at": self.at.isoformat()}


@dataclass(frozen=True)
class Report:
    audited: int
    at_broker: int
    findings: list[Finding]
    statuses: dict[str, str]  # event_key -> the broker's current status, for the follow-up


def compare(audited: list[AuditedOrder], broker: list[BrokerOrder]) -> Report:
    by_cid = {o.client_order_id: o for o in broker}
    known = {a.client_order_id for a in audited}
    statuses: dict[str, str] = {}
    findings: list[Finding] = [
        Finding(UNKNOWN_ORDER, unknown.client_order_id, unknown.symbol, f"reconcile:{unknown.client_order_id}",
                f"{unknown.symbol} order {unknown.order_id} ({unknown.status}) is not in execution_log",
                unknown.submitted_at)
        for unknown in broker if unknown.client_order_id not in known]
    for row in audited:
        order = by_cid.get(row.client_order_id)
        if order is None:
            findings.append(Finding(MISSING_ORDER, row.client_order_id, row.ticker, row.execution_id,
                                    f"SUBMITTED {row.alpaca_order_id} is not at the broker", row.time))
            continue
        statuses[row.event_key] = order.status
        # A protect OCO canceled or expired is the lifecycle's own doing (at the horizon, or
        # once the position is flat): the expected ending, not a finding.
        if order.status in BAD_ENDINGS and not row.client_order_id.startswith(PROTECT_PREFIX):
            findings.append(Finding(STATUS_DRIFT, row.client_order_id, row.ticker, row.execution_id,
                                    f"SUBMITTED order {order.order_id} ended {order.status}", row.time))
    return Report(len(audited), len(broker), findings, statuses)

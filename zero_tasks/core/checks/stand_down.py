"""Row 4: a StandDownSignal in force, GLOBAL or for this ticker. SECTOR is logged and not
applied: the gateway has no sector data."""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import ValidationError

from zero_tasks.core.contract import StandDownSignal
from zero_tasks.core.decision import Code, Verdict, deny
from zero_tasks.core.snapshot import Snapshot

log = logging.getLogger(__name__)


def check_stand_down(snap: Snapshot, ticker: str, now: datetime) -> Verdict | None:
    if snap.error:
        return deny(Code.STAND_DOWN, f"unreadable ({snap.error})")
    if snap.stand_down is None:
        return None
    try:
        signal = StandDownSignal.model_validate_json(snap.stand_down)
    except ValidationError:
        return deny(Code.STAND_DOWN, "key:stand_down_reason is unreadable; failing closed")
    if signal.expires_at is not None and signal.expires_at <= now:
        return None
    if signal.scope == "GLOBAL":
        return deny(Code.STAND_DOWN, f"GLOBAL: {signal.reason}")
    if signal.scope == "TICKER" and (signal.ticker or "").upper() == ticker:
        return deny(Code.STAND_DOWN, f"TICKER {ticker}: {signal.reason}")
    if signal.scope == "SECTOR":
        log.info("stand-down for sector %r not applied to %s: the gateway has no sector data",
                 signal.sector, ticker)
    return None

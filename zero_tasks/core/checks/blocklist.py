"""The operator's per-ticker block (earnings, news), right after the stand-down, with its own
expiry; an entry or time that cannot be read blocks (fail closed)."""

from __future__ import annotations

from datetime import datetime

from zero_tasks.core.decision import Code, Verdict, deny
from zero_tasks.core.snapshot import Snapshot, json_object, operator_time


def check_blocklist(snap: Snapshot, ticker: str, now: datetime) -> Verdict | None:
    """The operator's per-ticker block (earnings, news), with its own expiry."""
    if snap.blocklist is None:
        return None
    entry = json_object(snap.blocklist)
    if entry is None:
        return deny(Code.BLOCKLIST, f"{ticker} blocked (entry unreadable; failing closed)")
    until = entry.get("until")
    if until is None:
        return deny(Code.BLOCKLIST, f"{ticker} blocked until removed: {entry.get('reason', '')}")
    expiry = operator_time(until)
    if isinstance(expiry, str):
        return deny(Code.BLOCKLIST, f"{ticker} blocked ({expiry}; failing closed): {entry.get('reason', '')}")
    if expiry <= now:
        return None
    return deny(Code.BLOCKLIST, f"{ticker} blocked until {until}: {entry.get('reason', '')}")

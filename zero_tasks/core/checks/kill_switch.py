"""Row 2: the operator's kill switch, `key:execution_enabled`, exactly `true` or no order."""

from __future__ import annotations

from zero_tasks.core.decision import Code, Verdict, deny
from zero_tasks.core.snapshot import Snapshot


def check_kill_switch(snap: Snapshot) -> Verdict | None:
    if snap.error:
        return deny(Code.DISABLED, f"kill switch unreadable ({snap.error})")
    if snap.execution_enabled is None:
        return deny(Code.DISABLED, "key:execution_enabled is not set")
    if snap.execution_enabled != "true":
        return deny(Code.DISABLED, f"key:execution_enabled is {snap.execution_enabled[:40]!r}, not 'true'")
    return None

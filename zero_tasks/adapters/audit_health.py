"""Whether the audit can be written, as the audit writers last found it, for /health.

The rows are written by a writer thread in every worker process, far from the bridge that
serves /health. A writer that fails to write (database away, schema broken, migration
refused, permission denied) says so in a small Redis key of its own, with the reason and
when the failure began; the key is deleted when that writer writes again. A writer that
died while failing stops refreshing its key, which then expires (its pending entries are
taken over by another writer, which reports for itself). One key per writer, so one
writer's recovery does not hide another's failure; the writers' names are in a registry
(adapters/registry.py), so /health finds the keys without a SCAN.

Light on purpose: the bridge imports this module, and must not load SQLAlchemy.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

FAILURE_PREFIX = "key:execution_audit_failure:"  # + writer name; JSON while that writer cannot write
FAILING_KEY = "key:execution_audit_failing"  # sorted set: the writers that reported (adapters/registry.py)
FAILURE_TTL_S = 60  # refreshed at every failed attempt (the writer retries within 5 s)
MAX_REASON = 200


def failure_key(writer: str) -> str:
    return FAILURE_PREFIX + writer


def reason_of(exc: BaseException) -> str:
    """The error's type and the first line of the driver's message. Never SQLAlchemy's
    text around it: that carries the statement and its parameters (the rows)."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0]
    return f"{type(orig).__name__}: {first}"[:MAX_REASON]


def failure_value(reason: str, since: datetime, writer: str) -> str:
    return json.dumps({"reason": reason, "since": since.isoformat(),
                       "at": datetime.now(UTC).isoformat(), "writer": writer})


def audit_check(raw_reports: list[bytes | None]) -> dict[str, Any]:
    """The /health check: not ok while any writer reports that it cannot write."""
    reports = [_parse(raw) for raw in raw_reports if raw is not None]
    if not reports:
        return {"ok": True, "detail": "written"}
    first = min(reports, key=lambda report: str(report.get("since")))
    return {"ok": False, "writers_failing": len(reports), "since": first.get("since"),
            "detail": f"audit not written: {first.get('reason')} (writer {first.get('writer')}, "
                      f"since {first.get('since')})"}


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"reason": "unreadable failure report"}

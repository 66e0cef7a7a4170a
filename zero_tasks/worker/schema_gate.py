"""A worker checks the audit schema at its start: at head, brought to head, or refused.

Decided with the newcomer in mind: a worker still migrates a database that is behind by
itself (`make run`, the tests, a fresh SQLite file all keep working), and compose's
one-shot `migrate` service has already done it, so there the worker only confirms. What
a worker never does is run against a schema it cannot write:

- the database is at a revision this code does not know (a newer gateway migrated it):
  refused, before any task is taken;
- the migration to head fails (say a conflicting object): refused; the migration ran in
  one transaction, so the table is as it was;
- the database does not answer: the worker starts. Decisions do not wait for the audit:
  their rows wait in Redis (the audit stream) and the writer migrates at its first
  write; /health is degraded with the reason meanwhile (audit_health.py).

A refusal exits with status 2, as the paper-only guard does, with the reason on stderr.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery import signals
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from zero_tasks.adapters.audit import ensure_schema, make_engine, schema_version
from zero_tasks.adapters.audit_health import reason_of

log = logging.getLogger(__name__)

EXIT_REFUSED = 2


def refusal(engine: Engine) -> str | None:
    """Why this process must not start, or None (migrated when behind)."""
    try:
        version = schema_version(engine)
    except (OperationalError, InterfaceError) as exc:
        log.warning("audit database unreachable at start (%s): rows wait in Redis; "
                    "the schema is checked again at the first write", reason_of(exc))
        return None
    if version.unknown:
        return (f"execution_log is at schema revision {', '.join(version.unknown)}, which this gateway does not "
                f"know (its latest is {', '.join(version.head)}): a newer gateway migrated it. Run that version, "
                "or downgrade the schema with its code (`alembic downgrade <revision>`).")
    if version.at_head:
        return None
    try:
        ensure_schema(engine)
    except (OperationalError, InterfaceError) as exc:
        log.warning("audit database went away while migrating (%s): retried at the first write", reason_of(exc))
        return None
    except Exception as exc:  # noqa: BLE001 - any failed migration refuses the start, with its reason
        return (f"execution_log schema is at {', '.join(version.current) or 'no revision'} and the migration to "
                f"{', '.join(version.head)} failed: {reason_of(exc)}. Nothing was changed (one transaction). "
                "Fix the cause, then run `alembic upgrade head` (alembic.ini at the repository root).")
    log.info("execution_log schema migrated from %s to %s", ", ".join(version.current) or "nothing",
             ", ".join(version.head))
    return None


def check_or_exit(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        reason = refusal(engine)
    finally:
        engine.dispose()
    if reason:
        log.critical("refusing to start: %s", reason)
        print(f"refusing to start: {reason}", file=sys.stderr)
        sys.exit(EXIT_REFUSED)


@signals.worker_init.connect
def _at_worker_start(**_: Any) -> None:
    """In the worker's main process, before its pool forks and before it takes a task."""
    from zero_tasks.settings import settings_or_exit

    check_or_exit(settings_or_exit().sqlalchemy_url)

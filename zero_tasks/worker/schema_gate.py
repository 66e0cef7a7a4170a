"""A worker checks the audit schema at its start: at head, or refused.

The gateway's processes never migrate: `alembic upgrade head` does (an operator, compose's
one-shot `migrate` service, `make run` before it starts anything, the tests' setup). So
a worker never runs against a schema it cannot write:

- the database is behind this code's latest migration (never migrated, or migrated by an
  older gateway): refused, naming `alembic upgrade head`;
- the database is at a revision this code does not know (a newer gateway migrated it):
  refused;
- the database does not answer: the worker starts. Decisions do not wait for the audit:
  their rows wait in Redis (the audit stream), and the writer checks the schema again
  before its first write (`audit.require_schema`); a schema still behind then keeps the
  rows waiting and /health degraded with the same reason (audit_health.py).

A refusal exits with status 2, as the paper-only guard does, with the reason on stderr.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery import signals
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from zero_tasks.adapters.audit import make_engine, schema_version
from zero_tasks.adapters.audit_health import reason_of
from zero_tasks.adapters.migrations import refusal as schema_refusal

log = logging.getLogger(__name__)

EXIT_REFUSED = 2


def refusal(engine: Engine) -> str | None:
    """Why this process must not start, or None."""
    try:
        version = schema_version(engine)
    except (OperationalError, InterfaceError) as exc:
        log.warning("audit database unreachable at start (%s): rows wait in Redis; "
                    "the schema is checked again at the first write", reason_of(exc))
        return None
    return schema_refusal(version)


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

"""The bridge and the account mirror check the audit schema at their start, as a worker
does (zero_tasks/worker/schema_gate.py); here, so that neither process imports the other.

The bridge writes no execution_log row itself, but it hands decisions to writers that
would refuse them; the mirror writes order_status on execution_log rows. A process on a
schema that is not at head refuses to start (exit 2), naming `alembic upgrade head`. A
database that does not answer lets it start: /health says so, and the rows wait in Redis.
The version table is read with the standard library's sqlite3 or psycopg2 (db_probe.py:
the bridge never loads SQLAlchemy for them).
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from pathlib import Path

from zero_tasks.adapters.db_probe import CONNECT_TIMEOUT_S, is_postgres, postgres_dsn, sqlite_path
from zero_tasks.adapters.migrations import VERSION_TABLE, SchemaVersion, refusal, version_of

log = logging.getLogger(__name__)

EXIT_REFUSED = 2
QUERY = f"SELECT version_num FROM {VERSION_TABLE}"


class Unreachable(Exception):
    """The database did not answer (reason in the message, no credentials)."""


def _current_sqlite(path: str) -> tuple[str, ...]:
    try:
        conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, timeout=CONNECT_TIMEOUT_S)
    except sqlite3.OperationalError:
        return ()  # no file yet: never migrated
    try:
        return tuple(row[0] for row in conn.execute(QUERY))
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return ()
        raise Unreachable(f"OperationalError: {exc}") from None
    finally:
        conn.close()


def _current_postgres(url: str) -> tuple[str, ...]:
    import psycopg2
    from psycopg2 import errors

    try:
        conn = psycopg2.connect(postgres_dsn(url), connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg2.OperationalError as exc:
        raise Unreachable(f"OperationalError: {(str(exc).strip().splitlines() or [''])[0]}") from None
    try:
        with conn.cursor() as cur:
            cur.execute(QUERY)
            return tuple(row[0] for row in cur.fetchall())
    except errors.UndefinedTable:
        return ()
    finally:
        conn.close()


def schema_version(url: str) -> SchemaVersion:
    """Where the audit database at `url` (a SQLAlchemy URL) is; raises Unreachable."""
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        return version_of(() if path == ":memory:" else _current_sqlite(path))
    if is_postgres(url):
        return version_of(_current_postgres(url))
    from sqlalchemy.exc import InterfaceError, OperationalError  # another database: through SQLAlchemy

    from zero_tasks.adapters.audit import make_engine
    from zero_tasks.adapters.audit import schema_version as read

    engine = make_engine(url)
    try:
        return read(engine)
    except (OperationalError, InterfaceError) as exc:
        raise Unreachable(type(exc).__name__) from None
    finally:
        engine.dispose()


def check_or_exit(url: str) -> None:
    try:
        reason = refusal(schema_version(url))
    except Unreachable as exc:
        log.warning("audit database unreachable at start (%s): /health says so; the schema is checked by the "
                    "workers before they write", exc)
        return
    if reason:
        log.critical("refusing to start: %s", reason)
        print(f"refusing to start: {reason}", file=sys.stderr)
        sys.exit(EXIT_REFUSED)

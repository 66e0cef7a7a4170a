"""The bridge's look at the audit database for /health: reachable or not, and which one;
and the URL helpers schema_check.py reads the version table with.

The workers write the audit through SQLAlchemy; the bridge only asks `SELECT 1`. Loading
SQLAlchemy for that cost the bridge ~18 MB of its 80 MB budget (docs/benchmark.md), so
SQLite is asked through the standard library and PostgreSQL through psycopg2, the driver
the workers use. Any other database URL goes through SQLAlchemy, loaded only then.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

CONNECT_TIMEOUT_S = 2


def sqlite_path(url: str) -> str:
    """`sqlite:///rel.db`, `sqlite:////abs.db` and `sqlite://` (memory), as SQLAlchemy reads them."""
    rest = url.split("://", 1)[1]
    return rest[1:].split("?", 1)[0] if rest.startswith("/") else ":memory:"


def is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in ("postgresql", "postgres", "postgresql+psycopg2")


def postgres_dsn(url: str) -> str:
    """The libpq form of a SQLAlchemy PostgreSQL URL (libpq does not know `+driver`)."""
    return "postgresql://" + url.split("://", 1)[1]


def label(url: str) -> str:
    """The database in use, without credentials and without a file path (/health is read by
    whoever reaches the port: where the audit file lives is not theirs to know)."""
    if url.startswith("sqlite"):
        return "sqlite (in memory)" if sqlite_path(url) == ":memory:" else "sqlite (file)"
    parts = urlsplit(url)
    backend = parts.scheme.split("+", 1)[0]
    return f"{backend}://{parts.hostname}:{parts.port or 5432}/{unquote(parts.path.lstrip('/'))}"


def _ping_sqlite(path: str) -> None:
    if path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with sqlite3.connect(path, timeout=CONNECT_TIMEOUT_S) as conn:
        conn.execute("SELECT 1").fetchone()
    conn.close()


def _ping_postgres(url: str) -> None:
    import psycopg2  # only a bridge that audits to PostgreSQL loads the driver

    conn = psycopg2.connect(postgres_dsn(url), connect_timeout=CONNECT_TIMEOUT_S)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
    finally:
        conn.close()


def _ping_with_sqlalchemy(url: str) -> Callable[[], None]:
    from zero_tasks.adapters.audit import make_engine, ping

    engine = make_engine(url)
    return lambda: ping(engine)


def pinger(url: str) -> Callable[[], None]:
    """A blocking `SELECT 1` on the database at `url` (a SQLAlchemy URL): raises when unreachable."""
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        return lambda: _ping_sqlite(path)
    if is_postgres(url):
        return lambda: _ping_postgres(url)
    return _ping_with_sqlalchemy(url)

"""The execution_log table and its writer: one row per decision, never two.

ZERO's columns are kept as they are. `execution_id` is not unique (a BLOCKED row must
not stop a later SUBMITTED one); `event_key` is, together with `time` because a
TimescaleDB hypertable only accepts unique keys that contain its time column. The
writer inserts with ON CONFLICT DO NOTHING, so a retried write is a no-op.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB

from zero_tasks.adapters.migrations import VERSION_TABLE, SchemaVersion, refusal
from zero_tasks.core.record import clean

log = logging.getLogger(__name__)

metadata = MetaData()
Json = JSON().with_variant(JSONB(), "postgresql")

execution_log = Table(
    "execution_log",
    metadata,
    # ZERO's columns.
    Column("time", DateTime(timezone=True), nullable=False),
    Column("execution_id", String(200), nullable=False),
    Column("ticker", String(32), nullable=False),
    Column("horizon", String(16), nullable=False),
    Column("probability", Float, nullable=True),
    Column("opportunity_score", Float, nullable=True),
    Column("status", String(16), nullable=False),
    Column("alpaca_order_id", String(64), nullable=True),
    Column("why", Json, nullable=False),
    Column("market_state_snapshot", Json, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The gateway's own.
    Column("event_key", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("client_order_id", String(128), nullable=True),
    Column("submitted_at", DateTime(timezone=True), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("latency_ms", Float, nullable=True),
    Column("payload", Json, nullable=True),
    Column("order_status", String(32), nullable=True),  # follow-up: filled, canceled, ...
    Column("order_status_at", DateTime(timezone=True), nullable=True),
    # The position lifecycle (migration 0004): NULL on ZERO's M6 rows and older gateway rows.
    Column("intent", String(16), nullable=True),  # entry | protect | exit
    Column("side", String(8), nullable=True),  # buy | sell
    Column("exit_reason", String(16), nullable=True),  # target_stop | horizon (exits)
    # The order's fill (migration 0005), written with order_status once it filled.
    Column("filled_avg_price", Float, nullable=True),
    Column("filled_at", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("event_key", "time", name="execution_log_event_key_time"),
    Index("ix_execution_log_execution_id", "execution_id"),
    Index("ix_execution_log_ticker_time", "ticker", "time"),
    Index("ix_execution_log_status_time", "status", "time"),
)


# One row per execution whose position is flat again (the contract's execution_outcome).
execution_outcome = Table(
    "execution_outcome",
    metadata,
    Column("execution_id", String(200), nullable=False, unique=True),
    Column("ticker", String(32), nullable=False),
    Column("horizon", String(16), nullable=False),
    Column("probability", Float, nullable=True),
    Column("target_atr", Float, nullable=True),
    Column("stop_atr", Float, nullable=True),
    Column("atr", Float, nullable=True),
    Column("qty", Float, nullable=False),
    Column("entry_price", Float, nullable=False),
    Column("exit_price", Float, nullable=True),
    Column("realized_pnl", Float, nullable=True),
    Column("return_pct", Float, nullable=True),
    Column("outcome", String(16), nullable=True),  # PASS | FAIL | EXPIRED; NULL when exit_via is manual
    Column("exit_via", String(16), nullable=False),  # target | stop | horizon | manual
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=False),
    Column("held_s", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_execution_outcome_closed_at", "closed_at"),
)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 15})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2,
                         connect_args={"connect_timeout": 2})


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL lets several worker processes write while the bridge reads."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.close()


MIGRATIONS = Path(__file__).with_name("migrations")


def driver_url(url: str) -> str:
    """`postgresql://` means psycopg2 here: SQLAlchemy 2.1 would pick psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def ensure_schema(engine: Engine) -> None:
    """Bring execution_log to the latest migration (Alembic), one caller at a time.

    What `alembic upgrade head` does, in-process, for tools and tests that prepare a
    database; the gateway's processes never call it (they check: `require_schema`).
    PostgreSQL serialises callers with an advisory lock (migrations/env.py), SQLite with
    a lock file beside the database. All pending revisions run in one transaction.
    """
    from alembic import command  # loaded only here and in schema_version: never by the bridge

    with _migration_lock(engine), engine.begin() as conn:
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def schema_version(engine: Engine) -> SchemaVersion:
    """Read the version table; raises SQLAlchemy's errors when the database is away."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    with engine.connect() as conn:
        current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads()
    known = {rev.revision for rev in script.walk_revisions()}
    return SchemaVersion(current=tuple(current), head=tuple(script.get_heads()),
                         unknown=tuple(rev for rev in current if rev not in known))


class SchemaNotAtHead(RuntimeError):
    """execution_log is not at this code's latest migration: the process must not write it."""


def require_schema(engine: Engine) -> None:
    """Raise SchemaNotAtHead unless the table is at head; SQLAlchemy's errors when the database is away."""
    reason = refusal(schema_version(engine))
    if reason:
        raise SchemaNotAtHead(reason)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class OrderFate:
    """What became of a SUBMITTED order, as the broker says: its status and, once it filled,
    the average fill price and the time of the fill (ISO, the broker's)."""

    status: str
    filled_avg_price: str | float | None = None
    filled_at: str | datetime | None = None

    def values(self, at: datetime) -> dict[str, Any]:
        """The row's columns to set: a fill only where the broker gave one (a later status
        without it never erases it); an unreadable price or time is left out."""
        out: dict[str, Any] = {"order_status": self.status, "order_status_at": at}
        price = _number(self.filled_avg_price)
        when = _moment(self.filled_at)
        if price is not None:
            out["filled_avg_price"] = price
        if when is not None:
            out["filled_at"] = when
        return out


def _number(value: str | float | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and math.isfinite(number) and number > 0 else None


def _moment(value: str | datetime | None) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None  # 3.11 reads "Z"
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo else None


def update_order_status(engine: Engine, event_key: str, fate: OrderFate, at: datetime) -> bool:
    """Record what became of a SUBMITTED order on its own row (no new row)."""
    stmt = (execution_log.update().where(execution_log.c.event_key == event_key)
            .where(execution_log.c.status == "SUBMITTED").values(**fate.values(at)))
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount > 0


def update_order_status_by_client_id(engine: Engine, client_order_id: str, fate: OrderFate, at: datetime) -> bool:
    """The account mirror's word on a SUBMITTED order, found by its client_order_id (no new
    row). False when no such row is written yet (the audit writer may still have it)."""
    stmt = (execution_log.update().where(execution_log.c.client_order_id == client_order_id)
            .where(execution_log.c.status == "SUBMITTED").values(**fate.values(at)))
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount > 0


def insert_rows(engine: Engine, rows: list[dict[str, Any]]) -> int:
    """Many rows in one transaction (one multi-row INSERT); rows already there are skipped.

    Returns how many were written now.
    """
    if not rows:
        return 0
    with engine.begin() as conn:
        result = conn.execute(_insert_ignoring_duplicates(engine.dialect.name), [clean(row) for row in rows])
        return max(result.rowcount, 0)


def _insert_ignoring_duplicates(dialect_name: str) -> Any:
    """One statement object per dialect: SQLAlchemy compiles it once and caches it, where a
    multi-row VALUES built per batch would be compiled again for every batch."""
    if dialect_name not in _INSERTS:
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        _INSERTS[dialect_name] = dialect.insert(execution_log).on_conflict_do_nothing(
            index_elements=["event_key", "time"])
    return _INSERTS[dialect_name]


_INSERTS: dict[str, Any] = {}


def outcome_row(message: str | bytes) -> dict[str, Any]:
    """The execution_outcome row of a chan:execution_outcome message."""
    data = json.loads(message)
    row = {c.name: data.get(c.name) for c in execution_outcome.columns if c.name != "created_at"}
    for name in ("opened_at", "closed_at"):
        row[name] = datetime.fromisoformat(row[name])
    if row["execution_id"] is None or row["ticker"] is None:
        raise ValueError("an outcome without its execution_id or ticker")
    return row


def insert_outcomes(engine: Engine, rows: list[dict[str, Any]]) -> int:
    """Outcome rows (one per execution: a retried write is a no-op)."""
    if not rows:
        return 0
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(execution_outcome).on_conflict_do_nothing(index_elements=["execution_id"])
    with engine.begin() as conn:
        return max(conn.execute(stmt, [clean(row) for row in rows]).rowcount, 0)


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(select(1))

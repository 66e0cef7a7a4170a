"""Adopt ZERO's own M6 execution_log in place, every row kept.

ZERO's `infra/db/init.sql` (and `migrations/001_add_execution_log.sql`) make
`execution_log` with `id BIGSERIAL PRIMARY KEY` and `execution_id TEXT NOT NULL UNIQUE`,
and no `event_key`. The gateway writes one row per decision, so a BLOCKED row and a later
SUBMITTED row share an `execution_id`: that UNIQUE would hide the order. This revision:

1. drops the UNIQUE on `execution_id` (ZERO's plain index on it stays);
2. widens `ticker` and `horizon` to the gateway's widths (a salvaged ticker of a malformed
   message can be 16 characters);
3. adds the gateway's columns, and gives each M6 row a deterministic event key
   (`zero-m6:<id>`), its reason (the first `why` line, else the status) and `decided_at`
   (its `time`);
4. adds the gateway's idempotency key, UNIQUE (event_key, time): unique keys of a
   hypertable must contain its time column, and `time` is fixed per message anyway;
5. on TimescaleDB, turns the table into a hypertable on `time`: the primary key becomes
   (id, time) for the same reason, and the rows move into chunks (migrate_data).

ZERO's columns, their values and its other indexes are kept. Everything runs in the one
transaction of the upgrade (migrations/env.py), so a failure at any step leaves the table,
its keys and its rows exactly as they were. The gateway's own table (it has `event_key`)
is left alone.

Revision ID: 0003
"""

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE = "execution_log"
EVENT_KEY = "execution_log_event_key_time"
WIDTHS = {"ticker": 32, "horizon": 16}


def gateway_columns() -> list[sa.Column]:
    return [
        sa.Column("event_key", sa.String(200), nullable=True),  # NOT NULL once every row has one
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("client_order_id", sa.String(128), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.Column("payload", JSONB, nullable=True),
        sa.Column("order_status", sa.String(32), nullable=True),
        sa.Column("order_status_at", sa.DateTime(timezone=True), nullable=True),
    ]


BACKFILL = f"""
UPDATE {TABLE} SET
    event_key = 'zero-m6:' || id::text,
    reason = COALESCE(CASE jsonb_typeof(why) WHEN 'array' THEN why ->> 0 WHEN 'string' THEN why #>> '{{}}' END,
                      status),
    decided_at = time
WHERE event_key IS NULL
"""


def upgrade() -> None:
    bind = op.get_bind()
    columns = {c["name"]: c for c in sa.inspect(bind).get_columns(TABLE)}
    if "event_key" in columns:
        return  # the gateway's own table
    if bind.dialect.name != "postgresql" or "id" not in columns:
        raise RuntimeError(f"{TABLE} has no event_key and is not ZERO's M6 table on PostgreSQL "
                           f"(columns: {sorted(columns)}): adopt it by hand")
    _drop_unique_execution_id(bind)
    _widen(columns)
    for column in gateway_columns():
        if column.name not in columns:
            op.add_column(TABLE, column)
    op.execute(BACKFILL)
    for name in ("event_key", "reason", "decided_at"):
        op.alter_column(TABLE, name, nullable=False)
    if _timescaledb(bind):
        _primary_key_with_time(bind)
    op.create_unique_constraint(EVENT_KEY, TABLE, ["event_key", "time"])
    op.create_index("ix_execution_log_ticker_time", TABLE, ["ticker", "time"])
    op.create_index("ix_execution_log_status_time", TABLE, ["status", "time"])
    if _timescaledb(bind):
        op.execute(f"SELECT create_hypertable('{TABLE}', 'time', migrate_data => TRUE)")


def _drop_unique_execution_id(bind: sa.Connection) -> None:
    inspector = sa.inspect(bind)
    for unique in inspector.get_unique_constraints(TABLE):
        if unique["column_names"] == ["execution_id"] and unique["name"]:
            op.drop_constraint(unique["name"], TABLE, type_="unique")
    for index in inspector.get_indexes(TABLE):
        if index["unique"] and index["column_names"] == ["execution_id"] and not index.get("duplicates_constraint") \
                and index["name"]:
            op.drop_index(index["name"], table_name=TABLE)


def _widen(columns: Mapping[str, Any]) -> None:
    for name, width in WIDTHS.items():
        length = getattr(columns[name]["type"], "length", None)
        if length is not None and length < width:
            op.alter_column(TABLE, name, type_=sa.String(width), existing_type=columns[name]["type"],
                            existing_nullable=columns[name]["nullable"])


def _timescaledb(bind: sa.Connection) -> bool:
    return bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).first() is not None


def _primary_key_with_time(bind: sa.Connection) -> None:
    """A hypertable's unique keys must contain `time`: PRIMARY KEY (id) -> (id, time)."""
    primary = sa.inspect(bind).get_pk_constraint(TABLE)
    if primary["constrained_columns"] and "time" not in primary["constrained_columns"] and primary["name"]:
        op.drop_constraint(primary["name"], TABLE, type_="primary")
        op.create_primary_key(primary["name"], TABLE, [*primary["constrained_columns"], "time"])


def downgrade() -> None:
    """Nothing: an adopted table stays adopted. The UNIQUE on execution_id cannot come back
    once BLOCKED and SUBMITTED rows share an id (it would mean deleting audit rows), and
    the gateway's columns hold the rows written since. ZERO's readers use only its own
    columns, which are all still there."""

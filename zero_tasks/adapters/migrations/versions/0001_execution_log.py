"""execution_log: ZERO's audit columns plus the gateway's own; a hypertable on TimescaleDB.

A table created before migrations existed is left to the later revisions: the gateway's
own shape (event_key) is kept as it is, ZERO's M6 table (id, UNIQUE execution_id) is
adopted by 0003, which also makes that one a hypertable.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("execution_log"):
        op.create_table(
            "execution_log",
            sa.Column("time", sa.DateTime(timezone=True), nullable=False),
            sa.Column("execution_id", sa.String(200), nullable=False),
            sa.Column("ticker", sa.String(32), nullable=False),
            sa.Column("horizon", sa.String(16), nullable=False),
            sa.Column("probability", sa.Float, nullable=True),
            sa.Column("opportunity_score", sa.Float, nullable=True),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("alpaca_order_id", sa.String(64), nullable=True),
            sa.Column("why", Json, nullable=False),
            sa.Column("market_state_snapshot", Json, nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
            sa.Column("event_key", sa.String(200), nullable=False),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("client_order_id", sa.String(128), nullable=True),
            sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("latency_ms", sa.Float, nullable=True),
            sa.Column("payload", Json, nullable=True),
            sa.PrimaryKeyConstraint("event_key", "time", name="execution_log_event_key_time"),
        )
        op.create_index("ix_execution_log_execution_id", "execution_log", ["execution_id"])
        op.create_index("ix_execution_log_ticker_time", "execution_log", ["ticker", "time"])
        op.create_index("ix_execution_log_status_time", "execution_log", ["status", "time"])
    ours = "event_key" in {c["name"] for c in sa.inspect(bind).get_columns("execution_log")}
    if ours and bind.dialect.name == "postgresql" and bind.execute(
            sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).first():
        op.execute("SELECT create_hypertable('execution_log', 'time', if_not_exists => TRUE, migrate_data => TRUE)")


def downgrade() -> None:
    """Drop the table only if this revision made it: ZERO's M6 table (it has `id`) and
    its rows stay."""
    if "id" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("execution_log")}:
        op.drop_table("execution_log")

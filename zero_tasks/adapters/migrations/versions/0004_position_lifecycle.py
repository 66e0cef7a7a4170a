"""The position lifecycle: which order of it a decision is, and each execution's outcome.

`execution_log` gains `intent` (entry | protect | exit), `side` (buy | sell) and
`exit_reason` (target_stop | horizon), all nullable: ZERO's rows, older gateway rows and
ZERO's dashboards read the table as before. `execution_outcome` is new: one row per
execution whose position is flat again (UNIQUE execution_id).

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NEW_COLUMNS = (("intent", 16), ("side", 8), ("exit_reason", 16))


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    columns = {c["name"] for c in inspector.get_columns("execution_log")}
    missing = [(name, width) for name, width in NEW_COLUMNS if name not in columns]
    if missing:
        with op.batch_alter_table("execution_log") as batch:
            for name, width in missing:
                batch.add_column(sa.Column(name, sa.String(width), nullable=True))
    if not inspector.has_table("execution_outcome"):
        op.create_table(
            "execution_outcome",
            sa.Column("execution_id", sa.String(200), nullable=False, unique=True),
            sa.Column("ticker", sa.String(32), nullable=False),
            sa.Column("horizon", sa.String(16), nullable=False),
            sa.Column("probability", sa.Float, nullable=True),
            sa.Column("target_atr", sa.Float, nullable=True),
            sa.Column("stop_atr", sa.Float, nullable=True),
            sa.Column("atr", sa.Float, nullable=True),
            sa.Column("qty", sa.Float, nullable=False),
            sa.Column("entry_price", sa.Float, nullable=False),
            sa.Column("exit_price", sa.Float, nullable=True),
            sa.Column("realized_pnl", sa.Float, nullable=True),
            sa.Column("return_pct", sa.Float, nullable=True),
            sa.Column("outcome", sa.String(16), nullable=True),
            sa.Column("exit_via", sa.String(16), nullable=False),
            sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("held_s", sa.Float, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        )
        op.create_index("ix_execution_outcome_closed_at", "execution_outcome", ["closed_at"])


def downgrade() -> None:
    op.drop_index("ix_execution_outcome_closed_at", table_name="execution_outcome")
    op.drop_table("execution_outcome")
    with op.batch_alter_table("execution_log") as batch:
        for name, _ in reversed(NEW_COLUMNS):
            batch.drop_column(name)

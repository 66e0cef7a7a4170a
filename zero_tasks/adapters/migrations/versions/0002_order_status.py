"""Order status follow-up: what became of a SUBMITTED order (filled, canceled, rejected).

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("execution_log")}
    with op.batch_alter_table("execution_log") as batch:
        if "order_status" not in columns:
            batch.add_column(sa.Column("order_status", sa.String(32), nullable=True))
        if "order_status_at" not in columns:
            batch.add_column(sa.Column("order_status_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution_log") as batch:
        batch.drop_column("order_status_at")
        batch.drop_column("order_status")

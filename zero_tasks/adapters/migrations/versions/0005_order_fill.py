"""The fill on a SUBMITTED row: the average fill price and when the order filled.

`execution_log` gains `filled_avg_price` and `filled_at`, both nullable, written with
`order_status` by whoever learns the order's fate (the account mirror from the
trade_updates stream, else the follow-up chain): an entry's fill without a lookup at the
broker. ZERO's rows and older gateway rows leave them empty.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("execution_log")}
    with op.batch_alter_table("execution_log") as batch:
        if "filled_avg_price" not in columns:
            batch.add_column(sa.Column("filled_avg_price", sa.Float, nullable=True))
        if "filled_at" not in columns:
            batch.add_column(sa.Column("filled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution_log") as batch:
        batch.drop_column("filled_at")
        batch.drop_column("filled_avg_price")

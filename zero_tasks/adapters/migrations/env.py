"""Alembic environment for execution_log, run two ways with the same rules.

- In a process, `audit.ensure_schema` hands over its connection (config attribute).
- From the `alembic` command (alembic.ini at the repository root), the database is
  `DATABASE_URL`, as for the gateway's processes; `postgresql://` means psycopg2.

Either way every pending revision runs in ONE transaction: a failure halfway leaves the
table as it was. On PostgreSQL an advisory lock makes an operator's `alembic upgrade`
and a worker migrating at its start take turns. The version table has the gateway's
own name, so the gateway can share a database with other services that use Alembic.
"""

import os

from alembic import context
from sqlalchemy import Connection, text

from zero_tasks.adapters.migrations import VERSION_TABLE

ADVISORY_LOCK = 727274


def run(connection: Connection) -> None:
    context.configure(connection=connection, version_table=VERSION_TABLE, transaction_per_migration=False)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK})"))
        context.run_migrations()


def url_from_environment() -> str:
    from zero_tasks.adapters.audit import driver_url

    url = os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit("DATABASE_URL is not set: it names the audit database to migrate, as for the gateway "
                         "(sqlite:///var/execution_log.db, postgresql://user:password@host:5432/db).")
    return driver_url(url)


handed_over = context.config.attributes.get("connection")
if handed_over is not None:
    run(handed_over)
elif context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: the migrations inspect the live table")
else:
    from logging.config import fileConfig

    from zero_tasks.adapters.audit import make_engine

    if context.config.config_file_name:
        fileConfig(context.config.config_file_name, disable_existing_loggers=False)
    engine = make_engine(url_from_environment())
    try:
        with engine.connect() as conn:
            run(conn)
            conn.commit()
    finally:
        engine.dispose()

"""Alembic environment: run on the connection `audit.ensure_schema` hands over.

The version table has the gateway's own name, so the gateway can share a database with
other ZERO services that use Alembic too.
"""

from alembic import context

VERSION_TABLE = "zero_execution_schema_version"

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()

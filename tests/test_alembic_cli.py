"""Alembic as operators use it: the real `alembic` command from the repository root, the
database named by DATABASE_URL (postgresql:// means psycopg2, as for the gateway's own
processes), on a SQLite file and on a PostgreSQL database the test creates and drops;
and the gateway's processes, which never migrate, refusing a schema that is behind.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from sqlalchemy import inspect, text

from tests.support.gateway import PG_URL, sqlalchemy_url
from tests.support.procs import CELERY, PYTHON, ROOT, base_env, free_port
from zero_tasks.adapters.audit import make_engine

ALEMBIC = str(Path(CELERY).with_name("alembic"))
HEAD = "0005"


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh database on the test PostgreSQL (trust auth), dropped afterwards; its URL
    is plain postgresql://, as an operator writes it."""
    base = os.environ.get("TEST_POSTGRES_URL", PG_URL)
    name = f"alembic_cli_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(base)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        parts = urlsplit(base)
        yield urlunsplit(parts._replace(path=f"/{name}", query=""))
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    return request.getfixturevalue("pg_database")


def alembic(url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """`alembic ...` from the repository root, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if url is not None:
        env["DATABASE_URL"] = url
    return subprocess.run([ALEMBIC, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120)


def current(url: str) -> str:
    result = alembic(url, "current")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def set_version(url: str, revision: str) -> None:
    engine = make_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE zero_execution_schema_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def test_alembic_upgrade_current_history_downgrade(database_url: str) -> None:
    assert current(database_url) == ""
    assert alembic(database_url, "upgrade", "head").returncode == 0
    assert current(database_url) == f"{HEAD} (head)"
    engine = make_engine(sqlalchemy_url(database_url))
    assert "event_key" in {c["name"] for c in inspect(engine).get_columns("execution_log")}
    engine.dispose()
    history = alembic(database_url, "history")
    assert history.returncode == 0
    assert [line.split(",")[0] for line in history.stdout.strip().splitlines()] == [
        "0004 -> 0005 (head)", "0003 -> 0004", "0002 -> 0003", "0001 -> 0002", "<base> -> 0001"]
    assert alembic(database_url, "downgrade", "-1").returncode == 0
    assert current(database_url) == "0004"
    assert alembic(database_url, "upgrade", "head").returncode == 0
    assert current(database_url) == f"{HEAD} (head)"


def test_alembic_without_database_url_says_what_is_missing() -> None:
    result = alembic(None, "current")
    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr


def start(argv: list[str], url: str) -> subprocess.CompletedProcess[str]:
    """A process that gets past its schema check would run for good: bounded here, the
    refusal comes before it touches Redis (nothing listens at its Redis port)."""
    env = base_env(free_port(), "http://127.0.0.1:9", url, free_port())
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=60)


WORKER = [CELERY, "-A", "zero_tasks", "worker", "-c", "1", "--without-gossip", "--without-mingle", "-l", "INFO"]
BRIDGE = [PYTHON, "-m", "bridge"]


@pytest.mark.parametrize("argv", [WORKER, BRIDGE], ids=["worker", "bridge"])
def test_processes_refuse_a_schema_that_is_behind_naming_alembic_upgrade_head(argv: list[str],
                                                                                database_url: str) -> None:
    never_migrated = start(argv, database_url)
    assert never_migrated.returncode == 2, never_migrated.stderr[-2000:]
    assert ("refusing to start: execution_log schema is behind: at no revision, this gateway needs 0005. "
            "Run `alembic upgrade head`") in never_migrated.stderr

    assert alembic(database_url, "upgrade", "0004").returncode == 0
    one_behind = start(argv, database_url)
    assert one_behind.returncode == 2
    assert "schema is behind: at 0004, this gateway needs 0005" in one_behind.stderr
    assert current(database_url) == "0004"  # the process did not migrate it


@pytest.mark.parametrize("argv", [WORKER, BRIDGE], ids=["worker", "bridge"])
def test_processes_refuse_a_schema_at_a_revision_they_do_not_know(argv: list[str], database_url: str) -> None:
    assert alembic(database_url, "upgrade", "head").returncode == 0
    set_version(database_url, "9999")

    result = start(argv, database_url)

    assert result.returncode == 2
    assert "refusing to start: execution_log is at schema revision 9999" in result.stderr

"""The bridge's /health look at the audit database (zero_tasks/adapters/db_probe.py), without SQLAlchemy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.gateway import PG_URL
from tests.support.procs import free_port
from zero_tasks.adapters.db_probe import label, pinger, postgres_dsn

PG = os.environ.get("TEST_POSTGRES_URL", PG_URL)


@pytest.mark.parametrize(("url", "shown"), [
    ("sqlite:///var/execution_log.db", "sqlite (file)"),
    ("sqlite:////srv/zero/audit.db", "sqlite (file)"),
    ("sqlite://", "sqlite (in memory)"),
    ("postgresql+psycopg2://zero:s3cret@db.internal:6432/audit?sslmode=require", "postgresql://db.internal:6432/audit"),
    ("postgresql+psycopg2://zero@127.0.0.1/test", "postgresql://127.0.0.1:5432/test"),
])
def test_the_database_label_names_it_without_credentials_or_a_file_path(url: str, shown: str) -> None:
    assert label(url) == shown
    assert "s3cret" not in label(url) and "zero@" not in label(url)


def test_a_sqlite_audit_file_is_reachable_and_made_with_its_folder(tmp_path: Path) -> None:
    pinger(f"sqlite:///{tmp_path}/audit/execution_log.db")()  # raises when not
    assert (tmp_path / "audit" / "execution_log.db").is_file()


def with_options(options: str) -> str:
    url = "postgresql+psycopg2://" + PG.split("://", 1)[1]
    return url + ("&" if "?" in url else "?") + "options=" + options


def test_postgresql_is_asked_through_its_driver_with_the_url_options() -> None:
    import psycopg2

    url = with_options("-csearch_path%3Dzero_probe")
    pinger(url)()
    conn = psycopg2.connect(postgres_dsn(url))  # the connection string the probe hands its driver
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW search_path")
            assert cur.fetchone() == ("zero_probe",)
    finally:
        conn.close()


def test_postgresql_options_the_server_refuses_make_the_probe_raise() -> None:
    """The options reach the server: one it does not know fails the probe's connection."""
    import psycopg2

    with pytest.raises(psycopg2.OperationalError, match="no_such_setting"):
        pinger(with_options("-cno_such_setting%3D1"))()


def test_an_unreachable_postgresql_raises() -> None:
    import psycopg2

    with pytest.raises(psycopg2.OperationalError):
        pinger(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/test")()


def test_the_bridge_does_not_load_sqlalchemy() -> None:
    """~18 MB of the bridge's 80 MB budget; only the workers write the audit."""
    code = "import sys, bridge.app; sys.exit('sqlalchemy' in sys.modules)"
    env = {**os.environ, "ALPACA_PAPER": "true", "ALPACA_API_KEY": "k", "ALPACA_SECRET_KEY": "s",
           "TASK_SIGNING_KEY": "t" * 32}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 0

"""The bridge's /health look at the audit database (bridge/db_probe.py), without SQLAlchemy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.db_probe import label, pinger
from tests.support.gateway import PG_URL
from tests.support.procs import free_port

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


def test_a_sqlite_audit_file_is_reachable(tmp_path: Path) -> None:
    pinger(f"sqlite:///{tmp_path}/audit/execution_log.db")()  # raises when not


def test_postgresql_is_asked_through_its_driver_with_the_url_options() -> None:
    url = "postgresql+psycopg2://" + PG.split("://", 1)[1]
    pinger(url + ("&" if "?" in url else "?") + "options=-csearch_path%3Dzero_probe")()


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

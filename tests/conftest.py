"""Shared fixtures: a simulator, a private Redis and running gateways per audit backend."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from alpaca_paper_sim import SimServer, open_market
from tests.support.gateway import PG_URL, Gateway
from tests.support.procs import PrivateRedis

SQLITE = "sqlite"
POSTGRES = "postgres"


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def sim() -> Iterator[SimServer]:
    """Always open, fills at once, no practical rate limit: the suite's gateways trade at any hour.
    The hours, the fill delay and the quota are tested in tests/test_simulator.py."""
    server = SimServer(state=open_market()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def private_redis(log_dir: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(log_dir).start()
    yield server
    server.stop()


def database_url(backend: str, tmp: Path) -> str:
    if backend == POSTGRES:
        return os.environ.get("TEST_POSTGRES_URL", PG_URL)
    return f"sqlite:///{tmp / 'execution_log.db'}"


@pytest.fixture(scope="session", params=[SQLITE, POSTGRES])
def gateway(request: pytest.FixtureRequest, log_dir: Path, private_redis: PrivateRedis, sim: SimServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A running gateway (2 workers, 1 bridge) per audit backend, shared by the suite."""
    url = database_url(request.param, tmp_path_factory.mktemp(request.param))
    gw = Gateway(log_dir, private_redis, sim.url, url).start()
    yield gw
    gw.stop()


@pytest.fixture
def gw(gateway: Gateway) -> Gateway:
    gateway.reset()
    return gateway

"""Shared fixtures: a simulator, a private Redis and running gateways per audit backend."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from alpaca_paper_sim import SimServer, open_market
from tests.support.gateway import PG_URL, Gateway
from tests.support.procs import PrivateRedis
from zero_tasks import secrets

SQLITE = "sqlite"
POSTGRES = "postgres"
IN_CI = os.environ.get("CI", "").lower() in ("true", "1")

# CI draws the same examples every run (a red CI run is red again on a rerun); anywhere a
# failure prints the blob that replays it (@reproduce_failure).
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("dev", print_blob=True)
hypothesis_settings.load_profile("ci" if IN_CI else "dev")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI a skipped (or xfailed) guarantee test is a failure: a promise that was not
    tested must not pass as a quiet `s`."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and item.get_closest_marker("guarantee") is not None:
        why = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"a guarantee test may not skip under CI=true: {why}"


@pytest.fixture(autouse=True)
def process_wide_state_restored() -> Iterator[None]:
    """What a test may change for the whole process is put back after it: the installed
    secret scrubber (load_settings installs its settings' secrets), the root logger's
    handlers and level (configure_logging) and the exception hooks it sets."""
    scrubber = secrets.active()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = (sys.excepthook, threading.excepthook)
    yield
    secrets.use(scrubber)
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The several-hosts tests (`hosts` marker: root, network namespaces) run only when asked
    for by marker (`make test-hosts`: -m hosts), so `make test` does not run them twice; and
    with HOSTS_BROKER set, only that Celery broker's half of them (scripts/test_hosts.py runs
    the two halves side by side)."""
    if "hosts" in (config.option.markexpr or ""):
        broker = os.environ.get("HOSTS_BROKER")
        _deselect(config, items, lambda item: broker is not None and _spread_of(item) not in (None, broker))
    else:
        _deselect(config, items, lambda item: item.get_closest_marker("hosts") is not None)


def _spread_of(item: pytest.Item) -> object:
    """The Celery broker a several-hosts test runs on (its `spread` parameter), if any."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("spread") if callspec else None


def _deselect(config: pytest.Config, items: list[pytest.Item], out: Callable[[pytest.Item], bool]) -> None:
    dropped = [item for item in items if out(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not out(item)]


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

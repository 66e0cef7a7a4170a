"""The worker keeps its broker connections warm (zero_tasks/worker/keep_warm.py): a signal
after a quiet gap longer than the server's idle timeout finds both connections open, and
the keep-warm calls are paid from the broker budget. Without keep-warm the same gap costs
new connections (the test can fail).

The simulator serves HTTPS and closes a connection idle for 1 s; keep-warm is 0.4 s (a call
on a connection idle that long, looked for every 0.1 s). Connections are read from the
simulator's counters; the test's admin calls go to a plain-HTTP twin of the same state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from alpaca_paper_sim import SimServer, make_test_tls, open_market
from tests.support.gateway import Gateway, opportunity, ranking
from tests.support.procs import PrivateRedis

IDLE_TIMEOUT_S = 1.0
QUIET_GAP_S = 3.0
BROKER_RATE_KEY = "key:execution_broker_rate"


@contextmanager
def quiet_gateway(log_dir: Path, tmp: Path, keep_warm_s: str) -> Iterator[tuple[Gateway, SimServer]]:
    tls = make_test_tls()
    ca = tls.write_ca(tmp / "ca.pem")
    state = open_market()
    with SimServer(state=state, tls=tls, idle_timeout_s=IDLE_TIMEOUT_S) as https, SimServer(state=state) as plain:
        server = PrivateRedis(log_dir).start()
        gw = Gateway(log_dir, server, https.url, f"sqlite:///{tmp / 'audit.db'}", workers=1, bridges=1,
                     ALPACA_CA_FILE=str(ca), BROKER_KEEP_WARM_S=keep_warm_s)
        gw.sim_url = plain.url
        try:
            yield gw.start(), https
        finally:
            gw.stop()
            server.stop()


def after_a_quiet_gap(gw: Gateway, https: SimServer) -> tuple[int, int]:
    """(connections the simulator accepted across the gap and the second signal, keep-warm
    slots in the broker budget): one signal, a gap past the idle timeout, another signal."""
    gw.reset()
    gw.green()
    (first,) = gw.decide(ranking(opportunity("AAPL")), timeout=30)
    assert first["status"] == "SUBMITTED", first
    before = https.connection_stats()["accepted"]
    time.sleep(QUIET_GAP_S)
    (second,) = gw.decide(ranking(opportunity("MSFT")), timeout=30)
    assert second["status"] == "SUBMITTED", second
    accepted = https.connection_stats()["accepted"] - before
    slots = [m for m in gw.r.zrange(BROKER_RATE_KEY, 0, -1) if m.startswith(b"keep-warm:")]
    return accepted, len(slots)


@pytest.fixture(scope="module")
def gap_kept_warm(log_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, int]:
    with quiet_gateway(log_dir, tmp_path_factory.mktemp("keep_warm_on"), "0.4") as (gw, https):
        return after_a_quiet_gap(gw, https)


@pytest.fixture(scope="module")
def gap_not_kept_warm(log_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, int]:
    with quiet_gateway(log_dir, tmp_path_factory.mktemp("keep_warm_off"), "0") as (gw, https):
        return after_a_quiet_gap(gw, https)


@pytest.mark.e2e
def test_a_signal_after_a_quiet_gap_past_the_idle_timeout_needs_no_new_broker_connection(
        gap_kept_warm: tuple[int, int]) -> None:
    accepted, _ = gap_kept_warm
    assert accepted == 0


@pytest.mark.e2e
def test_the_keep_warm_calls_are_paid_from_the_broker_budget(gap_kept_warm: tuple[int, int]) -> None:
    _, slots = gap_kept_warm
    assert slots >= 2  # the gap is 7 keep-warm periods: both connections were called, each call paid for


@pytest.mark.e2e
def test_without_keep_warm_a_quiet_gap_past_the_idle_timeout_costs_new_broker_connections(
        gap_not_kept_warm: tuple[int, int]) -> None:
    accepted, slots = gap_not_kept_warm
    assert accepted >= 1  # the server closed the idle connections; the order opened new ones
    assert slots == 0

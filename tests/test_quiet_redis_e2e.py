"""A signal after a quiet spell finds the gateway's Redis connections warm: none of the
connections its path uses (the bridge's claim, hand-over ledger and queue write, the worker's
reads and claims) sends a health-check PING before its command, whatever the gap.

redis-py PINGs a connection before a command once it has been idle longer than its
health-check interval; kombu's Redis transport sets one (celeryconfig: 10 s), and ZERO
ranks about once a minute. The gap here (16 s) is longer than every interval the gateway
ever used on those connections (5, 10 and 15 s). Commands are read with MONITOR, with the
client that sent each (tests/support/monitor.py); the subscription's own check (`PING
redis-py-health-check`, on the pub/sub connection, not on the path) is left out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alpaca_paper_sim import SimServer
from tests.support.gateway import Gateway, isolated_gateway, opportunity, ranking
from tests.support.monitor import sent_during

QUIET_S = 16.0


def path_of_one_signal(gw: Gateway, ticker: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The decision, and what clients sent from its PUBLISH to its decision's outbox write."""
    decisions: list[dict[str, Any]] = []
    seen = sent_during(gw.redis_server, 0, lambda: decisions.extend(gw.decide(ranking(opportunity(ticker)),
                                                                              timeout=30)))
    start = next(i for i, (_, c) in enumerate(seen) if c.startswith("PUBLISH CHAN:OPPORTUNITY_UPDATE"))
    end = next(i for i, (_, c) in enumerate(seen) if i > start and "KEY:EXECUTION_AUDIT_STREAM" in c)
    (decision,) = decisions
    return decision, seen[start + 1:end + 1]


@pytest.fixture(scope="module")
def after_a_quiet_spell(log_dir: Path, sim: SimServer,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any],
                                                                                   list[tuple[str, str]]]]:
    with isolated_gateway(log_dir, sim.url, tmp_path_factory.mktemp("quiet_redis")) as gw:
        gw.reset()
        gw.green()
        (first,) = gw.decide(ranking(opportunity("AAPL")), timeout=30)
        assert first["status"] == "SUBMITTED", first
        time.sleep(QUIET_S)
        yield path_of_one_signal(gw, "MSFT")


@pytest.mark.e2e
def test_a_signal_after_a_quiet_spell_is_ordered(after_a_quiet_spell: tuple[dict[str, Any], list]) -> None:
    decision, _ = after_a_quiet_spell
    assert decision["status"] == "SUBMITTED", decision


@pytest.mark.e2e
def test_no_connection_of_the_path_pings_before_its_command_after_a_quiet_spell(
        after_a_quiet_spell: tuple[dict[str, Any], list[tuple[str, str]]]) -> None:
    _, path = after_a_quiet_spell
    assert any(c.startswith("LPUSH ZERO_EXECUTION") for _, c in path), path  # the window holds the hand-over
    assert any(c.startswith("MGET KEY:EXECUTION_ENABLED") for _, c in path), path  # and the worker's read
    on_the_path = {client for client, c in path if c != "PING"}
    pings = [(client, c) for client, c in path if c == "PING" and client in on_the_path]
    assert pings == [], path

"""`zero-ops outcomes` on a day of 50 simulated rankings through the real processes (issue
28): 50 distinct tickers bought, protected, and ended by their own prices (target first,
stop first) or by the horizon (the simulator's clock jumped past it), then the summary
read back as an operator reads it.

The daily cap (10 entry orders a trading day, a hard limit, counted on the broker's own
order list) lets 10 entries a day: the rankings come in five rounds of ten, and between
rounds the day turns over (the simulator reset: its orders gone, its clock back to now;
the cap's key and the broker budget's minute emptied here, as the night would), so the
test's "day" is five of the gateway's. The outcome rows stay in the audit, all closed
within `--since 1d`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from alpaca_paper_sim import SimServer, open_market
from tests.support.gateway import Gateway, collect, isolated_gateway, opportunity, ranking, symbol
from tests.support.procs import CELERY, Proc, wait_for
from tests.support.quiescence import lifecycle_due
from tests.test_position_lifecycle_e2e import DUE_SET, orders_with, outcome_rows, prices_of
from zero_ops.cli import main as zero_ops
from zero_tasks.adapters.audit import execution_outcome
from zero_tasks.core.contract import protect_client_order_id
from zero_tasks.core.keys import BROKER_RATE_KEY, DAILY_ORDERS_PREFIX

pytestmark = [pytest.mark.e2e]

ROUNDS, PER_ROUND = 5, 10


@pytest.fixture(scope="module")
def dsim() -> Iterator[SimServer]:
    server = SimServer(state=open_market()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dgw(log_dir: Path, dsim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("outcomes-day")
    with isolated_gateway(log_dir, dsim.url, tmp, workers=1, LIFECYCLE_TICK_S="1", LIFECYCLE_LOOK_EVERY_S="3",
                          TASK_TIME_LIMIT_S="10") as gw:
        beat = Proc(f"beat-{gw.api_port}", [CELERY, "-A", "zero_tasks", "beat", "-s", str(tmp / "beat-schedule"),
                                           "-l", "INFO"], gw.env, log_dir).start()
        gw.quiescence.add("lifecycle", lambda: lifecycle_due(gw.r))
        try:
            yield gw
        finally:
            beat.stop()


def fate(n: int) -> str:
    """Of each round of ten: four reach the target, three the stop, three the horizon."""
    return ("target", "target", "target", "target", "stop", "stop", "stop", "horizon", "horizon", "horizon")[n % 10]


def probability(n: int) -> float:
    return round(0.90 + (n % 10) / 100, 2)


def one_round(gw: Gateway, first: int) -> list[dict[str, Any]]:
    """Ten rankings bought and protected, then each led to its fate; the round's outcomes."""
    if first:  # the next day: at the broker (its orders, which the cap counts, and its clock) and here
        gw.sim("POST", "/_sim/reset")
        gw.keep_session()
        gw.r.delete(*gw.r.keys(DAILY_ORDERS_PREFIX + "*") or ["none"])
        gw.r.delete(BROKER_RATE_KEY)  # its broker budget spent long ago: ten entries at once fit in it
    tickers = [symbol("OD", n) for n in range(first, first + PER_ROUND)]
    gw.sim("POST", "/_sim/prices", dict.fromkeys(tickers, 100.0))
    pubsub = gw.subscribe()
    try:
        for n, ticker in zip(range(first, first + PER_ROUND), tickers, strict=True):
            gw.publish(ranking(opportunity(ticker, probability=probability(n))))
        entries = [e for e in collect(pubsub, PER_ROUND * 2, 120) if e["intent"] == "entry"]
    finally:
        pubsub.close()
    assert sorted(e["ticker"] for e in entries) == tickers and {e["status"] for e in entries} == {"SUBMITTED"}
    by_ticker = {e["ticker"]: e["execution_id"] for e in entries}
    for n, ticker in zip(range(first, first + PER_ROUND), tickers, strict=True):
        cid = protect_client_order_id(by_ticker[ticker])
        wait_for(lambda c=cid: orders_with(gw, c), 120, f"the protect of {ticker}")
        limit, stop = prices_of(orders_with(gw, cid)[0])
        if fate(n) != "horizon":
            gw.sim("POST", "/_sim/prices", {ticker: limit if fate(n) == "target" else round(stop - 0.05, 2)})
    gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
    wait_for(lambda: all(outcome_rows(gw, e) for e in by_ticker.values()), 180, "the round's outcomes")
    return [outcome_rows(gw, by_ticker[t])[0] for t in tickers]


@pytest.mark.slow
@pytest.mark.timeout(900)  # five rounds of a bought, protected and closed ten
def test_outcomes_on_a_day_of_50_rankings_counts_each_fate_and_sums_the_pnl(dgw: Gateway) -> None:
    dgw.green()
    rows: list[dict[str, Any]] = []
    for r in range(ROUNDS):
        rows += one_round(dgw, r * PER_ROUND)
    wait_for(lambda: dgw.r.zcard(DUE_SET) == 0, 60, "every lifecycle finished")
    dgw.settle()
    assert [r["outcome"] for r in rows] == [{"target": "PASS", "stop": "FAIL", "horizon": "EXPIRED"}[fate(n)]
                                            for n in range(ROUNDS * PER_ROUND)]
    with dgw.engine.connect() as conn:
        assert len(list(conn.execute(execution_outcome.select()))) == 50  # one row per execution
    result = CliRunner().invoke(zero_ops, ["outcomes", "--since", "1d", "--json"], env=dict(dgw.env))
    assert result.exit_code == 0, result.output
    (summary,) = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    assert summary["horizon"] == "H30" and summary["count"] == 50
    assert (summary["pass"], summary["fail"], summary["expired"], summary["manual"]) == (20, 15, 15, 0)
    assert summary["hit rate"] == "40.0%"
    assert summary["mean p"] == f"{sum(probability(n) for n in range(50)) / 50:.3f}"
    assert summary["total p&l"] == f"{sum(float(r['realized_pnl']) for r in rows):.2f}"
    assert float(summary["total p&l"]) == pytest.approx(sum(float(r["realized_pnl"]) for r in rows), abs=0.005)

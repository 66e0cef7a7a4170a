"""`zero-ops positions` and `zero-ops outcomes`: what the operator reads of the position
lifecycle, from Redis and execution_outcome."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from zero_ops.cli import main
from zero_ops.lifecycle_cli import inert, outcome_summary, position_rows
from zero_tasks.adapters.audit import ensure_schema, insert_outcomes, make_engine, outcome_row
from zero_tasks.core.lifecycle.outcome import outcome_of
from zero_tasks.core.lifecycle.state import Facts, LifecycleRecord, OrderFacts, Policy, PositionFacts
from zero_tasks.settings import Settings

OPENED = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def rec(execution_id: str = "SPY:H30:2026-12-07T15:00:00", **changes: object) -> LifecycleRecord:
    return LifecycleRecord(execution_id, "SPY", "H30", 0.95, 95, 1.5, 0.75, OPENED, Policy.ZERO, "evt",
                           due_at=OPENED + timedelta(minutes=30)).but(**changes)


def test_inert_escapes_control_characters() -> None:
    assert inert("SPY\x1b[31m\nX") == "SPY\\x1b[31m\\nX"


def test_positions_show_the_protect_prices_and_the_time_to_the_horizon_exit() -> None:
    rows = position_rows([rec(limit_price="513.57", stop_price="511.68", atr=0.84),
                          rec("QQQ:H2H:2026-12-07T15:00:00", protect_skipped=True, atr_note="too few bars",
                              due_at=OPENED + timedelta(hours=2))], OPENED + timedelta(minutes=10))
    assert [(r["ticker"], r["target / stop"], r["in"]) for r in rows] == [
        ("SPY", "513.57 / 511.68", "20m00s"), ("SPY", "none (too few bars)", "1h50m")]


def test_positions_show_a_position_handed_over_as_the_operators_and_each_exit_deferred() -> None:
    rows = position_rows([rec(handed_over="horizon sell refused by the broker (403)", exit_deferred=True),
                          rec("QQQ:H2H:2026-12-07T15:00:00", protect_deferred=True)], OPENED + timedelta(minutes=40))
    assert [(r["execution_id"][:3], r["in"], r["deferred"]) for r in rows] == [
        ("QQQ", "0s", "protect"), ("SPY", "the operator's (horizon sell refused by the broker (403))", "exit")]


def test_outcome_summary_per_horizon_sets_the_hit_rate_beside_the_mean_probability() -> None:
    rows = [{"horizon": "H30", "outcome": o, "probability": p, "return_pct": ret, "realized_pnl": pnl}
            for o, p, ret, pnl in [("PASS", 0.9, 1.0, 1.0), ("FAIL", 0.92, -0.5, -0.5), ("EXPIRED", 0.94, 0.1, 0.1),
                                   (None, 0.96, None, None)]]
    (h30,) = outcome_summary(rows)
    assert h30 == {"horizon": "H30", "count": 4, "pass": 1, "fail": 1, "expired": 1, "manual": 1,
                   "hit rate": "33.3%", "mean p": "0.930", "mean return %": "0.200", "total p&l": "0.60"}


def fill(price: float, minutes: int, oid: str) -> OrderFacts:
    return OrderFacts(oid, "filled", 1, price, OPENED + timedelta(minutes=minutes))


CANCELED = OrderFacts("c", "canceled", 0)


def test_zero_ops_outcomes_over_a_day_of_50_simulated_rankings(tmp_path: Path) -> None:
    """50 executions of one day, ended by the lifecycle's own outcome rule, written as the
    audit writer writes them; the CLI's table per horizon."""
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    ensure_schema(engine)
    rng = random.Random(7)
    rows, expected = [], {"H30": [0, 0, 0], "H2H": [0, 0, 0]}
    for n in range(50):
        horizon = "H30" if n % 2 else "H2H"
        record = rec(f"T{n:02d}:{horizon}:2026-12-07T15:{n:02d}:00", horizon=horizon)
        entry = fill(100.0, 0, f"e{n}")
        kind = rng.choice(["target", "stop", "horizon"])
        facts = Facts(entry, PositionFacts(),
                      fill(101.0, 20, f"t{n}") if kind == "target" else CANCELED,
                      fill(99.5, 20, f"s{n}") if kind == "stop" else CANCELED,
                      fill(100.2, 30, f"x{n}") if kind == "horizon" else None)
        outcome = outcome_of(record, facts, OPENED + timedelta(hours=1))
        assert not isinstance(outcome, str)
        rows.append(outcome_row(json.dumps(outcome.to_message())))
        expected[horizon][["target", "stop", "horizon"].index(kind)] += 1
    assert insert_outcomes(engine, rows) == 50
    assert insert_outcomes(engine, rows) == 0  # one row per execution: a retried write is a no-op
    env: dict[str, str | None] = {name.upper(): None for name in Settings.model_fields}
    env.update({"ALPACA_PAPER": "true", "ALPACA_API_KEY": "test-key-id", "ALPACA_SECRET_KEY": "test-secret-value",
                "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}", "ZERO_ENV_FILE": "/nonexistent/devstack.env"})
    result = CliRunner().invoke(main, ["outcomes", "--since", "2026-12-07T00:00:00", "--json"], env=env)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    by = {line["horizon"]: line for line in lines}
    for horizon, (passes, fails, expired) in expected.items():
        assert (by[horizon]["pass"], by[horizon]["fail"], by[horizon]["expired"]) == (passes, fails, expired)
        assert by[horizon]["count"] == 25
    assert sum(float(line["total p&l"]) for line in lines) == pytest.approx(
        sum(r["realized_pnl"] for r in rows), abs=0.02)

"""Row 9, one position per ticker, judged over what the broker holds (no broker here: the
adapter's reads are tested in test_broker_http.py, the whole row end to end in
test_decision_table_e2e.py)."""

from __future__ import annotations

import pytest

from zero_tasks.core.checks.exposure import Exposure, check_broker_daily_cap, check_exposure
from zero_tasks.core.decision import Code, Status


def test_a_position_at_the_broker_skips_with_its_quantity() -> None:
    verdict = check_exposure(Exposure("SPY", position_qty="1"))
    assert verdict is not None and verdict.code is Code.OPEN_POSITION and verdict.status is Status.SKIPPED
    assert verdict.detail == "SPY position qty 1 at the broker"


def test_an_open_order_at_the_broker_skips() -> None:
    verdict = check_exposure(Exposure("SPY", open_orders=2))
    assert verdict is not None and verdict.code is Code.OPEN_POSITION
    assert verdict.detail == "SPY has 2 open order(s) at the broker"


def test_a_short_position_is_exposure_too() -> None:
    verdict = check_exposure(Exposure("SPY", position_qty="-3"))
    assert verdict is not None and verdict.code is Code.OPEN_POSITION


def test_no_position_and_no_open_order_is_no_objection() -> None:
    assert check_exposure(Exposure("SPY")) is None
    assert not Exposure("SPY").any


@pytest.mark.parametrize(("exposure", "why"), [
    (Exposure("SPY"), None),
    (Exposure("SPY", entries_today=None, day_full=True), None),
    (Exposure("SPY", entries_today=2), None),
    (Exposure("SPY", entries_today=3),
     "daily cap: 3 entry orders at the broker on trading day 2026-11-24 (MAX_ORDERS_PER_DAY 3)"),
    (Exposure("SPY", entries_today=4),
     "daily cap: 4 entry orders at the broker on trading day 2026-11-24 (MAX_ORDERS_PER_DAY 3)"),
    (Exposure("SPY", entries_today=2, day_full=True),
     "daily cap: the broker's orders of trading day 2026-11-24 fill a whole page; the gateway's entries cannot "
     "all be counted, failing closed"),
    (Exposure("SPY", entries_today=3, day_full=True),
     "daily cap: 3 entry orders at the broker on trading day 2026-11-24 (MAX_ORDERS_PER_DAY 3)"),
])
def test_the_daily_cap_counted_by_the_broker_blocks_at_the_cap_and_fails_closed_on_a_full_page(
        exposure: Exposure, why: str | None) -> None:
    verdict = check_broker_daily_cap(exposure, 3, "2026-11-24")
    assert (verdict.reason if verdict else None) == why
    if verdict is not None:
        assert verdict.code is Code.DAILY_CAP
        assert verdict.status is Status.BLOCKED

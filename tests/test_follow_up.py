"""When the order status follow-up looks again (zero_tasks/follow_up.py)."""

from __future__ import annotations

import pytest

from zero_tasks.follow_up import FOLLOW_MAX_DELAY_S, RATE_WAIT_SPREAD_S, follow_up_delay


@pytest.mark.parametrize(("tries", "expected"), [(0, 2), (1, 4), (2, 8), (5, 64), (8, 512), (9, 600), (39, 600)])
def test_follow_up_doubles_from_two_seconds_up_to_ten_minutes(tries: int, expected: float) -> None:
    assert follow_up_delay(tries) == expected


def test_follow_up_never_looks_before_the_broker_budget_has_a_slot_again() -> None:
    assert follow_up_delay(0, rate_wait_s=59.3, rand=lambda: 0.0) == 59.3


def test_follow_ups_waiting_for_the_budget_are_spread_past_the_slot() -> None:
    assert follow_up_delay(0, rate_wait_s=59.3, rand=lambda: 1.0) == 59.3 + RATE_WAIT_SPREAD_S


def test_a_longer_backoff_wins_over_a_short_budget_wait() -> None:
    assert follow_up_delay(9, rate_wait_s=1.0, rand=lambda: 0.5) == FOLLOW_MAX_DELAY_S

"""Every wait the gateway schedules (zero_tasks/core/retry.py): broker retries, the budget, follow-ups."""

from __future__ import annotations

import pytest

from zero_tasks.core.retry import (
    FOLLOW_MAX_DELAY_S,
    RATE_WAIT_SPREAD_S,
    broker_retries_left,
    broker_retry_countdown,
    follow_up_delay,
    may_wait_for_budget,
)


@pytest.mark.parametrize(("tries", "expected"), [(0, 2), (1, 4), (2, 8), (5, 64), (8, 512), (9, 600), (39, 600)])
def test_follow_up_doubles_from_two_seconds_up_to_ten_minutes(tries: int, expected: float) -> None:
    assert follow_up_delay(tries) == expected


def test_follow_up_never_looks_before_the_broker_budget_has_a_slot_again() -> None:
    assert follow_up_delay(0, rate_wait_s=59.3, rand=lambda: 0.0) == 59.3


def test_follow_ups_waiting_for_the_budget_are_spread_past_the_slot() -> None:
    assert follow_up_delay(0, rate_wait_s=59.3, rand=lambda: 1.0) == 59.3 + RATE_WAIT_SPREAD_S


def test_a_longer_backoff_wins_over_a_short_budget_wait() -> None:
    assert follow_up_delay(9, rate_wait_s=1.0, rand=lambda: 0.5) == FOLLOW_MAX_DELAY_S


@pytest.mark.parametrize(("attempt", "ceiling"), [(0, 1.0), (1, 2.0), (3, 8.0), (10, 20.0)])
def test_broker_retry_backs_off_exponentially_with_full_jitter_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert broker_retry_countdown(attempt, 20.0, rand=lambda: 1.0) == ceiling
    assert broker_retry_countdown(attempt, 20.0, rand=lambda: 0.0) == 0.0


def test_broker_retry_never_comes_sooner_than_retry_after_within_the_cap() -> None:
    assert broker_retry_countdown(0, 20.0, retry_after=7.0, rand=lambda: 0.1) == 7.0
    assert broker_retry_countdown(0, 20.0, retry_after=90.0, rand=lambda: 0.1) == 20.0


def test_broker_retries_stop_after_the_configured_number() -> None:
    assert [broker_retries_left(a, 2) for a in range(4)] == [True, True, False, False]


def test_an_order_waits_for_the_budget_only_as_long_as_allowed() -> None:
    assert may_wait_for_budget(20.0, 10.0, 30.0) and not may_wait_for_budget(20.0, 10.5, 30.0)

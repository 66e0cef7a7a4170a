"""How long a delayed task may wait in a worker, and when a delivery is a copy (zero_tasks/core/delayed.py)."""

from __future__ import annotations

import pytest

from zero_tasks.core.delayed import (
    DONE,
    RUNNING,
    Hop,
    StepVerdict,
    hop_max_s,
    hop_task_id,
    next_hop,
    period_index,
    running_ttl_s,
    step_verdict,
)
from zero_tasks.settings import load_settings


@pytest.mark.parametrize(("visibility", "limit", "expected"), [(90, 60, 15.0), (5, 2, 1.5), (3600, 60, 1770.0)])
def test_a_hop_is_half_of_what_the_visibility_timeout_leaves_after_the_time_limit(
        visibility: int, limit: int, expected: float) -> None:
    assert hop_max_s(visibility, limit) == expected


def test_a_message_is_held_well_under_the_visibility_timeout_for_every_valid_setting() -> None:
    """Held at most a hop plus its run (the time limit), for the tightest settings allowed."""
    tight = load_settings(alpaca_paper="true", alpaca_api_key="k", alpaca_secret_key="s",
                          visibility_timeout_s=5, task_time_limit_s=2, broker_retry_backoff_max_s=1)
    held = hop_max_s(tight.visibility_timeout_s, tight.task_time_limit_s) + tight.task_time_limit_s
    assert held < tight.visibility_timeout_s


@pytest.mark.parametrize(("now", "due", "expected"), [
    (100.0, 101.0, Hop(countdown=1.0, final=True)),
    (100.0, 115.0, Hop(countdown=15.0, final=True)),
    (100.0, 115.1, Hop(countdown=15.0, final=False)),
    (100.0, 700.0, Hop(countdown=15.0, final=False)),
    (100.0, 90.0, Hop(countdown=0.0, final=True)),  # late (a busy pool): sent at once
])
def test_a_long_wait_is_hops_of_at_most_the_hop_length_then_the_task(now: float, due: float, expected: Hop) -> None:
    assert next_hop(now, due, 15.0) == expected


def test_a_chain_of_hops_reaches_the_due_time_exactly() -> None:
    now, due, hops = 0.0, 600.0, 0
    while not (hop := next_hop(now, due, 15.0)).final:
        now += hop.countdown
        hops += 1
    assert now + hop.countdown == due and hops == 39


def test_two_copies_of_a_hop_make_the_same_next_hop() -> None:
    assert hop_task_id("follow:k:3", 2) == hop_task_id("follow:k:3", 2) == "follow:k:3:hop:2"


@pytest.mark.parametrize(("claimed", "holder", "verdict"), [
    (True, None, StepVerdict.RUN),
    (False, RUNNING, StepVerdict.RUNNING_ELSEWHERE),
    (False, DONE, StepVerdict.ALREADY_DONE),
    (False, None, StepVerdict.RUNNING_ELSEWHERE),  # expired between SET NX and GET: not run now either
])
def test_only_the_delivery_that_claimed_a_step_runs_it(claimed: bool, holder: str | None,
                                                       verdict: StepVerdict) -> None:
    assert step_verdict(claimed, holder) is verdict


def test_a_running_claim_lasts_the_task_time_limit() -> None:
    assert running_ttl_s(60) == 60 and running_ttl_s(2) == 2


@pytest.mark.parametrize(("now", "index"), [(0.0, 0), (299.9, 0), (300.0, 1), (1_764_700_000.5, 5_882_333)])
def test_a_periodic_run_belongs_to_the_period_of_its_start(now: float, index: int) -> None:
    assert period_index(now, 300) == index

"""When a worker's watchdog gives up on it (zero_tasks/core/liveness.py): one test per rule."""

from __future__ import annotations

from zero_tasks.core.liveness import Limits, Liveness, Sight

LIMITS = Limits(deaf_after_s=90, stop_grace_s=150)


def looks(*sights: Sight) -> Liveness:
    state = Liveness()
    for sight in sights:
        state = state.see(sight)
    return state


def test_a_worker_whose_consumer_answers_is_never_judged() -> None:
    state = looks(Sight(0, True, True), Sight(500, True, True))
    assert state == Liveness() and state.verdict(10_000, LIMITS) is None


def test_a_consumer_silent_while_the_broker_answers_is_judged_deaf_at_the_limit() -> None:
    state = looks(Sight(100, True, False), Sight(150, True, False))
    assert state.deaf_since_s == 100
    assert state.verdict(189, LIMITS) is None
    assert state.verdict(190, LIMITS) == "its consumer has not taken its queues for 90 s while the broker answered"


def test_one_answer_clears_the_deafness() -> None:
    state = looks(Sight(100, True, False), Sight(180, True, True), Sight(185, True, False))
    assert state.deaf_since_s == 185 and state.verdict(274, LIMITS) is None


def test_an_unreachable_broker_never_makes_the_consumer_deaf_and_clears_what_was_counted() -> None:
    state = looks(Sight(100, True, False), Sight(150, True, None), Sight(1000, True, None))
    assert state == Liveness() and state.verdict(5000, LIMITS) is None


def test_a_shutdown_that_outlasts_its_grace_is_stuck() -> None:
    state = looks(Sight(100, False), Sight(200, False))
    assert state.stopping_since_s == 100
    assert state.verdict(249, LIMITS) is None
    assert state.verdict(250, LIMITS) == "its shutdown has not finished in 150 s"


def test_a_worker_that_stops_is_no_longer_judged_deaf() -> None:
    state = looks(Sight(0, True, False), Sight(80, False))
    assert state.deaf_since_s is None and state.verdict(100, LIMITS) is None

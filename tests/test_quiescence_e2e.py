"""The suite's own proof helpers: quiescence is positively known, and "exactly one" sees a second.

The first half checks `Quiescence` itself with probes written here; the second runs real
gateways: one built to announce every decision twice (tests/support/duplicating.py), which
`decide`, `collect` and `wait_rows` must refuse, and one whose worker is stopped, where the
probes must name the task waiting on the queue and the message on the hand-over ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alpaca_paper_sim import SimServer
from tests.support.gateway import Gateway, collect, isolated_gateway, opportunity, ranking
from tests.support.procs import wait_for
from tests.support.quiescence import NotQuiescent, Quiescence


# -- the helper on its own ---------------------------------------------------------------
def test_wait_returns_only_after_two_checks_in_a_row_found_nothing_pending() -> None:
    answers = iter([["a task"], [], ["a late task"], [], []])
    seen: list[list[str]] = []

    def probe() -> list[str]:
        seen.append(next(answers))
        return seen[-1]

    Quiescence({"queue": probe}).wait(timeout=30, interval=0)
    assert seen == [["a task"], [], ["a late task"], [], []]


def test_wait_goes_on_while_the_fingerprint_changes_between_two_empty_checks() -> None:
    outputs = iter([1, 1, 2, 2, 2, 2])
    q = Quiescence({"queue": list}, fingerprint=lambda: next(outputs))
    q.wait(timeout=30, interval=0)
    assert next(outputs, "used up") == "used up"  # the two quiet checks came after the change


def test_wait_names_what_is_still_pending_when_it_gives_up() -> None:
    q = Quiescence({"queue": list, "workers": lambda: ["w0 active: zero.decide[abc]"]})
    with pytest.raises(NotQuiescent, match=r"'workers': \['w0 active: zero.decide\[abc\]'\]"):
        q.wait(timeout=0.3, interval=0.05)


def test_a_probe_that_cannot_look_counts_as_pending() -> None:
    def broken() -> list[str]:
        raise ConnectionError("redis away")

    assert Quiescence({"queue": broken}).pending() == {"queue": ["probe failed: ConnectionError('redis away')"]}


def test_a_fingerprint_that_cannot_be_read_never_counts_as_unchanged() -> None:
    def unreadable() -> object:
        raise ConnectionError("database stopped")

    with pytest.raises(NotQuiescent):
        Quiescence({"queue": list}, fingerprint=unreadable).wait(timeout=0.3, interval=0.05)


def test_a_second_probe_of_the_same_name_is_refused() -> None:
    q = Quiescence().add("due set", list)
    with pytest.raises(ValueError, match="due set"):
        q.add("due set", list)


# -- the helpers against a gateway that announces everything twice -------------------------
@pytest.fixture(scope="module")
def twice(log_dir: Path, sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with isolated_gateway(log_dir, sim.url, tmp_path_factory.mktemp("twice"), ZERO_TEST_DUPLICATE="1") as gw:
        yield gw


@pytest.fixture(scope="module")
def lone(log_dir: Path, sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with isolated_gateway(log_dir, sim.url, tmp_path_factory.mktemp("lone")) as gw:
        yield gw


@pytest.mark.e2e
def test_decide_refuses_a_second_event_for_one_message(twice: Gateway) -> None:
    twice.revive()
    twice.green()
    with pytest.raises(AssertionError, match="expected exactly 1 events, got 2"):
        twice.decide(ranking(opportunity("DUPA")))


@pytest.mark.e2e
def test_decide_refuses_a_second_event_for_a_refused_message(twice: Gateway) -> None:
    twice.revive()  # the kill switch off: row 2, BLOCKED
    with pytest.raises(AssertionError, match="expected exactly 1 events, got 2"):
        twice.decide(ranking(opportunity("DUPB")))


@pytest.mark.e2e
def test_wait_rows_refuses_a_second_row_for_one_message(twice: Gateway) -> None:
    twice.revive()
    twice.green()
    twice.publish(ranking(opportunity("DUPC")))
    with pytest.raises(AssertionError, match="expected exactly 1 audit rows with"):
        twice.wait_rows(1, ticker="DUPC")


# -- the probes see where work waits ---------------------------------------------------------
@pytest.mark.e2e
def test_a_task_no_worker_takes_is_pending_until_a_worker_decides_it(lone: Gateway) -> None:
    lone.revive()
    lone.green()
    (worker,) = lone.workers
    worker.stop()
    pubsub = lone.subscribe()
    try:
        lone.publish(ranking(opportunity("WAIT")))

        def seen_waiting() -> dict[str, list[str]] | None:
            pending = lone.quiescence.pending()
            return pending if pending.keys() >= {"queues", "hand-over ledger"} else None

        waiting = wait_for(seen_waiting, 15, "the probes to see the task no worker took")
        assert "zero_execution" in " ".join(waiting["queues"]), waiting
        with pytest.raises(NotQuiescent, match="queues"):
            lone.settle(timeout=2)
        lone.restart(worker)
        (event,) = collect(pubsub, 1, 60, lone)
    finally:
        pubsub.close()
    assert event["status"] == "SUBMITTED"
    assert lone.quiescence.pending() == {}
    assert len(lone.wait_rows(1)) == 1

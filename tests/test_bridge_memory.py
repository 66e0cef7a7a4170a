"""The bridge gives a burst's memory back once idle (bridge/memory.py)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from bridge.memory import IdleTrimmer, glibc_trim


def ticks(trimmer: IdleTrimmer, counts: list[int]) -> list[bool]:
    async def run() -> list[bool]:
        return [await trimmer.tick(c) for c in counts]
    return asyncio.run(run())


def counting_trimmer(min_messages: int = 1000) -> tuple[IdleTrimmer, list[int]]:
    calls: list[int] = []
    return IdleTrimmer(min_messages, trim=lambda: calls.append(1) or 1), calls


def test_trims_once_after_a_burst_when_a_tick_brings_nothing_new() -> None:
    trimmer, calls = counting_trimmer()
    assert ticks(trimmer, [600, 1500, 1500, 1500]) == [False, False, True, False]
    assert len(calls) == 1 and trimmer.trims == 1


def test_never_trims_while_messages_keep_arriving() -> None:
    trimmer, calls = counting_trimmer()
    assert not any(ticks(trimmer, [1000 * i for i in range(1, 8)]))
    assert calls == []


def test_a_trickle_below_the_burst_size_is_not_worth_a_trim() -> None:
    trimmer, calls = counting_trimmer(min_messages=1000)
    assert not any(ticks(trimmer, [10, 10, 20, 20, 30, 30]))
    assert calls == []


def test_the_next_burst_trims_again() -> None:
    trimmer, _ = counting_trimmer()
    assert ticks(trimmer, [2000, 2000, 4000, 4000]) == [False, True, False, True]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_glibc_trim_is_found_and_runs_here() -> None:
    trim = glibc_trim()
    assert trim is not None and trim() in (0, 1)

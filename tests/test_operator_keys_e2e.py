"""Operator keys are typed by hand: a garbled one fails closed for the message it concerns
and never takes the bridge's batch (or the other messages in it) with it."""

from __future__ import annotations

import json

import pytest

from tests.support.gateway import Gateway, opportunity, ranking

pytestmark = [pytest.mark.e2e, pytest.mark.guarantee]


@pytest.mark.parametrize("until", ["2026-11-24T15:00:00", "next week", 17], ids=["naive", "words", "number"])
def test_a_block_list_entry_with_an_unusable_time_blocks_only_its_ticker(gw: Gateway, until: object) -> None:
    gw.green()
    gw.r.set("key:execution_blocklist:NAIV", json.dumps({"until": until, "reason": "earnings"}))
    # below the threshold: the block list (row 4b) still comes before it (row 5)
    events = gw.decide(ranking(opportunity("NAIV", probability=0.5)), ranking(opportunity("OKAY", probability=0.5)))
    by_ticker = {e["ticker"]: e for e in events}
    assert by_ticker["NAIV"]["status"] == "BLOCKED"
    naiv_why = by_ticker["NAIV"]["why"][0]
    assert naiv_why.startswith("blocklist: NAIV blocked (") and "failing closed" in naiv_why
    assert by_ticker["OKAY"]["why"][0].startswith("threshold")
    (blocked,) = gw.decide(ranking(opportunity("NAIV")))  # eligible: through the worker, same verdict
    assert blocked["status"] == "BLOCKED" and blocked["why"][0].startswith("blocklist")
    assert gw.order_posts() == 0


def test_a_breaker_with_a_naive_cool_off_stays_open(gw: Gateway) -> None:
    gw.green()
    gw.r.set("key:execution_breaker", json.dumps({"since": "2026-11-24T14:00:00", "until": "2026-11-24T14:02:00",
                                                 "reason": "3 failures"}))
    events = gw.decide(ranking(opportunity("BRKR", probability=0.5)), ranking(opportunity("BRKS")))
    assert sorted(e["status"] for e in events) == ["BLOCKED", "BLOCKED"]
    assert all(e["why"][0].startswith("circuit open") for e in events)
    assert gw.order_posts() == 0

"""A task carries no authority of its own: the seal and the reservations, as pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from zero_tasks.adapters.alpaca_adapter import url_symbol
from zero_tasks.core.task_auth import (
    SEAL_MAX_AGE_S,
    Holdings,
    forged_holdings,
    forgery_key,
    open_seal,
    seal,
)

KEY = "k" * 32
BODY = {"message_id": "m:1", "payload": '{"x": 1}', "received_at": "2026-11-24T14:30:00+00:00"}
NOW = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def test_a_sealed_task_opens_to_its_body() -> None:
    assert open_seal(KEY, "zero.decide", seal(KEY, "zero.decide", BODY, NOW), NOW) == (BODY, None)


def test_a_seal_is_good_until_its_maximum_age() -> None:
    sealed = seal(KEY, "zero.decide", BODY, NOW)
    assert open_seal(KEY, "zero.decide", sealed, NOW + timedelta(seconds=SEAL_MAX_AGE_S)) == (BODY, None)


@pytest.mark.parametrize("opened_at, why", [
    (NOW + timedelta(seconds=SEAL_MAX_AGE_S + 1), "seal expired"),
    (NOW + timedelta(days=2), "seal expired"),
    (NOW - timedelta(hours=1), "in the future"),
], ids=["just_expired", "replayed_after_the_claims_expired", "from_the_future"])
def test_a_seal_out_of_its_time_is_refused(opened_at: datetime, why: str) -> None:
    body, problem = open_seal(KEY, "zero.decide", seal(KEY, "zero.decide", BODY, NOW), opened_at)
    assert body is None and problem and why in problem


def test_a_seal_outlives_no_claim_it_protects() -> None:
    from zero_tasks.core.keys import CLAIM_TTL_SECONDS

    assert SEAL_MAX_AGE_S <= CLAIM_TTL_SECONDS - 3600


def test_the_seal_time_cannot_be_changed_without_breaking_the_seal() -> None:
    sealed = seal(KEY, "zero.decide", BODY, NOW - timedelta(days=3))
    younger = {**sealed, "sealed_at": NOW.isoformat()}
    body, problem = open_seal(KEY, "zero.decide", younger, NOW)
    assert body is None and problem and "seal does not match" in problem


def test_a_seal_without_a_time_is_refused() -> None:
    from zero_tasks.core.task_auth import _digest

    old_style = {**BODY, "seal": _digest(KEY, "zero.decide", BODY)}  # as sealed before seals expired
    body, problem = open_seal(KEY, "zero.decide", old_style, NOW)
    assert body is None and problem and "no time" in problem


@pytest.mark.parametrize("argument, why", [
    (BODY, "no seal"),
    ({**BODY, "seal": 5}, "no seal"),
    ("a string", "not a sealed object"),
    ([BODY], "not a sealed object"),
    ({**seal(KEY, "zero.decide", BODY, NOW), "payload": '{"x": 2}'}, "seal does not match"),
    ({**seal(KEY, "zero.decide", BODY, NOW), "extra": 1}, "seal does not match"),
    (seal("other-key-" + "x" * 30, "zero.decide", BODY, NOW), "seal does not match"),
    (seal(KEY, "zero.place_order", BODY, NOW), "seal does not match"),
], ids=["unsealed", "seal_not_text", "string", "list", "payload_changed", "field_added", "other_key",
        "other_task"])
def test_a_task_without_a_valid_seal_is_refused(argument: object, why: str) -> None:
    body, problem = open_seal(KEY, "zero.decide", argument, NOW)
    assert body is None and problem and why in problem


def test_a_forgery_has_one_key_of_its_own_never_a_message_id() -> None:
    first, again = forgery_key("zero.decide", BODY), forgery_key("zero.decide", dict(BODY))
    assert first == again and first.startswith("forged:") and first != BODY["message_id"]
    assert forgery_key("zero.place_order", BODY) != first


MINE = Holdings(claim_owner="m:1", cooldown_owner="SPY:H30:2026-11-24T14:30:00", has_daily_slot=True)


def test_an_order_holding_its_own_reservations_may_go_on() -> None:
    assert forged_holdings(MINE, "m:1", "SPY:H30:2026-11-24T14:30:00", "SPY") is None


@pytest.mark.parametrize("holdings, why", [
    (Holdings(None, MINE.cooldown_owner, True), "claim of"),
    (Holdings("m:2", MINE.cooldown_owner, True), "claim of"),
    (Holdings("m:1", None, True), "cooldown reservation of SPY"),
    (Holdings("m:1", "IWM:H30:2026-11-24T14:30:00", True), "cooldown reservation of SPY"),
    (Holdings("m:1", MINE.cooldown_owner, False), "no order slot"),
], ids=["no_claim", "claim_of_another_message", "no_cooldown", "cooldown_of_another_id", "no_daily_slot"])
def test_an_order_using_reservations_it_does_not_hold_is_forged(holdings: Holdings, why: str) -> None:
    problem = forged_holdings(holdings, "m:1", "SPY:H30:2026-11-24T14:30:00", "SPY")
    assert problem and why in problem


@pytest.mark.parametrize("ticker", ["BRK/../ORDERS", "F250117C00012000", "spy", "SPY?x=1", ""])
def test_no_symbol_but_a_us_equity_reaches_a_broker_url_path(ticker: str) -> None:
    with pytest.raises(ValueError, match="not a US equity symbol"):
        url_symbol(ticker)


def test_a_class_suffix_symbol_reaches_the_url_path_as_it_is() -> None:
    assert url_symbol("BRK.B") == "BRK.B"


def test_no_seal_opens_and_none_is_made_without_a_signing_key() -> None:
    """Flower runs without TASK_SIGNING_KEY; a process with an empty or short key must not
    open what anyone could seal with that key."""
    forged = {**BODY, "sealed_at": NOW.isoformat()}
    from zero_tasks.core.task_auth import _digest

    forged["seal"] = _digest("", "zero.decide", {k: v for k, v in forged.items() if k != "seal"})
    body, problem = open_seal("", "zero.decide", forged, NOW)
    assert body is None and problem and "no TASK_SIGNING_KEY" in problem
    with pytest.raises(ValueError, match="no TASK_SIGNING_KEY"):
        seal("short", "zero.decide", BODY, NOW)


@pytest.mark.parametrize(("argument", "now", "why"), [
    ({"x": 1, "sealed_at": None}, NOW, "seal has no time (made before seals expired)"),
    ({"x": 1, "sealed_at": "not a time " + "x" * 40}, NOW,
     f"seal time {('not a time ' + 'x' * 40)[:40]!r} is not an ISO time with an offset"),
    ({"x": 1, "sealed_at": (NOW + timedelta(seconds=301)).isoformat()}, NOW, "seal made 301 s in the future"),
])
def test_a_seal_without_a_good_time_is_refused_saying_why(argument: dict[str, object], now: datetime,
                                                          why: str) -> None:
    from zero_tasks.core.task_auth import SEAL_FIELD, _digest

    body = {k: v for k, v in argument.items() if v is not None}
    assert open_seal(KEY, "t", {**body, SEAL_FIELD: _digest(KEY, "t", body)}, now) == (None, why)


def test_a_seal_made_as_far_ahead_as_the_clocks_may_differ_opens() -> None:
    sealed = seal(KEY, "t", {"x": 1}, NOW + timedelta(seconds=300))
    assert open_seal(KEY, "t", sealed, NOW) == ({"x": 1}, None)


def test_sealing_and_opening_without_a_key_or_a_time_say_why() -> None:
    with pytest.raises(ValueError, match=r"^no TASK_SIGNING_KEY here: nothing can be sealed$"):
        seal("", "t", {"x": 1}, NOW)
    with pytest.raises(ValueError, match=r"^a seal needs the time it is made$"):
        seal(KEY, "t", {"x": 1})
    assert open_seal("", "t", {"x": 1}, NOW) == (None, "this process has no TASK_SIGNING_KEY: no seal opens")

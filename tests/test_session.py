"""The trading session from Alpaca's clock and calendar, and the trading day an order counts towards.

Pure: fixed instants, no broker. The broker's answer is read as durations anchored at the
gateway's own clock, so a gateway a few seconds off Alpaca's still judges consistently.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from zero_tasks.adapters.risk import trading_day
from zero_tasks.core.session import MAX_TRUST_S, NEW_YORK, TradingSession, from_broker, parse

WEDNESDAY_3PM = datetime(2026, 11, 25, 15, 0, tzinfo=NEW_YORK)
OPEN = datetime(2026, 11, 25, 9, 30, tzinfo=NEW_YORK)
CLOSE = datetime(2026, 11, 25, 16, 0, tzinfo=NEW_YORK)
THURSDAY_OPEN = datetime(2026, 11, 26, 9, 30, tzinfo=NEW_YORK)


def test_open_market_gives_the_session_open_and_close_on_the_gateway_clock() -> None:
    gateway_now = WEDNESDAY_3PM + timedelta(seconds=7)  # the gateway's clock runs 7 s ahead of Alpaca's
    session = from_broker(gateway_now, WEDNESDAY_3PM, True, THURSDAY_OPEN, CLOSE, [OPEN])
    assert isinstance(session, TradingSession) and session.is_open
    assert session.opened_at == OPEN + timedelta(seconds=7)
    assert session.until == CLOSE + timedelta(seconds=7)
    assert session.day().isoformat() == "2026-11-25"


def test_closed_market_is_good_until_the_next_open() -> None:
    evening = datetime(2026, 11, 25, 18, 0, tzinfo=NEW_YORK)
    session = from_broker(evening, evening, False, THURSDAY_OPEN, datetime(2026, 11, 26, 16, 0, tzinfo=NEW_YORK), [])
    assert isinstance(session, TradingSession) and not session.is_open and session.opened_at is None
    assert session.next_open == THURSDAY_OPEN  # the broker's own time, for the reason an operator reads
    assert session.until == evening + timedelta(seconds=MAX_TRUST_S)  # asked again within the hour anyway


def test_an_answer_is_trusted_at_most_an_hour() -> None:
    morning = datetime(2026, 11, 25, 9, 45, tzinfo=NEW_YORK)
    session = from_broker(morning, morning, True, THURSDAY_OPEN, CLOSE, [OPEN])
    assert isinstance(session, TradingSession) and session.until == morning + timedelta(seconds=MAX_TRUST_S)


@pytest.mark.parametrize("opens, clock_open, next_close, problem", [
    ([], True, CLOSE, "calendar has no session"),
    ([WEDNESDAY_3PM + timedelta(minutes=1)], True, CLOSE, "calendar has no session"),
    ([OPEN], True, WEDNESDAY_3PM - timedelta(minutes=1), "next close"),
    ([OPEN], False, CLOSE, None),
], ids=["no_calendar_entry", "opens_later", "close_already_past", "closed_needs_no_calendar"])
def test_an_answer_that_does_not_add_up_is_refused(opens: list[datetime], clock_open: bool,
                                                    next_close: datetime, problem: str | None) -> None:
    session = from_broker(WEDNESDAY_3PM, WEDNESDAY_3PM, clock_open, THURSDAY_OPEN, next_close, opens)
    if problem is None:
        assert isinstance(session, TradingSession)
    else:
        assert isinstance(session, str) and problem in session


def test_a_clock_without_offsets_is_refused() -> None:
    naive = WEDNESDAY_3PM.replace(tzinfo=None)
    assert "without an offset" in str(from_broker(WEDNESDAY_3PM, naive, True, THURSDAY_OPEN, CLOSE, [OPEN]))


def test_kept_session_reads_back_as_written() -> None:
    session = from_broker(WEDNESDAY_3PM, WEDNESDAY_3PM, True, THURSDAY_OPEN, CLOSE, [OPEN])
    assert isinstance(session, TradingSession)
    assert parse(session.to_json()) == session
    assert session.ttl_ms(WEDNESDAY_3PM) == 3_600_000
    assert session.ttl_ms(CLOSE + timedelta(hours=1)) == 1  # never 0 or negative: Redis refuses those


@pytest.mark.parametrize("moment, day", [
    (datetime(2026, 11, 25, 9, 0, tzinfo=NEW_YORK), "2026-11-25"),  # before Wednesday's open
    (datetime(2026, 11, 25, 15, 59, tzinfo=NEW_YORK), "2026-11-25"),
    (datetime(2026, 11, 25, 16, 0, tzinfo=NEW_YORK), "2026-11-26"),  # after the close: the next session
    (datetime(2026, 11, 27, 18, 0, tzinfo=NEW_YORK), "2026-11-30"),  # Friday evening
    (datetime(2026, 11, 28, 12, 0, tzinfo=NEW_YORK), "2026-11-30"),  # Saturday
    (datetime(2026, 11, 29, 23, 59, tzinfo=NEW_YORK), "2026-11-30"),  # Sunday night
    (datetime(2026, 11, 30, 4, 0, tzinfo=NEW_YORK), "2026-11-30"),  # Monday before the open
    (datetime(2026, 11, 30, 3, 0, tzinfo=UTC), "2026-11-30"),  # Sunday 22:00 in New York
], ids=["before_open", "before_close", "at_close", "friday_evening", "saturday", "sunday", "monday_early",
        "utc_input"])
def test_daily_cap_counts_a_trading_session_not_a_calendar_date(moment: datetime, day: str) -> None:
    assert trading_day(moment) == day


# --- the kept answer is sealed (issue 25, finding 2) -----------------------------------------

def test_a_kept_session_opens_only_with_its_seal_and_within_the_hour() -> None:
    from zero_tasks.core.session import MAX_TRUST_S, TradingSession, opened, sealed

    key, t0 = "s" * 32, datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    kept = sealed(TradingSession(True, t0 - timedelta(hours=1), t0 + timedelta(hours=1), None, t0), key, t0)
    assert opened(kept, key, t0 + timedelta(minutes=59))[0] is not None
    assert "seal expired" in (opened(kept, key, t0 + timedelta(seconds=MAX_TRUST_S + 61))[1] or "")
    assert "seal does not match" in (opened(kept, "o" * 32, t0)[1] or "")
    unsealed = TradingSession(True, t0, datetime(2030, 1, 1, tzinfo=UTC), None, t0).to_json()
    assert opened(unsealed, key, t0) == (None, "kept answer refused: no seal")
    assert opened(kept, "", t0)[0] is None  # no key here: nothing is trusted


def test_a_kept_session_opens_as_the_json_sealed_trusted_for_an_hour_and_the_clocks_slack() -> None:
    from zero_tasks.core.session import TRUST_SLACK_S, opened, sealed

    key, t0 = "s" * 32, datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    session = TradingSession(True, t0 - timedelta(hours=1), t0 + timedelta(hours=1), None, t0)
    kept = sealed(session, key, t0)
    body, why = opened(kept, key, t0 + timedelta(seconds=MAX_TRUST_S + TRUST_SLACK_S - 1))
    assert why is None and body is not None and parse(body) == session
    assert json.loads(body) == json.loads(session.to_json())
    assert opened(None, key, t0) == (None, None)
    assert opened(kept, "", t0) == (None, "its seal cannot be checked without TASK_SIGNING_KEY")
    assert opened("{not json", key, t0) == (None, "kept answer unreadable")

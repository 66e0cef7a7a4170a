"""The position lifecycle's pure core, rule by rule: ATR as ZERO computes it, the
protect's prices on Alpaca's tick, the horizon in trading minutes over the real NYSE
calendar, the outcome and the exit decision table."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pytest

from zero_tasks.core.contract import exit_client_order_id, protect_client_order_id
from zero_tasks.core.decision import Status
from zero_tasks.core.keys import lifecycle_key
from zero_tasks.core.lifecycle.atr import Bar, atr
from zero_tasks.core.lifecycle.gate import exit_gate
from zero_tasks.core.lifecycle.horizon import Session, due_time, trading_minutes_between
from zero_tasks.core.lifecycle.outcome import Outcome, outcome_of
from zero_tasks.core.lifecycle.prices import ProtectPrices, protect_prices, tick
from zero_tasks.core.lifecycle.rules import RULES, Step, decide_exit
from zero_tasks.core.lifecycle.seed import rank_time_of, seed_from, seed_of, with_exits_recorded
from zero_tasks.core.lifecycle.state import Facts, Gate, LifecycleRecord, OrderFacts, Policy, PositionFacts
from zero_tasks.core.reconcile import AuditedOrder, BrokerOrder, compare
from zero_tasks.core.record import DecisionRecord
from zero_tasks.core.session import TradingSession
from zero_tasks.core.snapshot import Limits, Snapshot

NY = ZoneInfo("America/New_York")
BUFFER = timedelta(minutes=5)


def ny(y: int, m: int, d: int, hh: int, mm: int) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=NY).astimezone(UTC)


# --- ATR(14) of 5-minute bars (services/truth-test/db.py compute_atr at 0a64d61) ---

AS_OF = ny(2026, 12, 7, 12, 0)


def bars(n: int, step_high: float = 1.0, end: datetime = AS_OF) -> list[Bar]:
    """n bars ending at `end`, each high - low = step_high, closes flat at 100."""
    return [Bar(end - timedelta(minutes=5 * (n - 1 - k)), 100 + step_high / 2, 100 - step_high / 2, 100.0)
            for k in range(n)]


def test_atr_is_the_simple_mean_of_the_last_14_true_ranges() -> None:
    series = bars(15)
    series[-1] = Bar(series[-1].t, 108.0, 100.0, 104.0)  # one wide bar: TR 8 (not Wilder's 1/14 weight)
    assert atr(series, AS_OF) == pytest.approx((13 * 1.0 + 8.0) / 14)


def test_atr_true_range_uses_the_previous_close() -> None:
    series = bars(15)
    series[-1] = Bar(series[-1].t, 110.5, 110.0, 110.2)  # gap up: |high - prev close| = 10.5
    assert atr(series, AS_OF) == pytest.approx((13 * 1.0 + 10.5) / 14)


def test_atr_counts_only_the_15_most_recent_bars_at_or_before_the_issue_time() -> None:
    early = bars(20, step_high=9.0, end=AS_OF - timedelta(minutes=75))
    recent = bars(15, step_high=2.0)
    after = [Bar(AS_OF + timedelta(minutes=5), 500, 1, 250)]
    assert atr(early + recent + after, AS_OF) == pytest.approx(2.0)


@pytest.mark.parametrize("n", [0, 1, 14])
def test_atr_with_fewer_than_15_bars_is_none_with_a_reason(n: int) -> None:
    assert "too few 5-minute bars" in str(atr(bars(n), AS_OF))


def test_atr_ignores_bars_older_than_the_lookback_of_zero() -> None:
    stale = bars(15, end=AS_OF - timedelta(hours=3, minutes=15))  # 70 min + 2 h before: out of range
    assert "too few" in str(atr(stale, AS_OF))


# --- the protect's prices on Alpaca's tick ---

@pytest.mark.parametrize("fill, atr_value, target_atr, stop_atr, limit, stop", [
    (512.31, 0.84, 1.5, 0.75, "513.57", "511.68"),  # 513.57 exactly; 511.68 exactly
    (100.00, 0.333, 1.5, 0.75, "100.50", "99.75"),  # 100.4995 up to 100.50; 99.75025 down to 99.75
    (10.00, 0.0101, 1.0, 1.0, "10.02", "9.98"),  # 10.0101 up; 9.9899 down: neither easier than the rule
    (0.5000, 0.01234, 1.5, 0.75, "0.5186", "0.4907"),  # below $1: hundredths of a cent
])
def test_protect_prices_round_the_target_up_and_the_stop_down_on_the_tick(
        fill: float, atr_value: float, target_atr: float, stop_atr: float, limit: str, stop: str) -> None:
    assert protect_prices(fill, atr_value, target_atr, stop_atr) == ProtectPrices(Decimal(limit), Decimal(stop))


@pytest.mark.parametrize("fill, atr_value, target_atr, stop_atr, why", [
    (1.0, 2.0, 1.5, 0.75, "at or below zero"),
    (100.0, 0.0, 1.5, 0.75, "must both be positive"),
    (100.0, 1.0, 0.0, 0.75, "must both be positive"),
    (100.0, 1.0, 1.5, -1.0, "must both be positive"),
])
def test_protect_prices_refuse_what_is_no_oco(fill: float, atr_value: float, target_atr: float, stop_atr: float,
                                              why: str) -> None:
    assert why in str(protect_prices(fill, atr_value, target_atr, stop_atr))


# --- the horizon in trading minutes over the real NYSE calendar ---

XNYS = xcals.get_calendar("XNYS")


def sessions(start: date, days: int = 14) -> list[Session]:
    labels = XNYS.sessions_in_range(start.isoformat(), (start + timedelta(days=days)).isoformat())
    return [Session(XNYS.session_open(s).to_pydatetime(), XNYS.session_close(s).to_pydatetime()) for s in labels]


@pytest.mark.parametrize("rank, horizon, due", [
    (ny(2026, 12, 7, 10, 0), "H30", ny(2026, 12, 7, 10, 30)),  # inside a session
    (ny(2026, 12, 7, 15, 40), "H30", ny(2026, 12, 8, 9, 40)),  # 20 min before the close: 20 today, 10 tomorrow
    (ny(2026, 12, 7, 8, 0), "H2H", ny(2026, 12, 7, 11, 30)),  # before the open: counted from the open
    (ny(2026, 12, 7, 9, 30), "HDAY", ny(2026, 12, 7, 15, 55)),  # lands on the close: moved before it
    (ny(2026, 12, 7, 15, 0), "H2H", ny(2026, 12, 8, 10, 30)),  # 60 + 60 across the night
    (ny(2026, 12, 4, 15, 0), "H2H", ny(2026, 12, 7, 10, 30)),  # Friday -> Monday, the weekend counts nothing
    # 360 + 390 + 390 + 210 (Christmas Eve closes 13:00), Christmas Day and the weekend skipped, + 390 on
    # the 28th: 1740; the last 210 on the 29th
    (ny(2026, 12, 21, 10, 0), "HWEEK", ny(2026, 12, 29, 13, 0)),
    (ny(2026, 11, 27, 12, 0), "H2H", ny(2026, 11, 30, 10, 30)),  # Black Friday closes 13:00: 60 there, 60 Monday
    # 30 on Wednesday, Thanksgiving skipped, 210 on Friday (closes 13:00), the last 150 on Monday
    (ny(2026, 11, 25, 15, 30), "HDAY", ny(2026, 11, 30, 12, 0)),
    (ny(2026, 12, 7, 15, 52), "H30", ny(2026, 12, 8, 9, 52)),  # ranked inside the buffer: 8 today, 22 tomorrow
    # 60 + 390 + 390, the weekend and Martin Luther King Day, 390 + 390, the last 330 on Thursday
    # (test_horizon_calendar_e2e.py runs this one through the processes)
    (ny(2027, 1, 13, 15, 0), "HWEEK", ny(2027, 1, 21, 15, 0)),
])
def test_horizon_due_time_counts_trading_minutes_on_the_nyse_calendar(rank: datetime, horizon: str,
                                                                      due: datetime) -> None:
    assert due_time(rank, horizon, sessions(rank.date() - timedelta(days=1)), BUFFER) == due


@pytest.mark.parametrize("rank, horizon, due", [
    (ny(2026, 12, 7, 15, 30), "H30", ny(2026, 12, 7, 15, 55)),  # due 16:00: inside the buffer, moved
    (ny(2026, 12, 7, 15, 24), "H30", ny(2026, 12, 7, 15, 54)),  # due 15:54: before the buffer, kept
    (ny(2026, 11, 27, 12, 30), "H30", ny(2026, 11, 27, 12, 55)),  # early close 13:00: moved before it
])
def test_a_due_time_in_the_last_minutes_of_a_session_goes_before_its_close(rank: datetime, horizon: str,
                                                                          due: datetime) -> None:
    assert due_time(rank, horizon, sessions(rank.date() - timedelta(days=1)), BUFFER) == due


def test_a_calendar_too_short_for_the_horizon_is_a_reason() -> None:
    rank = ny(2026, 12, 7, 10, 0)
    assert "too few sessions" in str(due_time(rank, "HWEEK", sessions(rank.date(), days=2), BUFFER))


# --- outcome ---

OPENED = ny(2026, 12, 7, 10, 0)


def rec(**changes: object) -> LifecycleRecord:
    base = LifecycleRecord("SPY:H30:2026-12-07T15:00:00", "SPY", "H30", 0.95, 95, 1.5, 0.75, OPENED, Policy.ZERO,
                           "evt", due_at=OPENED + timedelta(minutes=30), atr=0.84)
    return base.but(**changes)


def filled(price: float, at_min: int = 0, qty: int = 1, oid: str = "o") -> OrderFacts:
    return OrderFacts(oid, "filled", qty, price, OPENED + timedelta(minutes=at_min))


def working(oid: str = "w") -> OrderFacts:
    return OrderFacts(oid, "new", 0)


CANCELED = OrderFacts("c", "canceled", 0)
ENTRY = filled(512.31, oid="entry")


@pytest.mark.parametrize("facts, outcome, via, exit_price, pnl, ret", [
    (Facts(ENTRY, PositionFacts(), target_leg=filled(513.57, 21), stop_leg=CANCELED), "PASS", "target",
     513.57, 1.26, 0.246),
    (Facts(ENTRY, PositionFacts(), target_leg=CANCELED, stop_leg=filled(511.68, 21)), "FAIL", "stop",
     511.68, -0.63, -0.123),
    (Facts(ENTRY, PositionFacts(), target_leg=CANCELED, stop_leg=CANCELED, horizon_sell=filled(512.50, 21)),
     "EXPIRED", "horizon", 512.50, 0.19, 0.037),
    (Facts(ENTRY, PositionFacts(), target_leg=CANCELED, stop_leg=CANCELED), None, "manual", None, None, None),
])
def test_outcome_labels_and_realized_pnl_from_the_gateways_own_fills(
        facts: Facts, outcome: str | None, via: str, exit_price: float | None, pnl: float | None,
        ret: float | None) -> None:
    result = outcome_of(rec(), facts, OPENED + timedelta(minutes=21))
    assert not isinstance(result, str)
    msg = result.to_message()
    assert (msg["outcome"], msg["exit_via"], msg["exit_price"], msg["realized_pnl"], msg["return_pct"]) == (
        outcome, via, exit_price, pnl, ret)
    assert msg["held_s"] == 1260 and msg["qty"] == 1 and msg["entry_price"] == 512.31


def test_outcome_message_has_the_contracts_fields_in_order() -> None:
    result = outcome_of(rec(), Facts(ENTRY, PositionFacts(), target_leg=filled(513.57, 21)), OPENED)
    assert not isinstance(result, str)
    assert list(result.to_message()) == [
        "schema_version", "execution_id", "ticker", "horizon", "probability", "target_atr", "stop_atr", "atr",
        "qty", "entry_price", "exit_price", "realized_pnl", "return_pct", "outcome", "exit_via", "opened_at",
        "closed_at", "held_s"]


# --- the exit decision table ---

OPEN = Gate(True)
SHUT = Gate(False, "execution disabled: key:execution_enabled is 'false'")
HELD = PositionFacts(1, 1)
HELD_IN_ORDERS = PositionFacts(1, 0)
FLAT = PositionFacts(0, 0)
BEFORE, AFTER = OPENED + timedelta(minutes=10), OPENED + timedelta(minutes=31)
LOOK = timedelta(seconds=15)

# (case, record, facts, gate, now, step, qty, reason contains)
TABLE = [
    ("hold never sells", rec(policy=Policy.HOLD), Facts(ENTRY, HELD), OPEN, AFTER, Step.DONE, 0, "hold"),
    ("entry not found yet waits", rec(), Facts(None, FLAT), OPEN, AFTER, Step.WAIT, 0, "not found"),
    ("entry never found a day on: done", rec(), Facts(None, FLAT), OPEN, OPENED + timedelta(days=1, seconds=1),
     Step.DONE, 0, "nothing to close"),
    ("entry still working waits", rec(), Facts(working("entry"), FLAT), OPEN, AFTER, Step.WAIT, 0, "entry order new"),
    ("entry ended unfilled is done", rec(), Facts(CANCELED, FLAT), OPEN, AFTER, Step.DONE, 0, "nothing filled"),
    ("filled and unprotected: protect", rec(), Facts(ENTRY, HELD), OPEN, BEFORE, Step.PROTECT, 1, "protect 1"),
    ("protect needs the gate: deferred once", rec(), Facts(ENTRY, HELD), SHUT, BEFORE, Step.DEFER, 0,
     "exit deferred: protect: execution disabled"),
    ("a second deferral only waits", rec(protect_deferred=True), Facts(ENTRY, HELD), SHUT, BEFORE, Step.WAIT, 0,
     "exit deferred"),
    ("ATR not known yet: the protect waits", rec(atr=None, atr_tries=2), Facts(ENTRY, HELD), OPEN, BEFORE, Step.WAIT,
     0, "ATR not known yet"),
    ("ATR not known yet, the gate shut: nothing to defer", rec(atr=None), Facts(ENTRY, HELD), SHUT, BEFORE,
     Step.WAIT, 0, "ATR not known yet"),
    ("no ATR: no protect, said once", rec(atr=None, atr_note="too few 5-minute bars"), Facts(ENTRY, HELD), SHUT,
     BEFORE, Step.NO_PROTECT, 0, "no protect: too few 5-minute bars; horizon exit alone"),
    ("no protect said: waits for the horizon", rec(atr=None, protect_skipped=True), Facts(ENTRY, HELD), OPEN,
     BEFORE, Step.WAIT, 0, "holding 1"),
    ("horizon policy never protects", rec(policy=Policy.HORIZON, atr=None), Facts(ENTRY, HELD), OPEN, BEFORE,
     Step.WAIT, 0, "holding 1"),
    ("protected: waits", rec(), Facts(ENTRY, HELD_IN_ORDERS, working("t"), working("s")), OPEN, BEFORE,
     Step.WAIT, 0, "holding 1"),
    ("target filled: outcome", rec(), Facts(ENTRY, FLAT, filled(513.57), CANCELED), OPEN, BEFORE, Step.OUTCOME, 0,
     "1 sold by the gateway"),
    ("stop filled, gate shut: outcome all the same", rec(), Facts(ENTRY, FLAT, CANCELED, filled(511.68)), SHUT,
     AFTER, Step.OUTCOME, 0, "flat"),
    ("sold by us with a leg left: cancel it", rec(), Facts(ENTRY, FLAT, filled(513.57), working("s")), SHUT, BEFORE,
     Step.CANCEL, 0, "leg left"),
    ("sold by hand with the protect working: cancel, never short", rec(),
     Facts(ENTRY, FLAT, working("t"), working("s")), SHUT, BEFORE, Step.CANCEL, 0, "never short"),
    ("sold by hand: manual outcome", rec(), Facts(ENTRY, FLAT, CANCELED, CANCELED), OPEN, BEFORE, Step.OUTCOME, 0,
     "not the gateway's"),
    ("horizon: cancel the protect first", rec(), Facts(ENTRY, HELD_IN_ORDERS, working("t"), working("s")), OPEN,
     AFTER, Step.CANCEL, 0, "horizon H30 reached"),
    ("horizon with the gate shut: deferred", rec(), Facts(ENTRY, HELD_IN_ORDERS, working("t"), working("s")), SHUT,
     AFTER, Step.DEFER, 0, "exit deferred: horizon exit: execution disabled"),
    ("horizon with the gate shut after the protect's deferral: deferred too", rec(protect_deferred=True),
     Facts(ENTRY, HELD_IN_ORDERS, working("t"), working("s")), SHUT, AFTER, Step.DEFER, 0,
     "exit deferred: horizon exit"),
    ("a second horizon deferral only waits", rec(exit_deferred=True),
     Facts(ENTRY, HELD_IN_ORDERS, working("t"), working("s")), SHUT, AFTER, Step.WAIT, 0, "exit deferred: horizon"),
    ("horizon, protect canceled: sell", rec(), Facts(ENTRY, HELD, CANCELED, CANCELED), OPEN, AFTER, Step.SELL, 1,
     "sell 1 at market"),
    ("horizon, nothing free: no sale", rec(), Facts(ENTRY, HELD_IN_ORDERS, CANCELED, CANCELED), OPEN, AFTER,
     Step.WAIT, 0, "no share free"),
    ("horizon sell working: waits", rec(), Facts(ENTRY, HELD_IN_ORDERS, CANCELED, CANCELED, working("x")), OPEN,
     AFTER, Step.WAIT, 0, "horizon sell new"),
    ("horizon sell ended with a share left: never a second sell", rec(),
     Facts(ENTRY, HELD, CANCELED, CANCELED, OrderFacts("x", "rejected", 0)), OPEN, AFTER, Step.HAND_OVER, 0,
     "at most one horizon sell"),
    ("handed over, still held: looked at slowly", rec(handed_over="horizon sell rejected"),
     Facts(ENTRY, HELD, CANCELED, CANCELED, OrderFacts("x", "rejected", 0)), OPEN, AFTER, Step.WAIT, 0,
     "the operator's"),
    ("handed over, the gate shut: nothing deferred", rec(handed_over="horizon sell rejected"),
     Facts(ENTRY, HELD, CANCELED, CANCELED, OrderFacts("x", "rejected", 0)), SHUT, AFTER, Step.WAIT, 0,
     "the operator's"),
    ("handed over a week past the horizon, not flat: done without an outcome", rec(handed_over="horizon sell rejected"),
     Facts(ENTRY, HELD, CANCELED, CANCELED, OrderFacts("x", "rejected", 0)), OPEN,
     OPENED + timedelta(days=7, minutes=30, seconds=1), Step.DONE, 0, "no outcome"),
    ("handed over exactly a week past the horizon: still watched", rec(handed_over="horizon sell rejected"),
     Facts(ENTRY, HELD, CANCELED, CANCELED, OrderFacts("x", "rejected", 0)), OPEN,
     OPENED + timedelta(days=7, minutes=30), Step.WAIT, 0, "the operator's"),
    ("ATR still unknown at the horizon: no protect, said before the sale", rec(atr=None, atr_tries=3),
     Facts(ENTRY, HELD), OPEN, AFTER, Step.NO_PROTECT, 0, "ATR not known by the horizon"),
    ("handed over and flat: the outcome at last", rec(handed_over="horizon sell rejected"),
     Facts(ENTRY, FLAT, CANCELED, CANCELED, OrderFacts("x", "rejected", 0)), OPEN, AFTER, Step.OUTCOME, 0,
     "not the gateway's"),
    ("horizon sold: outcome", rec(), Facts(ENTRY, FLAT, CANCELED, CANCELED, filled(512.5)), OPEN, AFTER,
     Step.OUTCOME, 0, "flat"),
    ("two more bought by hand: sells only its own one", rec(), Facts(ENTRY, PositionFacts(3, 3), CANCELED, CANCELED),
     OPEN, AFTER, Step.SELL, 1, "sell 1"),
    ("stand-down, cooldown and the cap are not consulted: the gate alone", rec(), Facts(ENTRY, HELD), OPEN, AFTER,
     Step.SELL, 1, "sell 1"),
    ("entry not found exactly a day on: still waits", rec(), Facts(None, FLAT), OPEN,
     OPENED + timedelta(days=1), Step.WAIT, 0, "not found"),
    ("flat by another with the horizon sell working: cancel it, never short", rec(),
     Facts(ENTRY, FLAT, CANCELED, CANCELED, working("x")), OPEN, AFTER, Step.CANCEL, 0, "never short"),
    ("half sold by us, the rest by hand: manual outcome of the rest", rec(),
     Facts(filled(512.31, qty=2, oid="entry"), FLAT, filled(513.57), CANCELED), OPEN, BEFORE, Step.OUTCOME, 0,
     "1 share(s)"),
    ("two held, one free: protects the one", rec(), Facts(filled(512.31, qty=2, oid="entry"), PositionFacts(2, 1)),
     OPEN, BEFORE, Step.PROTECT, 1, "protect 1"),
    ("protected, gate shut, not due: nothing to defer", rec(), Facts(ENTRY, HELD_IN_ORDERS, working("t"), working("s")),
     SHUT, BEFORE, Step.WAIT, 0, "holding 1"),
    ("horizon sell working at the very due time: looks again after the look interval", rec(),
     Facts(ENTRY, HELD_IN_ORDERS, CANCELED, CANCELED, working("x")), OPEN, OPENED + timedelta(minutes=30), Step.WAIT,
     0, "horizon sell new"),
    ("protect with nothing free waits", rec(), Facts(ENTRY, HELD_IN_ORDERS), OPEN, BEFORE, Step.WAIT, 0,
     "no share free"),
]


@pytest.mark.parametrize("record, facts, gate, now, step, qty, reason", [t[1:] for t in TABLE],
                         ids=[t[0] for t in TABLE])
def test_exit_decision_table(record: LifecycleRecord, facts: Facts, gate: Gate, now: datetime, step: Step, qty: int,
                             reason: str) -> None:
    action = decide_exit(record, facts, gate, now, LOOK)
    assert (action.step, action.qty) == (step, qty), action
    assert reason in action.reason


# case -> (rule, the whole reason, the order to cancel, when to look again in minutes after OPENED)
EXACT: dict[str, tuple[str, str, str | None, float | None]] = {
    'hold never sells': ('hold',
        'EXIT_POLICY hold: the position is never sold by the gateway', None, None),
    'entry not found yet waits': ('entry unknown',
        'entry order not found at the broker yet', None, 31.25),
    'entry never found a day on: done': ('entry unknown',
        'entry order not found at the broker 1 day, 0:00:00 after the ranking: nothing to'
        ' close (reconcile reports it)', None, None),
    'entry still working waits': ('entry open',
        'entry order new (0 filled)', None, 31.25),
    'entry ended unfilled is done': ('nothing bought',
        'entry order canceled with nothing filled: no position', None, None),
    'filled and unprotected: protect': ('protect',
        'protect 1: OCO target 1.5 x ATR, stop 0.75 x ATR', None, None),
    'protect needs the gate: deferred once': ('gate shut',
        "exit deferred: protect: execution disabled: key:execution_enabled is 'false'", None, 10.25),
    'a second deferral only waits': ('gate shut',
        "exit deferred: protect: execution disabled: key:execution_enabled is 'false'", None, 10.25),
    'ATR not known yet: the protect waits': ('protect',
        'protect: ATR not known yet (2 market-data read(s) got no answer); asked again', None, 10.25),
    'ATR not known yet, the gate shut: nothing to defer': ('protect',
        'protect: ATR not known yet (0 market-data read(s) got no answer); asked again', None, 10.25),
    'no ATR: no protect, said once': ('no protect',
        'no protect: too few 5-minute bars; horizon exit alone', None, None),
    'no protect said: waits for the horizon': ('wait',
        'holding 1 until the horizon at 2026-12-07T15:30:00+00:00', None, 10.25),
    'horizon policy never protects': ('wait',
        'holding 1 until the horizon at 2026-12-07T15:30:00+00:00', None, 10.25),
    'protected: waits': ('wait',
        'holding 1 until the horizon at 2026-12-07T15:30:00+00:00', None, 10.25),
    'target filled: outcome': ('sold by us',
        "flat: 1 sold by the gateway's own exits", None, None),
    'stop filled, gate shut: outcome all the same': ('sold by us',
        "flat: 1 sold by the gateway's own exits", None, None),
    'sold by us with a leg left: cancel it': ('sold by us',
        "everything bought is sold: the protect's leg left is canceled", 's', None),
    'sold by hand with the protect working: cancel, never short': ('flat by another',
        'the account holds no shares: the exit order left is canceled (never short)', 't', None),
    'sold by hand: manual outcome': ('flat by another',
        "flat: 1 share(s) sold by an order not the gateway's", None, None),
    'horizon: cancel the protect first': ('horizon',
        'horizon H30 reached: the protect is canceled before the sale', 't', None),
    'horizon with the gate shut: deferred': ('gate shut',
        'exit deferred: horizon exit: execution disabled: key:execution_enabled is '
        "'false'", None, 31.25),
    "horizon with the gate shut after the protect's deferral: deferred too": ('gate shut',
        'exit deferred: horizon exit: execution disabled: key:execution_enabled is '
        "'false'", None, 31.25),
    'a second horizon deferral only waits': ('gate shut',
        'exit deferred: horizon exit: execution disabled: key:execution_enabled is '
        "'false'", None, 31.25),
    'horizon, protect canceled: sell': ('horizon',
        'horizon H30 reached: sell 1 at market', None, None),
    'horizon, nothing free: no sale': ('horizon',
        'horizon reached but no share free to sell (held 1, qty_available 0)', None, 31.25),
    'horizon sell working: waits': ('horizon sell working',
        'horizon sell new', None, 31.25),
    'horizon sell ended with a share left: never a second sell': ('horizon sell ended',
        'horizon sell ended rejected with 1 share(s) left: at most one horizon sell per '
        "execution; the rest is the operator's", None, None),
    "handed over, still held: looked at slowly": ("the operator's",
        "the operator's (horizon sell rejected): 1 held; its outcome is recorded once flat", None, 36.0),
    "handed over, the gate shut: nothing deferred": ("the operator's",
        "the operator's (horizon sell rejected): 1 held; its outcome is recorded once flat", None, 36.0),
    "handed over a week past the horizon, not flat: done without an outcome": ("the operator's",
        "the operator's (horizon sell rejected) and not flat 7 days, 0:00:00 after the horizon: no outcome",
        None, None),
    "handed over exactly a week past the horizon: still watched": ("the operator's",
        "the operator's (horizon sell rejected): 1 held; its outcome is recorded once flat", None, 10115.0),
    "ATR still unknown at the horizon: no protect, said before the sale": ('no protect',
        "no protect: ATR not known by the horizon (3 market-data read(s) got no answer); horizon exit alone",
        None, None),
    "handed over and flat: the outcome at last": ('flat by another',
        "flat: 1 share(s) sold by an order not the gateway's", None, None),
    'horizon sold: outcome': ('sold by us',
        "flat: 1 sold by the gateway's own exits", None, None),
    'two more bought by hand: sells only its own one': ('horizon',
        'horizon H30 reached: sell 1 at market', None, None),
    'stand-down, cooldown and the cap are not consulted: the gate alone': ('horizon',
        'horizon H30 reached: sell 1 at market', None, None),
    'entry not found exactly a day on: still waits': ('entry unknown',
        'entry order not found at the broker yet', None, 1440.25),
    'flat by another with the horizon sell working: cancel it, never short': ('flat by another',
        'the account holds no shares: the exit order left is canceled (never short)', 'x', None),
    'half sold by us, the rest by hand: manual outcome of the rest': ('flat by another',
        "flat: 1 share(s) sold by an order not the gateway's", None, None),
    'two held, one free: protects the one': ('protect', 'protect 1: OCO target 1.5 x ATR, stop 0.75 x ATR', None,
                                             None),
    'protected, gate shut, not due: nothing to defer': ('wait',
        'holding 1 until the horizon at 2026-12-07T15:30:00+00:00', None, 10.25),
    'horizon sell working at the very due time: looks again after the look interval': ('horizon sell working',
        'horizon sell new', None, 30.25),
    'protect with nothing free waits': ('protect', 'protect: no share free (qty_available 0)', None, 10.25),
}


@pytest.mark.parametrize("record, facts, gate, now", [t[1:5] for t in TABLE], ids=[t[0] for t in TABLE])
def test_every_exit_decision_names_its_rule_its_whole_reason_its_order_and_when_to_look_again(
        request: pytest.FixtureRequest, record: LifecycleRecord, facts: Facts, gate: Gate, now: datetime) -> None:
    rule, reason, order_id, at = EXACT[request.node.callspec.id]
    action = decide_exit(record, facts, gate, now, LOOK)
    assert (action.rule, action.reason, action.order_id) == (rule, reason, order_id)
    assert action.at == (None if at is None else OPENED + timedelta(minutes=at))


@pytest.mark.parametrize(("now", "at"), [
    (OPENED + timedelta(minutes=29, seconds=50), OPENED + timedelta(minutes=30)),  # the horizon comes first
    (OPENED + timedelta(minutes=29, seconds=45), OPENED + timedelta(minutes=30)),
    (OPENED + timedelta(minutes=29), OPENED + timedelta(minutes=29, seconds=15)),
])
def test_a_wait_looks_again_at_the_horizon_when_it_comes_before_the_next_look(now: datetime, at: datetime) -> None:
    action = decide_exit(rec(), Facts(ENTRY, HELD_IN_ORDERS, working("t"), working("s")), OPEN, now, LOOK)
    assert (action.step, action.at) == (Step.WAIT, at)


def test_a_wait_without_a_due_time_says_so_and_looks_again_soon() -> None:
    action = decide_exit(rec(due_at=None), Facts(ENTRY, HELD_IN_ORDERS, working("t"), working("s")), OPEN, BEFORE,
                         LOOK)
    assert (action.step, action.reason, action.at) == (Step.WAIT, "holding 1 until the horizon at unknown",
                                                       BEFORE + LOOK)


@pytest.mark.parametrize("bought, sold_by_us, position, qty_available", [
    (b, s, p, a) for b in (1, 2) for s in range(3) for p in range(4) for a in range(4) if a <= p and s <= b])
def test_an_exit_never_sells_more_than_its_entry_bought_or_the_account_has_free(
        bought: int, sold_by_us: int, position: int, qty_available: int) -> None:
    entry = filled(100.0, qty=bought, oid="entry")
    facts = Facts(entry, PositionFacts(position, qty_available), CANCELED, CANCELED,
                  filled(100.0, qty=sold_by_us, oid="x") if sold_by_us else None)
    for gate in (OPEN, SHUT):
        action = decide_exit(rec(), facts, gate, AFTER, LOOK)
        if action.step in (Step.SELL, Step.PROTECT):
            assert 0 < action.qty <= min(bought - sold_by_us, qty_available)
            assert gate.allowed


def test_every_rule_is_named_once_in_the_table() -> None:
    names = [name for name, _ in RULES]
    assert len(names) == len(set(names))


def test_the_record_survives_its_json() -> None:
    record = rec(protect_deferred=True, atr_tries=3, limit_price="513.57", due_at=AFTER, entry_fill=ENTRY)
    assert LifecycleRecord.from_json(record.to_json()) == record


@pytest.mark.parametrize("said", [True, False])
def test_a_record_kept_with_one_deferral_for_both_exits_reads_as_said_for_each(said: bool) -> None:
    """A record kept before each exit had its own deferral: its one flag stands for both, so
    no deferral already announced is announced again."""
    data = json.loads(rec().to_json())
    del data["protect_deferred"], data["exit_deferred"]
    data["deferred"] = said
    assert LifecycleRecord.from_json(json.dumps(data)) == rec(protect_deferred=said, exit_deferred=said)


# --- a reseeded lifecycle knows the exit decisions its audit holds ---

def test_a_reseeded_lifecycle_takes_the_exit_decisions_the_audit_holds() -> None:
    """Redis lost the outbox: the audit's rows say what was recorded, so nothing is recorded twice."""
    exec_id = rec().execution_id
    seeded = with_exits_recorded(rec(), [(f"{exec_id}#protect", "SUBMITTED", "oco-1"),
                                         (f"{exec_id}#protect-deferred", "BLOCKED", None),
                                         (f"{exec_id}#exit", "SUBMITTED", "sell-1")])
    assert (seeded.protect_order_id, seeded.protect_deferred, seeded.exit_deferred, seeded.sell_recorded) == (
        "oco-1", True, False, True)
    horizon = with_exits_recorded(rec(), [(f"{exec_id}#exit-deferred", "BLOCKED", None)])
    assert (horizon.protect_deferred, horizon.exit_deferred) == (False, True)
    legacy = with_exits_recorded(rec(), [(f"{exec_id}#deferred", "BLOCKED", None)])
    assert (legacy.protect_deferred, legacy.exit_deferred) == (True, True)
    assert with_exits_recorded(rec(), [(f"{exec_id}#protect", "SKIPPED", None)]).protect_skipped
    refused = with_exits_recorded(rec(), [(f"{exec_id}#exit", "REJECTED", None)])
    assert (refused.handed_over, refused.finished) == ("horizon sell refused by the broker", None)
    assert with_exits_recorded(rec(), []) == rec()


@pytest.mark.parametrize("status", ["BLOCKED", "ERROR"])
def test_an_exit_that_was_not_sent_leaves_the_reseeded_lifecycle_to_sell_again(status: str) -> None:
    """A horizon sell the kill switch held (BLOCKED) or that failed (ERROR) placed nothing:
    the lifecycle neither counts it as sold nor gives the position up."""
    exec_id = rec().execution_id
    assert with_exits_recorded(rec(), [(f"{exec_id}#exit", status, None)]) == rec()


# --- reconcile knows the exit orders are the gateway's own ---

def audited(cid: str) -> AuditedOrder:
    return AuditedOrder("evt:" + cid, "SPY:H30:2026-12-07T15:00:00", "SPY", cid, "oid", None, OPENED)


@pytest.mark.parametrize("cid, status, findings", [
    ("zp-SPY:H30:2026-12-07T15:00:00", "canceled", []),  # the lifecycle canceled its protect: expected
    ("zs-SPY:H30:2026-12-07T15:00:00", "filled", []),
    ("zs-SPY:H30:2026-12-07T15:00:00", "rejected", ["status drift"]),
    ("zx-SPY:H30:2026-12-07T15:00:00", "canceled", ["status drift"]),
])
def test_reconcile_reports_no_finding_for_a_protect_the_lifecycle_canceled(cid: str, status: str,
                                                                          findings: list[str]) -> None:
    report = compare([audited(cid)], [BrokerOrder("oid", cid, "SPY", status, OPENED)])
    assert [f.kind for f in report.findings] == findings


# --- the lifecycle an entry starts with (seed.py) -----------------------------------------------
SEED_EXEC = "SPY:H30:2026-11-24T14:30:00"
SEED_RANK = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def entry_decision(status: Status = Status.SUBMITTED, **over: Any) -> DecisionRecord:
    values: dict[str, Any] = {
        "event_key": "msg:1", "time": SEED_RANK, "decided_at": SEED_RANK, "execution_id": SEED_EXEC,
        "ticker": "SPY", "horizon": "H30", "probability": 0.95, "opportunity_score": 95.0, "status": status,
        "reason": "x", "why": ["x"], "market_state_snapshot": None,
        "payload": {"ticker": "SPY", "target_atr": 1.5, "stop_atr": 0.75}}
    return DecisionRecord(**{**values, **over})


@pytest.mark.parametrize(("execution_id", "rank_time"), [
    (SEED_EXEC, SEED_RANK),
    ("SPY:H30:2026-11-24T14:30:00:extra", None),
    ("SPY:H30", None),
    ("SPY:H30:2026-11-24 14:30:00", None),
    ("SPY:H30:not a time", None),
    ("SPY-H30-2026-11-24T14:30:00", None),
])
def test_the_rank_time_is_the_execution_ids_last_part_in_utc(execution_id: str, rank_time: datetime | None) -> None:
    assert rank_time_of(execution_id) == rank_time


@pytest.mark.parametrize("policy", list(Policy))
def test_a_submitted_entry_starts_its_lifecycle_from_its_decisions_fields(policy: Policy) -> None:
    assert seed_of(entry_decision(), policy) == LifecycleRecord(
        SEED_EXEC, "SPY", "H30", 0.95, 95.0, 1.5, 0.75, SEED_RANK, policy, "msg:1")


def test_a_lifecycle_starts_under_zeros_policy_unless_told() -> None:
    rec = seed_of(entry_decision())
    assert rec is not None
    assert rec.policy is Policy.ZERO
    again = seed_from(SEED_EXEC, "SPY", "H30", None, None, {"target_atr": 2, "stop_atr": 1}, "msg:2")
    assert again == LifecycleRecord(SEED_EXEC, "SPY", "H30", None, None, 2.0, 1.0, SEED_RANK, Policy.ZERO, "msg:2")


@pytest.mark.parametrize("decision", [
    entry_decision(Status.BLOCKED),
    entry_decision(Status.SKIPPED),
    entry_decision(intent="exit", side="sell", exit_reason="horizon"),
    entry_decision(intent="protect", side="sell"),
])
def test_only_a_submitted_entry_starts_a_lifecycle(decision: DecisionRecord) -> None:
    assert seed_of(decision) is None


@pytest.mark.parametrize("payload", [
    None,
    {},
    {"target_atr": 1.5},
    {"stop_atr": 0.75},
    {"target_atr": "1.5", "stop_atr": 0.75},
    {"target_atr": 1.5, "stop_atr": True},
    {"target_atr": None, "stop_atr": 0.75},
])
def test_an_entry_without_numeric_atr_multiples_starts_no_lifecycle(payload: dict[str, Any] | None) -> None:
    assert seed_from(SEED_EXEC, "SPY", "H30", 0.95, 95.0, payload, "msg:1") is None


def test_an_entry_whose_execution_id_has_no_rank_time_starts_no_lifecycle() -> None:
    assert seed_from("SPY:H30", "SPY", "H30", 0.95, 95.0, {"target_atr": 1.5, "stop_atr": 0.75}, "msg:1") is None


# --- the exit gate (gate.py): kill switch and market state only ---------------------------------
GATE_NOW = datetime(2026, 11, 24, 19, 30, tzinfo=UTC)


def gate_snap(**over: str | None) -> Snapshot:
    session = TradingSession(True, GATE_NOW - timedelta(hours=5), GATE_NOW + timedelta(hours=1), None,
                             GATE_NOW - timedelta(minutes=5))
    fields: dict[str, Any] = {
        "execution_enabled": "true", "stand_down": json.dumps({"active": True, "reason": "x"}),
        "market_state": json.dumps({"timestamp": (GATE_NOW - timedelta(minutes=1)).isoformat(), "state": "GREEN",
                                    "reason": None}),
        "session": session.to_json(), "blocklist": json.dumps({"reason": "earnings"})}
    return Snapshot(**{**fields, **over})


@pytest.mark.parametrize(("over", "max_age", "gate"), [
    ({}, None, Gate(True)),
    ({}, 600.0, Gate(True)),
    ({"execution_enabled": "false"}, None, Gate(False, "execution disabled: key:execution_enabled is 'false', "
                                                     "not 'true'")),
    ({"market_state": None}, None, Gate(False, "market state: key:market_state is not set")),
    ({}, 30.0, Gate(False, "market state: stale: GREEN is 60s old (MARKET_STATE_MAX_AGE_S 30s)")),
    ({"execution_enabled": "false", "market_state": None}, None,
     Gate(False, "execution disabled: key:execution_enabled is 'false', not 'true'")),
])
def test_an_exit_goes_out_only_with_the_kill_switch_true_and_the_market_green_whatever_the_entry_rules_say(
        over: dict[str, str | None], max_age: float | None, gate: Gate) -> None:
    limits = Limits(min_probability=0.99, market_state_max_age_s=max_age, signal_max_age_s=1.0)
    assert exit_gate(gate_snap(**over), GATE_NOW, limits) == gate


def test_an_outcome_message_reads_back_as_the_outcome_it_was() -> None:
    result = outcome_of(rec(), Facts(ENTRY, PositionFacts(), target_leg=filled(513.57, 21)), OPENED)
    assert not isinstance(result, str)
    assert Outcome.from_message(json.loads(json.dumps(result.to_message()))) == result


@pytest.mark.parametrize(("start", "end", "minutes"), [
    (ny(2026, 11, 24, 9, 30), ny(2026, 11, 24, 16, 0), 390.0),
    (ny(2026, 11, 24, 15, 30), ny(2026, 11, 25, 10, 0), 60.0),  # the night between sessions is not counted
    (ny(2026, 11, 24, 8, 0), ny(2026, 11, 24, 9, 45), 15.0),
    (ny(2026, 11, 24, 16, 0), ny(2026, 11, 25, 9, 30), 0.0),
    (ny(2026, 11, 24, 12, 0), ny(2026, 11, 24, 11, 0), 0.0),
    (ny(2026, 11, 24, 12, 0), ny(2026, 11, 24, 12, 0, ) + timedelta(seconds=30), 0.5),
])
def test_the_trading_minutes_left_count_only_time_inside_sessions(start: datetime, end: datetime,
                                                                 minutes: float) -> None:
    sessions = [Session(ny(2026, 11, 24, 9, 30), ny(2026, 11, 24, 16, 0)),
                Session(ny(2026, 11, 25, 9, 30), ny(2026, 11, 25, 13, 0))]
    assert trading_minutes_between(start, end, sessions) == minutes


@pytest.mark.parametrize(("make", "key"), [
    (lambda: lifecycle_key("SPY:H30:2026-11-24T14:30:00"), "key:execution_lifecycle:SPY:H30:2026-11-24T14:30:00"),
    (lambda: protect_client_order_id("SPY:H30:2026-11-24T14:30:00"), "zp-SPY:H30:2026-11-24T14:30:00"),
    (lambda: exit_client_order_id("SPY:H30:2026-11-24T14:30:00"), "zs-SPY:H30:2026-11-24T14:30:00"),
    (lambda: protect_client_order_id("X" * 126), "zp-" + hashlib.sha256(b"X" * 126).hexdigest()),
    (lambda: exit_client_order_id("X" * 126), "zs-" + hashlib.sha256(b"X" * 126).hexdigest()),
])
def test_an_executions_lifecycle_key_and_exit_order_ids_are_its_execution_id_behind_their_prefix(
        make: Callable[[], str], key: str) -> None:
    assert make() == key


def test_an_outcome_carries_its_executions_signal_and_the_entrys_fill() -> None:
    result = outcome_of(rec(), Facts(filled(512.31, oid="entry", qty=2), PositionFacts(), CANCELED,
                                     filled(511.0, 20, qty=1), filled(513.0, 21, qty=1)), OPENED)
    assert result == Outcome("SPY:H30:2026-12-07T15:00:00", "SPY", "H30", 0.95, 1.5, 0.75, 0.84, 2, 512.31, 512.0,
                             -0.62, -0.061, "EXPIRED", "horizon", OPENED, OPENED + timedelta(minutes=21), 1260)


@pytest.mark.parametrize("entry", [None, OrderFacts("entry", "canceled", 0, 512.31, OPENED),
                                   OrderFacts("entry", "filled", 1, None, OPENED),
                                   OrderFacts("entry", "filled", 1, 0.0, OPENED)])
def test_an_entry_without_a_fill_has_no_outcome(entry: OrderFacts | None) -> None:
    assert outcome_of(rec(), Facts(entry, PositionFacts()), OPENED) == "the entry has no fill: no outcome"


def test_an_entry_fill_without_its_time_is_held_from_the_ranking_and_never_for_less_than_nothing() -> None:
    entry = OrderFacts("entry", "filled", 1, 512.31, None)
    result = outcome_of(rec(), Facts(entry, PositionFacts()), OPENED - timedelta(minutes=1))
    assert not isinstance(result, str)
    assert (result.opened_at, result.closed_at, result.held_s, result.exit_via, result.outcome) == (
        OPENED, OPENED - timedelta(minutes=1), 0, "manual", None)


def test_a_realized_pnl_and_exit_price_are_rounded_to_four_places() -> None:
    result = outcome_of(rec(), Facts(filled(100.00002, oid="entry"), PositionFacts(), filled(100.00001, 1)), OPENED)
    assert not isinstance(result, str)
    assert (result.realized_pnl, result.exit_price) == (0.0, 100.0)


def test_atr_counts_a_bar_exactly_at_the_start_of_the_lookback() -> None:
    first = Bar(AS_OF - timedelta(hours=3, minutes=10), 100.5, 99.5, 100.0)
    assert atr([first, *bars(14)], AS_OF) == pytest.approx(1.0)


def test_atr_with_too_few_bars_says_how_many_of_how_many_before_when() -> None:
    assert atr(bars(14), AS_OF) == "too few 5-minute bars: 14 of 15 before 2026-12-07T17:00:00+00:00"


@pytest.mark.parametrize(("high", "low"), [(math.inf, 99.5), (math.nan, 99.5), (100.5, 0.0), (100.5, -1.0)])
def test_atr_of_a_bar_whose_price_is_not_a_positive_number_is_none_with_a_reason(high: float, low: float) -> None:
    series = bars(15)
    series[3] = Bar(series[3].t, high, low, 100.0)
    assert atr(series, AS_OF) == f"bar at {series[3].t.isoformat()} has a price that is not a positive number"


def test_atr_reads_only_the_15_most_recent_bars_prices() -> None:
    series = bars(16)
    series[0] = Bar(series[0].t, math.nan, 99.5, 100.0)  # the 16th most recent: not read
    assert atr(series, AS_OF) == pytest.approx(1.0)


def test_atr_of_a_penny_stock_below_one_dollar_is_its_true_range() -> None:
    series = [Bar(b.t, 0.55, 0.45, 0.5) for b in bars(15)]
    assert atr(series, AS_OF) == pytest.approx(0.1)


def test_atr_of_bars_that_never_moved_is_none_with_a_reason() -> None:
    assert atr(bars(15, step_high=0.0), AS_OF) == "ATR is 0 (no price movement in the bars)"


@pytest.mark.parametrize(("fill", "atr_value", "target_atr", "stop_atr", "why"), [
    (0.0, 1.0, 1.5, 0.75, "fill 0.0 and ATR 1.0 must both be positive"),
    (100.0, 1.0, 1.5, 0.0, "target_atr 1.5 and stop_atr 0.0 must both be positive"),
    (1.0, 1.0, 1.5, 1.0, "stop 0.0000 at or below zero (fill 1.0, stop_atr 1.0 x ATR 1.0000)"),
])
def test_protect_prices_say_exactly_why_there_is_no_oco(fill: float, atr_value: float, target_atr: float,
                                                       stop_atr: float, why: str) -> None:
    assert protect_prices(fill, atr_value, target_atr, stop_atr) == why


@pytest.mark.parametrize(("price", "step"), [("1", "0.01"), ("1.5", "0.01"), ("0.9999", "0.0001")])
def test_alpacas_tick_is_a_cent_from_one_dollar_up_and_a_hundredth_of_a_cent_below(price: str, step: str) -> None:
    assert tick(Decimal(price)) == Decimal(step)


DEC7_OPEN, DEC7_CLOSE = ny(2026, 12, 7, 9, 30), ny(2026, 12, 7, 16, 0)


@pytest.mark.parametrize(("rank", "calendar", "why"), [
    (DEC7_CLOSE, [Session(DEC7_OPEN, DEC7_CLOSE)],
     "the calendar has too few sessions after 2026-12-07T21:00:00+00:00 for H30"),
    (ny(2026, 12, 7, 8, 0), [Session(DEC7_OPEN, DEC7_OPEN)],
     "the calendar has too few sessions after 2026-12-07T13:00:00+00:00 for H30"),
    (ny(2026, 12, 7, 15, 50), [Session(DEC7_OPEN, DEC7_CLOSE)],
     "the calendar has too few sessions after 2026-12-07T20:50:00+00:00 for H30 (it ends 2026-12-07T21:00:00+00:00)"),
])
def test_a_calendar_too_short_says_after_when_and_where_it_ends(rank: datetime, calendar: list[Session],
                                                                why: str) -> None:
    assert due_time(rank, "H30", calendar, BUFFER) == why


def test_a_ranking_at_a_sessions_close_is_due_in_the_next_session() -> None:
    calendar = [Session(DEC7_OPEN, DEC7_CLOSE), Session(ny(2026, 12, 8, 9, 30), ny(2026, 12, 8, 16, 0))]
    assert due_time(DEC7_CLOSE, "H30", calendar, BUFFER) == ny(2026, 12, 8, 10, 0)


def test_a_lifecycle_record_changes_only_what_it_is_told() -> None:
    assert rec().but(exit_deferred=True) == LifecycleRecord(
        "SPY:H30:2026-12-07T15:00:00", "SPY", "H30", 0.95, 95, 1.5, 0.75, OPENED, Policy.ZERO, "evt",
        due_at=OPENED + timedelta(minutes=30), atr=0.84, exit_deferred=True)


def test_a_record_without_a_due_time_or_fill_times_survives_its_json() -> None:
    for record in (rec(due_at=None), rec(entry_fill=OrderFacts("entry", "filled", 1, 512.31, None))):
        assert LifecycleRecord.from_json(record.to_json()) == record


def test_atr_true_range_of_a_gap_down_reaches_the_previous_close() -> None:
    series = bars(15)
    series[-1] = Bar(series[-1].t, 95.0, 90.0, 92.0)  # gap down: |low - prev close| = 10
    assert atr(series, AS_OF) == pytest.approx((13 * 1.0 + 10.0) / 14)

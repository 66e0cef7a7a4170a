"""The position lifecycle's pure core, rule by rule: ATR as ZERO computes it, the
protect's prices on Alpaca's tick, the horizon in trading minutes over the real NYSE
calendar, the outcome and the exit decision table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pytest

from zero_tasks.core.lifecycle.atr import Bar, atr
from zero_tasks.core.lifecycle.horizon import Session, due_time
from zero_tasks.core.lifecycle.outcome import outcome_of
from zero_tasks.core.lifecycle.prices import ProtectPrices, protect_prices
from zero_tasks.core.lifecycle.rules import RULES, Step, decide_exit
from zero_tasks.core.lifecycle.seed import with_exits_recorded
from zero_tasks.core.lifecycle.state import Facts, Gate, LifecycleRecord, OrderFacts, Policy, PositionFacts
from zero_tasks.core.reconcile import AuditedOrder, BrokerOrder, compare

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
    ("a second deferral only waits", rec(deferred=True), Facts(ENTRY, HELD), SHUT, BEFORE, Step.WAIT, 0,
     "exit deferred"),
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
    ("horizon, protect canceled: sell", rec(), Facts(ENTRY, HELD, CANCELED, CANCELED), OPEN, AFTER, Step.SELL, 1,
     "sell 1 at market"),
    ("horizon, nothing free: no sale", rec(), Facts(ENTRY, HELD_IN_ORDERS, CANCELED, CANCELED), OPEN, AFTER,
     Step.WAIT, 0, "no share free"),
    ("horizon sell working: waits", rec(), Facts(ENTRY, HELD_IN_ORDERS, CANCELED, CANCELED, working("x")), OPEN,
     AFTER, Step.WAIT, 0, "horizon sell new"),
    ("horizon sell ended with a share left: never a second sell", rec(),
     Facts(ENTRY, HELD, CANCELED, CANCELED, OrderFacts("x", "rejected", 0)), OPEN, AFTER, Step.DONE, 0,
     "at most one horizon sell"),
    ("horizon sold: outcome", rec(), Facts(ENTRY, FLAT, CANCELED, CANCELED, filled(512.5)), OPEN, AFTER,
     Step.OUTCOME, 0, "flat"),
    ("two more bought by hand: sells only its own one", rec(), Facts(ENTRY, PositionFacts(3, 3), CANCELED, CANCELED),
     OPEN, AFTER, Step.SELL, 1, "sell 1"),
    ("stand-down, cooldown and the cap are not consulted: the gate alone", rec(), Facts(ENTRY, HELD), OPEN, AFTER,
     Step.SELL, 1, "sell 1"),
]


@pytest.mark.parametrize("record, facts, gate, now, step, qty, reason", [t[1:] for t in TABLE],
                         ids=[t[0] for t in TABLE])
def test_exit_decision_table(record: LifecycleRecord, facts: Facts, gate: Gate, now: datetime, step: Step, qty: int,
                             reason: str) -> None:
    action = decide_exit(record, facts, gate, now, LOOK)
    assert (action.step, action.qty) == (step, qty), action
    assert reason in action.reason


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
    record = rec(deferred=True, limit_price="513.57", due_at=AFTER, entry_fill=ENTRY)
    assert LifecycleRecord.from_json(record.to_json()) == record


# --- a reseeded lifecycle knows the exit decisions its audit holds ---

def test_a_reseeded_lifecycle_takes_the_exit_decisions_the_audit_holds() -> None:
    """Redis lost the outbox: the audit's rows say what was recorded, so nothing is recorded twice."""
    exec_id = rec().execution_id
    seeded = with_exits_recorded(rec(), [(f"{exec_id}#protect", "SUBMITTED", "oco-1"),
                                         (f"{exec_id}#deferred", "BLOCKED", None),
                                         (f"{exec_id}#exit", "SUBMITTED", "sell-1")])
    assert (seeded.protect_order_id, seeded.deferred, seeded.sell_recorded) == ("oco-1", True, True)
    assert with_exits_recorded(rec(), [(f"{exec_id}#protect", "SKIPPED", None)]).protect_skipped
    assert with_exits_recorded(rec(), [(f"{exec_id}#exit", "REJECTED", None)]).finished
    assert with_exits_recorded(rec(), []) == rec()


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

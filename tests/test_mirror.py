"""The account mirror, pure (core/mirror.py): a ticker's book moved on by trade updates,
and row 9's answer from the mirror only from a sync record sealed with the gateway's key,
in sync and fresh."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from zero_tasks.core.checks.exposure import Exposure, check_exposure
from zero_tasks.core.decision import Code
from zero_tasks.core.mirror import (
    IN_SYNC,
    OUT_OF_SYNC,
    Book,
    OrderState,
    Position,
    SyncRecord,
    Update,
    apply,
    book_from_json,
    book_of,
    is_gateway_order,
    row9_exposure,
    seal_record,
)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
MAX_AGE_S = 3.0


def order(status: str = "new", side: str = "buy", qty: str = "1", filled: str = "0", at: datetime = NOW,
          cid: str = "zx-SPY:H30:1", oid: str = "o-1") -> OrderState:
    return OrderState(oid, cid, "SPY", side, qty, status, filled_qty=filled, updated_at=at.isoformat())


def update(o: OrderState, event: str | None = None, position_qty: str | None = None,
           price: str | None = None, qty: str | None = None) -> Update:
    return Update(event or o.status, o, o.updated_at or NOW.isoformat(), position_qty, price, qty)


KEY = "k" * 32  # TASK_SIGNING_KEY
DAY = "2026-11-24"  # NOW's trading day


def record(state: str = IN_SYNC, confirmed: datetime = NOW, **stated: object) -> SyncRecord:
    return replace(SyncRecord(state, 7, "host:1", 3, confirmed.isoformat(), entries_day=DAY, entries_today=0),
                   **stated)


def sync(state: str = IN_SYNC, confirmed: datetime = NOW, **stated: object) -> str:
    return seal_record(record(state, confirmed, **stated), KEY)


# the book ---------------------------------------------------------------------------------
def test_a_new_order_is_on_its_tickers_book() -> None:
    book = apply(Book("SPY"), update(order("new")))
    assert list(book.orders) == ["o-1"] and book.position is None


def test_a_fill_takes_the_order_off_the_book_and_makes_the_position_the_broker_counts() -> None:
    book = apply(Book("SPY"), update(order("new")))
    book = apply(book, update(order("filled", filled="1", at=NOW + timedelta(seconds=1)), "fill", position_qty="1",
                              price="101.5", qty="1"))
    assert book.orders == {}
    assert book.position == Position("1", "1", "101.5")


def test_a_partial_fill_keeps_the_order_on_the_book_and_averages_the_price() -> None:
    book = Book("SPY", Position("1", "1", "100"))
    book = apply(book, update(order("partially_filled", qty="3", filled="1"), "partial_fill", position_qty="2",
                              price="110", qty="1"))
    assert list(book.orders) == ["o-1"]
    assert book.position == Position("2", "2", "105")


def test_an_open_sell_order_holds_its_shares_back_from_qty_available() -> None:
    book = Book("SPY", Position("3", "3", "100"))
    book = apply(book, update(order("new", side="sell", qty="2", cid="zp-SPY:1", oid="o-2")))
    assert book.position == Position("3", "1", "100")


def test_a_sell_filled_to_zero_leaves_the_ticker_flat() -> None:
    book = Book("SPY", Position("1", "1", "100"))
    book = apply(book, update(order("filled", side="sell", filled="1", cid="zs-SPY:1", oid="o-3"), "fill",
                              position_qty="0", price="101", qty="1"))
    assert book == Book("SPY")


def test_an_update_older_than_the_state_known_changes_nothing() -> None:
    """A replay after the snapshot: the snapshot saw the order filled; its older `new` event comes after."""
    filled_later = order("filled", filled="1", at=NOW + timedelta(seconds=5))
    book = Book("SPY", Position("1", "1", "100"), {"o-1": replace(filled_later, status="partially_filled")})
    assert apply(book, update(order("new", at=NOW))) == book


@pytest.mark.parametrize("status", ["canceled", "expired", "rejected", "replaced", "done_for_day"])
def test_a_closed_order_leaves_the_book(status: str) -> None:
    book = apply(Book("SPY"), update(order("new")))
    assert apply(book, update(order(status, at=NOW + timedelta(seconds=1)))).orders == {}


def test_a_book_from_the_snapshot_keeps_only_its_tickers_open_orders() -> None:
    other = replace(order("new", oid="o-9"), symbol="QQQ")
    done = order("filled", oid="o-8")
    book = book_of("SPY", Position("0", "0", None), [order("new"), other, done])
    assert book.position is None and list(book.orders) == ["o-1"]


def test_a_book_reads_back_as_it_was_written() -> None:
    book = Book("SPY", Position("2", "1", "100.5"), {"o-1": replace(order("new"), legs=("l-1", "l-2"))})
    assert book_from_json(book.to_json(), "SPY") == book


def test_gateway_orders_are_told_by_their_prefix() -> None:
    assert all(is_gateway_order(c) for c in ("zx-a", "zp-a", "zs-a"))
    assert not any(is_gateway_order(c) for c in ("manual-1", "", None))


# row 9 from the mirror ----------------------------------------------------------------------
def test_an_in_sync_fresh_mirror_with_a_position_skips_row_9() -> None:
    facts = row9_exposure("SPY", sync(), Book("SPY", Position("1", "1", "100")).to_json(), NOW, MAX_AGE_S, KEY, DAY)
    assert facts == Exposure("SPY", position_qty="1", entries_today=0)
    verdict = check_exposure(facts)
    assert verdict is not None and verdict.code is Code.OPEN_POSITION


def test_an_order_placed_by_hand_shows_in_the_mirror_and_stops_row_9() -> None:
    manual = replace(order("new"), client_order_id="my-own-order-from-the-dashboard")
    facts = row9_exposure("SPY", sync(), apply(Book("SPY"), update(manual)).to_json(), NOW, MAX_AGE_S, KEY, DAY)
    assert facts == Exposure("SPY", open_orders=1, entries_today=0)
    assert check_exposure(facts) is not None


def test_an_in_sync_mirror_without_a_book_for_the_ticker_says_flat() -> None:
    facts = row9_exposure("SPY", sync(), None, NOW, MAX_AGE_S, KEY, DAY)
    assert facts == Exposure("SPY", entries_today=0) and check_exposure(facts) is None


@pytest.mark.parametrize(("sync_raw", "why"), [
    (None, "no sync record"),
    (sync(OUT_OF_SYNC), "mirror out_of_sync"),
    (sync(confirmed=NOW - timedelta(seconds=MAX_AGE_S + 0.5)), "mirror stale"),
    (sync(confirmed=NOW + timedelta(seconds=MAX_AGE_S + 0.5)), "mirror stale"),
    ("{not json", "unreadable"),
    ('{"state": "in_sync"}', "unreadable"),
    (sync(entries_day="2026-11-23"), "no count of trading day 2026-11-24"),
    (sync(entries_today=None), "no count of trading day 2026-11-24"),
])
def test_a_mirror_that_is_not_in_sync_and_fresh_does_not_answer_row_9(sync_raw: str | None, why: str) -> None:
    facts = row9_exposure("SPY", sync_raw, Book("SPY").to_json(), NOW, MAX_AGE_S, KEY, DAY)
    assert isinstance(facts, str) and why in facts


def test_an_unreadable_book_does_not_answer_row_9() -> None:
    assert row9_exposure("SPY", sync(), "[1, 2]", NOW, MAX_AGE_S, KEY, DAY) == "mirror book unreadable"
    assert row9_exposure("SPY", sync(), Book("QQQ").to_json(), NOW, MAX_AGE_S, KEY, DAY) == "mirror book unreadable"


# the sync record is sealed: Redis written by hand gives row 9 no answer ---------------------
@pytest.mark.parametrize("seal", [None, "0" * 64, ""])
def test_a_sync_record_written_by_hand_does_not_answer_row_9(seal: str | None) -> None:
    facts = row9_exposure("SPY", json.dumps({"record": record().to_json(), "seal": seal}), None, NOW, MAX_AGE_S,
                          KEY, DAY)
    assert isinstance(facts, str) and "not sealed" in facts


def test_a_sync_record_without_its_envelope_does_not_answer_row_9() -> None:
    assert not isinstance(row9_exposure("SPY", record().to_json(), None, NOW, MAX_AGE_S, KEY, DAY), Exposure)


def test_a_sync_record_sealed_with_another_key_does_not_answer_row_9() -> None:
    facts = row9_exposure("SPY", seal_record(record(), "x" * 32), None, NOW, MAX_AGE_S, KEY, DAY)
    assert isinstance(facts, str) and "not sealed" in facts


def test_a_sealed_sync_record_altered_by_hand_does_not_answer_row_9() -> None:
    sealed = sync(positions={"SPY": "1"})
    altered = sealed.replace('\\"SPY\\":\\"1\\"', "")  # the position taken out, the seal kept
    assert altered != sealed
    facts = row9_exposure("SPY", altered, None, NOW, MAX_AGE_S, KEY, DAY)
    assert isinstance(facts, str) and "not sealed" in facts


def test_a_position_the_sealed_record_states_skips_row_9_with_its_book_deleted() -> None:
    facts = row9_exposure("SPY", sync(positions={"SPY": "1"}), None, NOW, MAX_AGE_S, KEY, DAY)
    assert isinstance(facts, Exposure) and facts.position_qty == "1"
    assert check_exposure(facts) is not None


def test_open_orders_the_sealed_record_states_skip_row_9_with_the_book_written_flat() -> None:
    facts = row9_exposure("SPY", sync(open_orders={"SPY": 1}), Book("SPY").to_json(), NOW, MAX_AGE_S, KEY, DAY)
    assert isinstance(facts, Exposure) and facts.open_orders == 1
    assert check_exposure(facts) is not None


def test_the_days_entry_count_comes_from_the_sealed_record() -> None:
    facts = row9_exposure("SPY", sync(entries_today=4), None, NOW, MAX_AGE_S, KEY, DAY)
    assert isinstance(facts, Exposure) and facts.entries_today == 4

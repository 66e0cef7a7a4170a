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
from zero_tasks.core.keys import mirror_book_key, mirror_entries_key, mirror_entry_count_key, mirror_order_key
from zero_tasks.core.mirror import (
    IN_SYNC,
    OUT_OF_SYNC,
    SEAL_KIND,
    Book,
    OrderState,
    Position,
    SyncRecord,
    Update,
    answers,
    apply,
    book_from_json,
    book_of,
    exposure_of,
    is_gateway_order,
    row9_exposure,
    seal_record,
    status_view,
    sync_from_json,
)
from zero_tasks.core.task_auth import record_seal

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


# what /health, /metrics and `zero-ops status` show ----------------------------------------
LEASE = {"holder": "host:1", "token": "3"}
STATS = {"resyncs": "2", "events": "40", "refused": "1", "row9_mirror": "5", "row9_rest": "6"}


def test_the_status_of_a_mirror_in_sync_says_who_leads_its_ages_and_its_counters() -> None:
    raw = sync(confirmed=NOW - timedelta(seconds=1.25), last_event_at=(NOW - timedelta(seconds=2.55)).isoformat())
    assert status_view(LEASE, raw, STATS, NOW, MAX_AGE_S, KEY) == {
        "leader": "host:1", "token": "3", "in_sync": True, "state": IN_SYNC, "why_not": None, "epoch": 7,
        "confirmed_age_s": 1.2, "last_event_age_s": 2.5, "resyncs": 2, "events": 40, "refused_writes": 1,
        "row9_from_mirror": 5, "row9_from_rest": 6}


def test_the_status_without_a_trusted_sync_record_says_why_and_shows_no_record() -> None:
    assert status_view({}, None, {}, NOW, MAX_AGE_S, KEY) == {
        "leader": None, "token": None, "in_sync": False, "state": None,
        "why_not": "mirror has no sync record (no consumer in sync)", "epoch": None, "confirmed_age_s": None,
        "last_event_age_s": None, "resyncs": 0, "events": 0, "refused_writes": 0, "row9_from_mirror": 0,
        "row9_from_rest": 0}


def test_the_status_of_a_stale_record_shows_it_with_why_it_does_not_answer() -> None:
    view = status_view(LEASE, sync(confirmed=NOW - timedelta(seconds=10)), STATS, NOW, MAX_AGE_S, KEY)
    assert (view["in_sync"], view["state"], view["why_not"], view["confirmed_age_s"], view["last_event_age_s"]) == (
        False, IN_SYNC, "mirror stale (confirmed 10.0s ago, bound 3s)", 10.0, None)


def test_the_status_shows_a_record_with_an_unreadable_time_without_its_age() -> None:
    view = status_view(LEASE, sync(confirmed_at="garbage", last_event_at="garbage"), STATS, NOW, MAX_AGE_S, KEY)
    assert (view["in_sync"], view["confirmed_age_s"], view["last_event_age_s"]) == (False, None, None)
    assert view["why_not"].startswith("mirror confirmation ")


@pytest.mark.parametrize("value", ["x", "", "1.5"])
def test_a_counter_that_is_not_a_whole_number_counts_as_zero(value: str) -> None:
    assert status_view(LEASE, None, {**STATS, "events": value}, NOW, MAX_AGE_S, KEY)["events"] == 0


@pytest.mark.parametrize(("raw", "answer"), [
    (sync(), True),
    (sync(state=OUT_OF_SYNC), False),
    (sync(confirmed=NOW - timedelta(seconds=MAX_AGE_S + 0.1)), False),
    (sync(confirmed=NOW - timedelta(seconds=MAX_AGE_S)), True),
    (sync(confirmed=NOW + timedelta(seconds=MAX_AGE_S)), True),
    (seal_record(record(), "other" * 8), False),
    (None, False),
])
def test_the_mirror_answers_only_in_sync_sealed_and_fresh(raw: str | None, answer: bool) -> None:
    assert answers(raw, NOW, MAX_AGE_S, KEY) is answer


def test_the_sync_record_states_the_positions_and_open_order_counts_of_the_books() -> None:
    books = {"QQQ": Book("QQQ", None, {"o-2": order(oid="o-2"), "o-3": order(oid="o-3")}),
             "SPY": Book("SPY", Position("2", "2", "500"), {}), "IWM": Book("IWM")}
    assert exposure_of(books) == ({"SPY": "2"}, {"QQQ": 2})


def test_an_order_state_is_stored_as_compact_json_of_all_its_fields() -> None:
    o = replace(order(), legs=("l-1",))
    assert o.to_json() == json.dumps({
        "order_id": "o-1", "client_order_id": "zx-SPY:H30:1", "symbol": "SPY", "side": "buy", "qty": "1",
        "status": "new", "order_class": "simple", "filled_qty": "0", "filled_avg_price": None,
        "updated_at": NOW.isoformat(), "filled_at": None, "legs": ["l-1"]}, separators=(",", ":"))


def test_a_sealed_sync_record_reads_back_as_written() -> None:
    rec = record(positions={"SPY": "1"}, open_orders={"QQQ": 1}, last_event_at=NOW.isoformat())
    assert sync_from_json(seal_record(rec, KEY), KEY) == rec


def test_the_mirrors_keys_name_what_they_hold() -> None:
    assert (mirror_book_key("SPY"), mirror_order_key("zx-1"), mirror_entries_key(DAY), mirror_entry_count_key(DAY)) == (
        "key:execution_mirror_book:SPY", "key:execution_mirror_order:zx-1", "key:execution_mirror_entries:2026-11-24",
        "key:execution_mirror_entry_count:2026-11-24")


def sealed_text(text: str) -> str:
    """`text` sealed as the consumer seals a sync record, whatever it holds."""
    return json.dumps({"record": text, "seal": record_seal(KEY, SEAL_KIND, text)})


@pytest.mark.parametrize(("raw", "why"), [
    (None, "mirror has no sync record (no consumer in sync)"),
    ("{not json", "mirror sync record unreadable"),
    ("[1]", "mirror sync record unreadable"),
    (json.dumps({"record": 5, "seal": "x"}), "mirror sync record unreadable"),
    (json.dumps({"record": record().to_json()}), "mirror sync record not sealed with this gateway's key"),
    (json.dumps({"record": record().to_json(), "seal": 5}), "mirror sync record not sealed with this gateway's key"),
    (sealed_text("[1]"), "mirror sync record unreadable"),
    (sealed_text('{"state": "in_sync"}'), "mirror sync record unreadable"),
    (sealed_text('{"unknown": 1}'), "mirror sync record unreadable"),
])
def test_a_sync_record_that_cannot_be_trusted_says_exactly_why(raw: str | None, why: str) -> None:
    assert sync_from_json(raw, KEY) == why


def test_an_update_stamped_as_the_state_known_replaces_it() -> None:
    book = apply(Book("SPY"), update(order("new")))
    book = apply(book, update(order("partially_filled", qty="2", filled="1"), "partial_fill"))
    assert book.orders["o-1"].status == "partially_filled"


@pytest.mark.parametrize(("known_at", "new_at"), [(None, NOW.isoformat()), (NOW.isoformat(), None),
                                                  ("garbage", NOW.isoformat()), (NOW.isoformat(), "garbage")])
def test_an_update_whose_time_or_the_known_ones_cannot_be_read_replaces_the_state(known_at: str | None,
                                                                                 new_at: str | None) -> None:
    book = Book("SPY", None, {"o-1": replace(order("new"), updated_at=known_at)})
    newer = replace(order("partially_filled", qty="2", filled="1"), updated_at=new_at)
    assert apply(book, Update("partial_fill", newer, NOW.isoformat())).orders["o-1"].status == "partially_filled"


def test_a_sell_fill_leaves_the_average_entry_price_as_it_was() -> None:
    book = Book("SPY", Position("3", "3", "500"))
    sold = order("partially_filled", side="sell", qty="2", filled="1", cid="zs-SPY:1", oid="o-2")
    after = apply(book, update(sold, "partial_fill", position_qty="2", price="510", qty="1"))
    assert after.position == Position("2", "1", "500")
    no_price = apply(book, update(sold, "partial_fill", position_qty="2", qty="1"))
    assert no_price.position == Position("2", "1", "500")


def test_a_first_buy_fills_average_is_its_price_as_the_broker_wrote_it() -> None:
    book = apply(Book("SPY"), update(order("filled", filled="1"), "fill", position_qty="1", price="512.10", qty="1"))
    assert book.position == Position("1", "1", "512.10")


def test_shares_all_held_back_by_sells_leave_none_available() -> None:
    book = Book("SPY", Position("1", "1", "100"))
    held = apply(book, update(order("new", side="sell", qty="1", cid="zp-SPY:1", oid="o-2")))
    assert held.position == Position("1", "0", "100")
    bought = apply(held, update(order("filled", filled="1", oid="o-3"), "fill", position_qty="2", price="100",
                                qty="1"))
    assert bought.position == Position("2", "1", "100")


def test_a_sell_order_whose_quantity_cannot_be_read_holds_nothing_back() -> None:
    book = apply(Book("SPY", Position("3", "3", "100")), update(order("new", side="sell", qty="abc", oid="o-2")))
    assert book.position == Position("3", "3", "100")


def test_an_absent_book_is_the_ticker_flat_and_a_position_without_its_count_is_unreadable() -> None:
    assert book_from_json(None, "SPY") == Book("SPY")
    raw = json.dumps({"ticker": "SPY", "position": {"qty_available": "1"}, "orders": {}})
    assert book_from_json(raw, "SPY") == "mirror book unreadable"


@pytest.mark.parametrize(("position", "kept"), [(None, None), (Position("2", "1", "100"), Position("2", "1", "100")),
                                                (Position("0", "0", None), None)])
def test_a_book_from_the_snapshot_keeps_a_position_that_holds_shares(position: Position | None,
                                                                     kept: Position | None) -> None:
    assert book_of("SPY", position, [order("new")]) == Book("SPY", kept, {"o-1": order("new")})


def test_a_position_the_sealed_record_states_leaves_its_open_orders_out_of_row_9() -> None:
    facts = row9_exposure("SPY", sync(positions={"SPY": "1"}, open_orders={"SPY": 1}), None, NOW, MAX_AGE_S, KEY,
                          DAY)
    assert facts == Exposure("SPY", position_qty="1", open_orders=0, entries_today=0)


def test_a_partly_filled_sell_holds_back_only_what_it_has_left_to_sell() -> None:
    book = Book("SPY", Position("3", "3", "100"))
    selling = order("partially_filled", side="sell", qty="3", filled="1", cid="zs-SPY:1", oid="o-2")
    assert apply(book, update(selling, "partial_fill", position_qty="2", price="101", qty="1")).position == Position(
        "2", "0", "100")


def test_books_and_sync_records_are_stored_as_compact_json_with_sorted_record_keys() -> None:
    book = Book("SPY", Position("1", "1", "100"), {"o-1": order("new")})
    assert book.to_json() == json.dumps(json.loads(book.to_json()), separators=(",", ":"))
    rec = record(positions={"SPY": "1"})
    assert rec.to_json() == json.dumps(json.loads(rec.to_json()), separators=(",", ":"), sort_keys=True)
    assert list(json.loads(rec.to_json())) == sorted(json.loads(rec.to_json()))
    stored = seal_record(rec, KEY)
    assert stored == json.dumps(json.loads(stored), separators=(",", ":"))

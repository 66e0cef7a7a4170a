"""The account mirror, pure: the account as the broker's trade_updates stream tells it,
and row 9's answer from it.

The consumer (zero_tasks/mirror) keeps a `Book` per ticker (the position and the open
orders) and an `OrderState` per client_order_id, built from a REST snapshot at every
(re)connect and moved on by each trade update (`apply`). The worker reads a ticker's
book and the sync record in the same Redis round trip as its veto snapshot and asks
`row9_exposure`: an `Exposure` when the mirror may answer, else the reason it may not
(then row 9 asks the broker, as it always did). No clock is read here: `now` comes in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from zero_tasks.core.checks.exposure import Exposure
from zero_tasks.core.snapshot import json_object, operator_time
from zero_tasks.core.task_auth import record_seal, record_sealed

IN_SYNC, OUT_OF_SYNC = "in_sync", "out_of_sync"
# An order in one of these states is off the book: it can no longer fill.
CLOSED_STATUSES = frozenset({"filled", "canceled", "expired", "rejected", "replaced", "done_for_day", "stopped",
                             "suspended"})
GATEWAY_PREFIXES = ("zx-", "zp-", "zs-")  # entry, protect, horizon sell (the lifecycle's orders)
ENTRY_PREFIX = "zx-"


@dataclass(frozen=True)
class OrderState:
    """One order as the mirror knows it (also an open order in its ticker's book)."""

    order_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: str
    status: str
    order_class: str = "simple"
    filled_qty: str = "0"
    filled_avg_price: str | None = None
    updated_at: str | None = None  # the broker's time of this state (ISO): an older one never overwrites
    filled_at: str | None = None
    legs: tuple[str, ...] = ()  # the legs' order ids (bracket, OCO)

    @property
    def open(self) -> bool:
        return self.status not in CLOSED_STATUSES

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class Position:
    qty: str
    qty_available: str
    avg_entry_price: str | None


@dataclass(frozen=True)
class Book:
    """What one ticker holds at the broker: its position (None: flat) and its open orders."""

    ticker: str
    position: Position | None = None
    orders: dict[str, OrderState] = field(default_factory=dict)  # order_id -> state

    def to_json(self) -> str:
        return json.dumps({"ticker": self.ticker, "position": asdict(self.position) if self.position else None,
                           "orders": {k: asdict(v) for k, v in self.orders.items()}}, separators=(",", ":"))


@dataclass(frozen=True)
class Update:
    """One trade update, as the stream carries it (alpaca-py's TradeUpdate, flattened)."""

    event: str
    order: OrderState
    timestamp: str
    position_qty: str | None = None
    price: str | None = None
    qty: str | None = None


def _later_or_equal(new: str | None, old: str | None) -> bool:
    """Whether a state stamped `new` may replace one stamped `old` (unknown times: yes)."""
    if not new or not old:
        return True
    a, b = operator_time(new), operator_time(old)
    if isinstance(a, str) or isinstance(b, str):
        return True
    return a >= b


def _num(value: str | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


def _fmt(value: float) -> str:
    return f"{value:.9g}"


def _reserved_by_sells(orders: dict[str, OrderState]) -> float:
    """Shares an open sell order holds back from the position (not available to sell)."""
    return sum(_num(o.qty) - _num(o.filled_qty) for o in orders.values() if o.side == "sell")


def _position_after(book: Book, update: Update, orders: dict[str, OrderState]) -> Position | None:
    """The position once a fill is in: `position_qty` is the broker's own count after it."""
    if update.position_qty is None:
        if book.position is None:
            return None
        available = max(0.0, _num(book.position.qty) - _reserved_by_sells(orders))
        return replace(book.position, qty_available=_fmt(available))
    qty = _num(update.position_qty)
    if qty == 0:
        return None
    old_qty = _num(book.position.qty) if book.position else 0.0
    avg = book.position.avg_entry_price if book.position else None
    if update.event in ("fill", "partial_fill") and update.order.side == "buy" and update.price and update.qty:
        bought = _num(update.qty)
        avg = _fmt((old_qty * _num(avg) + bought * _num(update.price)) / (old_qty + bought)) if old_qty > 0 else \
            update.price
    return Position(_fmt(qty), _fmt(max(0.0, qty - _reserved_by_sells(orders))), avg)


def apply(book: Book, update: Update) -> Book:
    """The ticker's book after one trade update. An update older than the order's state
    already known (a replay after the snapshot) changes nothing."""
    known = book.orders.get(update.order.order_id)
    if known is not None and not _later_or_equal(update.order.updated_at, known.updated_at):
        return book
    orders = dict(book.orders)
    if update.order.open:
        orders[update.order.order_id] = update.order
    else:
        orders.pop(update.order.order_id, None)
    return Book(book.ticker, _position_after(book, update, orders), orders)


def book_of(ticker: str, position: Position | None, open_orders: list[OrderState]) -> Book:
    """A ticker's book from the REST snapshot (GET positions, GET open orders)."""
    orders = {o.order_id: o for o in open_orders if o.symbol == ticker and o.open}
    if position is not None and _num(position.qty) == 0:
        position = None
    return Book(ticker, position, orders)


def book_from_json(raw: str | None, ticker: str) -> Book | str:
    """A stored book, or why it cannot be read (an absent key is a flat ticker)."""
    if raw is None:
        return Book(ticker)
    value = json_object(raw)
    if value is None or value.get("ticker") != ticker:
        return "mirror book unreadable"
    try:
        pos = value.get("position")
        position = Position(str(pos["qty"]), str(pos["qty_available"]), pos.get("avg_entry_price")) if pos else None
        orders = {k: _order_from(v) for k, v in (value.get("orders") or {}).items()}
    except (KeyError, TypeError, AttributeError):
        return "mirror book unreadable"
    return Book(ticker, position, orders)


def _order_from(value: dict[str, Any]) -> OrderState:
    legs = tuple(value.get("legs") or ())
    return OrderState(**{**value, "legs": legs})


SEAL_KIND = "mirror_sync"  # task_auth.record_seal's kind for the sync record


@dataclass(frozen=True)
class SyncRecord:
    """The consumer's word on the mirror: in sync since `epoch` began, confirmed at
    `confirmed_at` (the leader confirms while its stream answers pings), and what row 9
    needs, stated rather than left to absent keys: the tickers with a position (`positions`,
    ticker -> qty) or open orders (`open_orders`, ticker -> count), and the gateway's entry
    orders of trading day `entries_day` (`entries_today`; None: not completely counted).

    It is stored sealed (`seal_record`: HMAC under TASK_SIGNING_KEY), so a hand-written,
    altered or unsealed record, or a book deleted by hand, gives row 9 no answer: only a
    record the consumer sealed does, and only while fresh."""

    state: str
    epoch: int
    leader: str
    token: int
    confirmed_at: str
    last_event_at: str | None = None
    positions: dict[str, str] = field(default_factory=dict)
    open_orders: dict[str, int] = field(default_factory=dict)
    entries_day: str | None = None
    entries_today: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)


def exposure_of(books: dict[str, Book]) -> tuple[dict[str, str], dict[str, int]]:
    """The sync record's statement of exposure: positions and open-order counts by ticker."""
    positions = {t: b.position.qty for t, b in sorted(books.items()) if b.position is not None}
    orders = {t: len(b.orders) for t, b in sorted(books.items()) if b.orders}
    return positions, orders


def seal_record(record: SyncRecord, seal_key: str) -> str:
    """The stored form of a sync record: the record's text with its seal."""
    text = record.to_json()
    return json.dumps({"record": text, "seal": record_seal(seal_key, SEAL_KIND, text)}, separators=(",", ":"))


def sync_from_json(raw: str | None, seal_key: str) -> SyncRecord | str:
    """The sync record, or why there is none to trust: absent, unreadable, or not sealed
    with this gateway's key (written or altered by hand)."""
    if raw is None:
        return "mirror has no sync record (no consumer in sync)"
    envelope = json_object(raw)
    text = envelope.get("record") if envelope is not None else None
    if not isinstance(text, str):
        return "mirror sync record unreadable"
    given = envelope.get("seal") if envelope is not None else None
    if not record_sealed(seal_key, SEAL_KIND, text, given if isinstance(given, str) else None):
        return "mirror sync record not sealed with this gateway's key"
    value = json_object(text)
    try:
        return SyncRecord(**value) if value is not None else "mirror sync record unreadable"
    except TypeError:
        return "mirror sync record unreadable"


def _fresh(sync: SyncRecord, now: datetime, max_age_s: float) -> str | None:
    if sync.state != IN_SYNC:
        return f"mirror {sync.state}"
    confirmed = operator_time(sync.confirmed_at)
    if isinstance(confirmed, str):
        return f"mirror confirmation {confirmed}"
    age = (now - confirmed).total_seconds()
    if not -max_age_s <= age <= max_age_s:
        return f"mirror stale (confirmed {age:.1f}s ago, bound {max_age_s:g}s)"
    return None


def row9_exposure(ticker: str, sync_raw: str | None, book_raw: str | None, now: datetime,
                  max_age_s: float, seal_key: str, day: str) -> Exposure | str:
    """Row 9's facts from the mirror (exposure and the day's entry count), or why the
    mirror may not answer (REST then).

    The mirror answers only from a sync record sealed with `seal_key`, in sync and
    confirmed within `max_age_s` of `now` (the record also expires in Redis after that
    long), that counted the entries of trading day `day`. Exposure is what the sealed
    record states; the ticker's book can only add to it (it is written in the same fenced
    step, so they agree unless someone wrote Redis by hand: then the larger wins)."""
    sync = sync_from_json(sync_raw, seal_key)
    if isinstance(sync, str):
        return sync
    stale = _fresh(sync, now, max_age_s)
    if stale:
        return stale
    if sync.entries_day != day or sync.entries_today is None:
        return f"mirror has no count of trading day {day}'s entries"
    book = book_from_json(book_raw, ticker)
    if isinstance(book, str):
        return book
    position = sync.positions.get(ticker) or (book.position.qty if book.position is not None else None)
    orders = max(int(sync.open_orders.get(ticker, 0)), len(book.orders))
    return Exposure(ticker, position_qty=position, open_orders=0 if position is not None else orders,
                    entries_today=sync.entries_today)


def answers(sync_raw: str | None, now: datetime, max_age_s: float, seal_key: str) -> bool:
    """Whether the mirror is in sync, sealed and fresh now: its consumer writes what
    becomes of an order (no follow-up chain is needed)."""
    sync = sync_from_json(sync_raw, seal_key)
    return isinstance(sync, SyncRecord) and _fresh(sync, now, max_age_s) is None


def is_gateway_order(client_order_id: str | None) -> bool:
    return bool(client_order_id) and str(client_order_id).startswith(GATEWAY_PREFIXES)


def _count(stats: dict[str, str], name: str) -> int:
    try:
        return int(stats.get(name, 0))
    except ValueError:
        return 0


def status_view(lease: dict[str, str], sync_raw: str | None, stats: dict[str, str], now: datetime,
                max_age_s: float, seal_key: str) -> dict[str, Any]:
    """The mirror as /health, /metrics and `zero-ops status` show it: who leads, whether
    row 9 may answer from it now, how old its last event is, its counters. The strings in
    it come from Redis (anyone may write there): the caller escapes them for its output."""
    sync = sync_from_json(sync_raw, seal_key)
    record = sync if isinstance(sync, SyncRecord) else None
    answer = sync if record is None else _fresh(record, now, max_age_s)
    confirmed = operator_time(record.confirmed_at) if record else None
    last_event = operator_time(record.last_event_at) if record and record.last_event_at else None
    return {
        "leader": lease.get("holder"),
        "token": lease.get("token"),
        "in_sync": answer is None,
        "state": record.state if record else None,
        "why_not": answer,
        "epoch": record.epoch if record else None,
        "confirmed_age_s": round((now - confirmed).total_seconds(), 1) if isinstance(confirmed, datetime) else None,
        "last_event_age_s": round((now - last_event).total_seconds(), 1) if isinstance(last_event, datetime)
        else None,
        "resyncs": _count(stats, "resyncs"),
        "events": _count(stats, "events"),
        "refused_writes": _count(stats, "refused"),
        "row9_from_mirror": _count(stats, "row9_mirror"),
        "row9_from_rest": _count(stats, "row9_rest"),
    }

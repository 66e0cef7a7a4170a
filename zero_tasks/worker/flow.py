"""The flow of one message, top to bottom, in the decision table's order.

`decide` reads it (decided already? else the snapshot), runs the veto and the admission
(`evaluate`, rows 1-8 and the daily cap), the first broker round (`order_round`: row 9's
exposure, the veto again, the submit) and records the decision. `order_round` alone is a
later round of an order. Each row's judgement is a pure check in zero_tasks/core; this
module fetches the facts and calls them in order. It knows nothing of Celery: a round to
be tried again comes back as `RetryLater`, which the task schedules (tasks.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import redis

from zero_tasks import failpoints
from zero_tasks.adapters import outbox, redis_clock
from zero_tasks.adapters.alpaca_adapter import BrokerRejected, BrokerTransient, PlacedOrder, RateLimitedBroker
from zero_tasks.adapters.mirror_store import count_row9
from zero_tasks.adapters.redis_state import (
    keep_asset,
    kept_asset,
    read_snapshot,
    read_snapshot_with_mirror,
    store_session,
)
from zero_tasks.adapters.risk import RateLimited, alert, trading_day, trading_day_began
from zero_tasks.adapters.runtime import Runtime
from zero_tasks.core.checks.admission import Claim, check_admission
from zero_tasks.core.checks.asset import AssetVerdict, check_asset
from zero_tasks.core.checks.breaker import breaker_probe_due
from zero_tasks.core.checks.exposure import Exposure, check_broker_daily_cap, check_exposure
from zero_tasks.core.contract import client_order_id
from zero_tasks.core.decision import Code, deny
from zero_tasks.core.intake import Invalid, Message, Signal, parse_payload
from zero_tasks.core.mirror import row9_exposure
from zero_tasks.core.pipeline import AT_SUBMIT, recheck_before_submit, veto
from zero_tasks.core.record import DecisionRecord, build_record, invalid_record
from zero_tasks.core.retry import broker_retries_left, broker_retry_countdown, may_wait_for_budget
from zero_tasks.core.snapshot import Snapshot
from zero_tasks.core.task_auth import forged_holdings, forgery_key
from zero_tasks.secrets import cut

log = logging.getLogger(__name__)

# 403 is the account saying no (buying power, pattern day trader): expected, not a fault.
# Other 4xx mean the gateway and the broker disagree: they count towards the breaker.
EXPECTED_REJECTIONS = frozenset({403})
PLACEMENT_CALLS = 4  # open position, open orders, the day's orders, submit
SESSION_CALLS = 2  # the clock and the calendar


def utcnow() -> datetime:
    """Now by the Redis host's clock (redis_clock.py): a worker host whose own clock is off
    judges signal age, market-state age and the session as every other host does."""
    return redis_clock.utcnow()


@dataclass(frozen=True)
class OrderTicket:
    """One order on its way to the broker. Made by the worker only: from the admission in
    `evaluate`, or from an order task by `ticket_from_task`, which takes nothing but the
    message, the attempt count and the time waited from the task (the rest is derived)."""

    msg: Message
    signal: Signal  # parsed once, where the ticket is made; travels with it to the broker
    reentered: bool
    broker_attempt: int = 0  # failed broker rounds so far (network, timeout, 5xx, 429)
    waited_s: float = 0.0  # time spent waiting for the broker rate limit
    # The first round, run inside `decide`: a crash there is redelivered as `decide`, whose
    # claim then says REENTERED, so this round needs no attempt counter.
    in_decide: bool = False
    # Broker calls already taken from this minute's budget, by the admission (first round
    # only: a later round's slots were spent by the round before it).
    prepaid: int = 0
    # The first round's snapshot, read with the account mirror before the veto and the
    # admission: row 9 answered from it sends the order right after them (first round only).
    first_read: Snapshot | None = None

    @property
    def message_id(self) -> str:
        return self.msg.message_id

    @property
    def execution_id(self) -> str:
        return self.signal.execution_id

    @property
    def ticker(self) -> str:
        return self.signal.top.ticker

    def next_attempt(self) -> OrderTicket:
        return replace(self, broker_attempt=self.broker_attempt + 1, in_decide=False, prepaid=0, first_read=None)

    def after_wait(self, seconds: float) -> OrderTicket:
        return replace(self, waited_s=self.waited_s + seconds, in_decide=False, prepaid=0, first_read=None)

    def may_have_reached_the_broker(self, attempts: Callable[[], int]) -> bool:
        """Whether an earlier round may have placed the order: then look it up, never resend.

        A failed round (broker_attempt > 0) or a re-entered claim may have; a later round
        that crashed is seen by the attempt counter (`attempts`, counting this one)."""
        if self.reentered or self.broker_attempt > 0:
            return True
        return not self.in_decide and attempts() > 1

    def to_task(self) -> dict[str, Any]:
        """The order task's argument: only what `ticket_from_task` takes back."""
        return {"message": self.msg.to_task(), "broker_attempt": self.broker_attempt, "waited_s": self.waited_s}


def ticket_from_task(rt: Runtime, body: dict[str, Any]) -> OrderTicket | str:
    """The ticket of an order task, or why the task is not one the worker made.

    Ticker and execution_id come from the payload the message carries, never from the
    task; a later round always looks the order up before it sends (`reentered`) and has
    no broker calls paid in advance."""
    try:
        msg = Message.from_task(body["message"])
    except (KeyError, TypeError, ValueError) as exc:
        return f"message unreadable ({type(exc).__name__})"
    subject = signal_of(rt, msg)
    if not isinstance(subject, Signal):
        return f"payload is not an order-worthy signal ({cut(subject.reason, 120)})"
    attempt, waited = body.get("broker_attempt"), body.get("waited_s")
    if not (type(attempt) is int and 0 <= attempt <= rt.settings.broker_max_retries):
        return f"broker_attempt {attempt!r} out of range"
    if not ((type(waited) is int or type(waited) is float) and 0 <= waited <= rt.settings.rate_limit_max_wait_s):
        return f"waited_s {waited!r} out of range"
    return OrderTicket(msg, subject, reentered=True, broker_attempt=attempt, waited_s=float(waited))


def foreign_reservations(rt: Runtime, ticket: OrderTicket) -> str | None:
    """Why the claim, cooldown and day's slot this order would use are not its own."""
    holdings = rt.locks.holdings(ticket.execution_id, ticket.ticker, rt.daily_cap.key(ticket.msg.received_at))
    return forged_holdings(holdings, ticket.message_id, ticket.execution_id, ticket.ticker)


@dataclass(frozen=True)
class RetryLater:
    """A broker round to run again after `countdown_s` (the broker failed, or this minute's
    budget is spent): the task schedules it; nothing is decided yet."""

    ticket: OrderTicket
    countdown_s: float


def decide(rt: Runtime, msg: Message, now_fn: Callable[[], datetime] = utcnow) -> DecisionRecord | RetryLater | None:
    """One message, top to bottom: read, veto and admit, exposure, the veto again, submit,
    record. None: the message is decided already (this is a copy of its task).

    Raises outbox.DecisionNotRecorded when Redis cannot keep the decision (the task
    requeues the message)."""
    if failpoints.ARMED:
        failpoints.hit("decide_start")  # the several-hosts tests hold a task here (taken, nothing done)
    subject = signal_of(rt, msg)  # the payload, parsed once; it travels in the ticket
    snap = None
    if isinstance(subject, Signal):
        snap = outbox.complete_or_snapshot(rt, msg.message_id, subject.top.ticker)  # read, with the outbox
        if snap is None:
            return None
    elif outbox.complete_if_decided(rt, msg.message_id):
        return None
    outcome = judged(rt, msg, subject, snap, now_fn)
    if isinstance(outcome, OrderTicket):
        return order_round(rt, outcome, now_fn)  # rows 9-12, and the decision recorded
    return outbox.record(rt, outcome)


def decide_many(rt: Runtime, msgs: list[Message],
                now_fn: Callable[[], datetime] = utcnow) -> list[DecisionRecord | RetryLater | None]:
    """A batch of messages (those a bridge heard together, in a burst), each decided as by
    `decide` and in their order; only the I/O is shared: the outbox and every snapshot read
    in one round trip, the final decisions kept in one. None for a message decided already.

    The batch's read is trusted only while no time has passed at the broker: an admitted
    message has its first broker round right where it stands, with row 9 and the veto
    again over a snapshot read just before its submit (never the batch's), and every
    message after it reads its own snapshot; so a kill switch turned off, or a breaker
    opened, while a batch is at the broker stops the batch's later orders as it would stop
    the next task's.

    Raises outbox.DecisionNotRecorded as `decide` does: the batch runs again, and what
    this run decided is then only completed."""
    if failpoints.ARMED:
        failpoints.hit("decide_start")
    subjects = [signal_of(rt, msg) for msg in msgs]
    reads = outbox.complete_or_snapshots(rt, [(msg.message_id, s.top.ticker if isinstance(s, Signal) else None)
                                                for msg, s in zip(msgs, subjects, strict=True)])
    outcomes: list[DecisionRecord | RetryLater | None] = [None] * len(msgs)
    final: list[tuple[int, DecisionRecord]] = []
    seen: set[str] = set()
    at_broker = False  # a broker round (or probe) ran in this batch: its read is old now
    for i, (msg, subject, (decided, read)) in enumerate(zip(msgs, subjects, reads, strict=True)):
        if decided or msg.message_id in seen:
            continue  # completed by the read; or a copy of a message of this batch
        seen.add(msg.message_id)
        probe_due = read is not None and breaker_probe_due(read.breaker, now_fn())
        at_broker = at_broker or probe_due
        outcome = judged(rt, msg, subject, None if at_broker else read, now_fn)  # None: its own read
        if isinstance(outcome, OrderTicket):
            outcomes[i] = order_round(rt, replace(outcome, first_read=None), now_fn)
            at_broker = True
        else:
            final.append((i, outcome))
    for (i, _), kept in zip(final, outbox.record_many(rt, [rec for _, rec in final]), strict=True):
        outcomes[i] = kept
    return outcomes


def judged(rt: Runtime, msg: Message, subject: Signal | Invalid, snap: Snapshot | None,
           now_fn: Callable[[], datetime]) -> DecisionRecord | OrderTicket:
    """`evaluate`, where anything unforeseen ends as one ERROR decision, not a lost message."""
    try:
        return evaluate(rt, msg, subject, snap, now_fn())  # rows 1-8 and the daily cap
    except Exception as exc:
        log.exception("decide failed for %s", msg.message_id)
        return unexpected(msg, subject, exc, now_fn())


def order_round(rt: Runtime, ticket: OrderTicket,
                now_fn: Callable[[], datetime] = utcnow) -> DecisionRecord | RetryLater:
    """One broker round of an admitted order, recorded; or when to run it again.

    The retry policy (core/retry.py): a spent broker budget waits, as long as the settings
    allow, then BLOCKED; a broker failure with an unknown answer (network, timeout, 5xx,
    429) is tried again after a backoff, up to BROKER_MAX_RETRIES, then ERROR; a broker
    refusal and every veto are final."""
    settings = rt.settings
    try:
        outcome = place(rt, ticket, now_fn)
    except RateLimited as exc:
        if may_wait_for_budget(ticket.waited_s, exc.wait_s, settings.rate_limit_max_wait_s):
            log.info("rate limit for %s: waiting %.1fs", ticket.execution_id, exc.wait_s)
            return RetryLater(ticket.after_wait(exc.wait_s), exc.wait_s)
        outcome = rate_limited(rt, ticket, f"{settings.broker_requests_per_min} broker calls/min spent; "
                                           f"waited {ticket.waited_s:.0f}s of {settings.rate_limit_max_wait_s}s",
                               now_fn())
    except BrokerTransient as exc:
        if broker_retries_left(ticket.broker_attempt, settings.broker_max_retries):
            countdown = broker_retry_countdown(ticket.broker_attempt, settings.broker_retry_backoff_max_s,
                                               exc.retry_after)
            log.warning("broker transient for %s (%s); attempt %d in %ss",
                        ticket.execution_id, exc.detail, ticket.broker_attempt + 2, countdown)
            return RetryLater(ticket.next_attempt(), countdown)
        outcome = exhausted(rt, ticket, f"broker unavailable after {ticket.broker_attempt + 1} attempts: {exc.detail}",
                            now_fn())
    except Exception as exc:  # ends as one ERROR decision
        log.exception("order attempt failed for %s", ticket.execution_id)
        outcome = unexpected(ticket.msg, ticket.signal, exc, now_fn())
    return outbox.record(rt, outcome)


def signal_of(rt: Runtime, msg: Message) -> Signal | Invalid:
    if msg.invalid_reason is not None:
        return Invalid(msg.invalid_reason, msg.invalid_id or f"invalid:{msg.message_id}",
                       msg.hint_ticker, msg.hint_horizon)
    return parse_payload(msg.payload or "", rt.settings.max_payload_bytes)


def evaluate(rt: Runtime, msg: Message, subject: Signal | Invalid, snap: Snapshot | None,
             now: datetime) -> DecisionRecord | OrderTicket:
    """Rows 1-8 and the daily cap. A record is a final decision; a ticket goes to the broker.

    `snap` is the snapshot read together with the outbox check (outbox.complete_or_snapshot);
    None only for an invalid message, which needs none."""
    if isinstance(subject, Invalid):
        return invalid_record(msg, subject, now)
    ticker, exec_id = subject.top.ticker, subject.execution_id
    snap = probe_breaker_if_due(rt, snap or read_snapshot(rt.redis, ticker), ticker, now)
    asks_broker = snap.session is None and not snap.error  # then time passes: row 9 reads again
    snap = with_session(rt, snap, now)
    denial = veto(subject, snap, now, rt.limits)  # rows 2-6
    if denial:
        return build_record(msg, subject, denial, snap.market_state, now)
    try:
        admission = rt.locks.admit(exec_id, msg.message_id, ticker, now, rt.daily_cap.key(msg.received_at),
                                   rt.daily_cap.cap, msg.received_at, budget=rt.rate_limit, slots=PLACEMENT_CALLS)
    except redis.RedisError as exc:
        return build_record(msg, subject,
                            deny(Code.ERROR, f"redis unavailable during claim ({type(exc).__name__}); no order"),
                            snap.market_state, now)
    refused = check_admission(admission, exec_id, ticker, rt.daily_cap.cap, trading_day(msg.received_at))
    if refused:
        return build_record(msg, subject, refused, snap.market_state, now)
    return OrderTicket(msg, subject, admission.claim is Claim.REENTERED, in_decide=True, prepaid=admission.prepaid,
                       first_read=None if asks_broker else snap)


def with_session(rt: Runtime, snap: Snapshot, now: datetime) -> Snapshot:
    """The snapshot with the trading session known. The answer kept in Redis serves every
    worker and bridge until the session opens or closes; when it has run out (or never
    was), this worker asks the broker, from the broker budget. A broker that cannot say
    leaves the session unknown, and row 3 blocks (fail closed)."""
    if snap.error or snap.session is not None:
        return snap
    try:
        rt.rate_limit.acquire("session", SESSION_CALLS)
        current = rt.broker.trading_session(now)
    except (BrokerTransient, BrokerRejected, RateLimited, redis.RedisError) as exc:
        return replace(snap, session_error=f"{type(exc).__name__}: {cut(str(exc), 160)}")
    if isinstance(current, str):
        return replace(snap, session_error=cut(current, 200))
    try:
        store_session(rt.redis, current, now)
    except redis.RedisError as exc:
        log.warning("trading session not kept in Redis (%s); asked again next time", type(exc).__name__)
    return replace(snap, session=current.to_json())


def probe_breaker_if_due(rt: Runtime, snap: Snapshot, ticker: str, now: datetime) -> Snapshot:
    """An open breaker past its cool-off closes only after a successful broker probe."""
    if not breaker_probe_due(snap.breaker, now):
        return snap
    try:
        detail = rt.broker.probe()
    except (BrokerTransient, BrokerRejected) as exc:
        rt.breaker.reopen(f"probe failed: {exc}", now)
        alert(rt.redis, "breaker_probe_failed", detail=cut(str(exc), 200), at=now)
        return read_snapshot(rt.redis, ticker)
    rt.breaker.close()
    alert(rt.redis, "breaker_closed", by="probe", detail=detail, at=now)
    log.warning("circuit breaker closed after a successful probe (%s)", detail)
    return read_snapshot(rt.redis, ticker)


def place(rt: Runtime, ticket: OrderTicket, now_fn: Callable[[], datetime] = utcnow) -> DecisionRecord:
    """Rows 9-12: exposure, the veto again, submit. Raises BrokerTransient when the broker's answer is
    unknown (retry) and RateLimited when the broker budget of this minute is spent (wait, then retry)."""
    msg, subject = ticket.msg, ticket.signal
    ticker, exec_id = ticket.ticker, ticket.execution_id
    cid = client_order_id(exec_id)
    broker = RateLimitedBroker(rt.broker, rt.rate_limit, prepaid=ticket.prepaid)
    lookup_first = ticket.may_have_reached_the_broker(lambda: rt.locks.count_attempt(exec_id))
    broker.prepay(PLACEMENT_CALLS + (1 if lookup_first else 0) - ticket.prepaid)

    if lookup_first:
        existing = broker.find_order(cid)  # never resubmit blindly
        if existing:
            return _submitted(rt, msg, subject, existing, now_fn(), "found by client_order_id on retry")

    now = now_fn()
    day = trading_day(now)
    known = _kept_asset(rt, day, ticker)
    raw_snap, exposure, row9_source = row9_facts(rt, broker, ticker, now_fn, ticket.first_read, known)
    try:
        return _veto_and_submit(rt, ticket, broker, raw_snap, exposure, known, now_fn)
    finally:
        _count_row9(rt, row9_source)  # after the order went out: never on its path


def _veto_and_submit(rt: Runtime, ticket: OrderTicket, broker: RateLimitedBroker, raw_snap: Snapshot,
                     exposure: Exposure, known: AssetVerdict | None,
                     now_fn: Callable[[], datetime]) -> DecisionRecord:
    """Rows 9-12 once row 9's facts and the snapshot are read: exposure, the asset, the
    broker's count of the day, the veto, submit."""
    msg, subject = ticket.msg, ticket.signal
    ticker, exec_id = ticket.ticker, ticket.execution_id
    cid = client_order_id(exec_id)
    checked_at = now_fn()
    day = trading_day(checked_at)
    if known is None and exposure.asset is not None:
        _keep_asset(rt, day, exposure.asset)
    held = check_exposure(exposure)  # row 9: one position per ticker
    if held is None:
        held = check_asset(ticker, known or exposure.asset)  # a tradable US equity, as the broker says
    if held is None:
        held = check_broker_daily_cap(exposure, rt.daily_cap.cap, day)
    if held:
        # A copy of this very task (a redelivery running beside it) may have placed the
        # order since the lookup: that exposure is this decision's own order, not a reason
        # to skip it and give its cooldown and day's slot back.
        own = broker.find_order(cid)
        if own:
            return _submitted(rt, msg, subject, own, now_fn(), "placed by a copy of this task")
        _release(rt, exec_id, ticker, msg, claim=False)
        return build_record(msg, subject, held, None, now_fn())
    snap = with_session(rt, raw_snap, checked_at)
    denial = recheck_before_submit(subject, snap, checked_at, rt.limits)
    if denial:
        _release(rt, exec_id, ticker, msg, claim=True)
        return build_record(msg, subject, deny(denial.code, f"{AT_SUBMIT}: {denial.detail}"), snap.market_state,
                            now_fn())

    try:
        order = broker.submit_buy(ticker, cid)
        if failpoints.ARMED:
            failpoints.hit("after_submit")
    except BrokerRejected as exc:
        if exc.status == 422:  # a reused client_order_id: it is already placed
            existing = broker.find_order(cid)
            if existing:
                return _submitted(rt, msg, subject, existing, now_fn(), "already placed (422 on reuse)",
                                  snap.market_state)
        _release(rt, exec_id, ticker, msg, claim=False)
        if about_the_asset(exc):  # the symbol, not the broker: no failure, never toward the breaker
            return build_record(msg, subject, deny(Code.INVALID, f"{ticker} is not a tradable US equity "
                                                                f"(the broker refused it: {exc.status} {exc.detail})"),
                                snap.market_state, now_fn())
        if exc.status not in EXPECTED_REJECTIONS:
            broker_failed(rt, f"broker rejected {exc.status}: {exc.detail}", now_fn())
        return build_record(msg, subject, deny(Code.BROKER_REJECTED, f"{exc.status} {exc.detail}"),
                            snap.market_state, now_fn())
    return _submitted(rt, msg, subject, order, now_fn(), None, snap.market_state)


def about_the_asset(exc: BrokerRejected) -> bool:
    """A 4xx about the symbol itself (unknown, not tradable, inactive, not an equity): the
    message's fault, like an invalid payload, not the broker's."""
    return exc.status in (403, 404, 422) and "asset" in exc.detail.lower()


def _kept_asset(rt: Runtime, day: str, ticker: str) -> AssetVerdict | None:
    try:
        return kept_asset(rt.redis, day, ticker)
    except redis.RedisError:  # asked of the broker, with row 9
        return None


def _keep_asset(rt: Runtime, day: str, verdict: AssetVerdict) -> None:
    try:
        keep_asset(rt.redis, day, verdict)
    except redis.RedisError as exc:
        log.warning("asset verdict of %s not kept (%s); asked again next time", verdict.symbol, type(exc).__name__)


def row9_facts(rt: Runtime, broker: RateLimitedBroker, ticker: str, now_fn: Callable[[], datetime],
               first_read: Snapshot | None = None, known: AssetVerdict | None = None) -> tuple[Snapshot, Exposure, str]:
    """The veto's snapshot and row 9's facts, and where row 9 took them (`mirror`, `rest`).

    Row 9's facts are the ticker's exposure, the broker's count of the trading day's entry
    orders (the daily cap) and, when no verdict on the asset is kept (`known`), the
    broker's word on the symbol: every path has all three.

    From the account mirror only through a sync record sealed with TASK_SIGNING_KEY, in
    sync, fresh (core/mirror.row9_exposure): the first round has the snapshot its veto and
    admission judged, read with the mirror in the message's first round trip
    (`first_read`); when the mirror answers from it and the asset is known, the order goes
    right after the admission, without another read. Otherwise (a later round, or a first
    read without the mirror) one Redis round trip reads the snapshot with the mirror again
    (and, with the asset to ask of the broker, once more after it). When the mirror cannot
    answer, the broker is asked (its reads in parallel, one round trip) and the snapshot
    read again once it has answered: what holds at the submit, as before."""
    now = now_fn()
    day, began = trading_day(now), trading_day_began(now)
    if not rt.settings.mirror_row9:  # the operator's choice: the broker answers, always
        exposure = broker.exposure(ticker, began, look_up_asset=known is None)
        return read_snapshot(rt.redis, ticker), exposure, "rest"
    seal_key, max_age_s = rt.settings.task_signing_key.get_secret_value(), rt.settings.mirror_max_age_s
    if known is not None and first_read is not None and first_read.mirror_read and not first_read.error:
        answer = row9_exposure(ticker, first_read.mirror_sync, first_read.mirror_book, now_fn(), max_age_s,
                               seal_key, day)
        if isinstance(answer, Exposure):
            return first_read, answer, "mirror"
    snap, sync, book = read_snapshot_with_mirror(rt.redis, ticker)
    mirrored = row9_exposure(ticker, sync, book, now_fn(), max_age_s, seal_key, day)
    if isinstance(mirrored, Exposure):
        if known is None:  # the asset from the broker (once a day per ticker); then what holds now
            return read_snapshot(rt.redis, ticker), replace(mirrored, asset=broker.asset(ticker)), "mirror"
        return snap, mirrored, "mirror"
    log.debug("row 9 for %s from the broker: %s", ticker, mirrored)
    exposure = broker.exposure(ticker, began, look_up_asset=known is None)
    return read_snapshot(rt.redis, ticker), exposure, "rest"


def _count_row9(rt: Runtime, source: str) -> None:
    try:
        count_row9(rt.redis, source)
    except redis.RedisError:
        log.debug("row 9 answer not counted (redis down)")


def _submitted(rt: Runtime, msg: Message, subject: Signal, order: PlacedOrder, now: datetime,
               note: str | None, market_raw: str | None = None) -> DecisionRecord:
    submitted_at = datetime.fromisoformat(order.submitted_at) if order.submitted_at else now
    try:
        pipe = rt.redis.pipeline()
        rt.locks.confirm_cooldown(subject.top.ticker, subject.execution_id, submitted_at, pipe)
        rt.breaker.success(pipe)
        pipe.execute()
    except redis.RedisError:
        log.warning("cooldown for %s not confirmed (redis down); the reservation still holds", subject.top.ticker)
    detail = f"1 share {subject.top.ticker} buy market day"
    if note:
        detail += f" ({note})"
    if market_raw is None:
        market_raw = read_snapshot(rt.redis).market_state
    return build_record(msg, subject, deny(Code.SUBMITTED, detail), market_raw, now, order)


def _release(rt: Runtime, execution_id: str, ticker: str, msg: Message, claim: bool) -> None:
    """No order exists: give back the ticker, the day's slot and (when no order was even
    attempted) the execution_id, so a later decision is not stopped by this one."""
    try:
        rt.locks.release_cooldown(ticker, execution_id)
        rt.daily_cap.release(execution_id, msg.received_at)
        if claim:
            rt.locks.release_claim(execution_id, msg.message_id)
    except redis.RedisError:
        log.warning("could not release the reservations of %s (redis down); they expire by TTL", execution_id)


def broker_failed(rt: Runtime, reason: str, now: datetime) -> None:
    """Count a broker failure towards the circuit breaker; announce when it opens."""
    try:
        change = rt.breaker.failure(reason, now)
        if change.opened:
            log.error("circuit breaker OPEN after %d consecutive broker failures: %s", change.failures, reason)
            alert(rt.redis, "breaker_opened", reason=reason, failures=change.failures, at=now)
    except redis.RedisError:
        log.warning("could not count a broker failure (redis down)")


def rate_limited(rt: Runtime, ticket: OrderTicket, detail: str, now: datetime) -> DecisionRecord:
    """Waited as long as allowed for the broker budget: BLOCKED, nothing placed."""
    _release(rt, ticket.execution_id, ticket.ticker, ticket.msg, claim=True)
    return build_record(ticket.msg, ticket.signal, deny(Code.RATE_LIMIT, detail), None, now)


def exhausted(rt: Runtime, ticket: OrderTicket, detail: str, now: datetime) -> DecisionRecord:
    """Retries are used up: ERROR. Reservations stay unless the broker shows no order."""
    try:
        if rt.broker.find_order(client_order_id(ticket.execution_id)) is None:
            _release(rt, ticket.execution_id, ticket.ticker, ticket.msg, claim=False)
    except Exception:  # noqa: BLE001 - unknown state: keep the reservations (fail closed)
        log.warning("order state of %s unknown; cooldown and daily slot kept", ticket.execution_id)
    broker_failed(rt, detail, now)
    return build_record(ticket.msg, ticket.signal, deny(Code.ERROR, detail), None, now)


def unexpected(msg: Message, subject: Signal | Invalid, exc: BaseException, now: datetime) -> DecisionRecord:
    """Any error nobody foresaw still ends as one ERROR decision, not a lost message."""
    reason = f"unexpected {type(exc).__name__}: {cut(str(exc), 200)}"
    return build_record(msg, subject, deny(Code.ERROR, reason), None, now)


def forged_record(task: str, argument: object, problem: str, now: datetime) -> DecisionRecord:
    """The one decision of a refused task, under a key no real message has (task_auth)."""
    key = forgery_key(task, argument)
    msg = Message(key, now, None)
    return build_record(msg, Invalid("", key), deny(Code.ERROR, f"forged task {task}: {cut(problem, 300)}"), None, now)

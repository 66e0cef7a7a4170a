"""One step of a position's lifecycle: read the facts, decide (core/lifecycle/rules.py),
do at most one broker action, record, reschedule.

Driven by the durable schedule in Redis (adapters/lifecycle_store.py): the beat's tick
takes the due executions and sends one sealed step task each (tasks.py); a step is
claimed per execution, so one runs at a time. The facts are read by REST (the account
mirror's nudge only makes a step sooner): the position FIRST, then the orders by their
client_order_ids, so a fill landing between the reads is seen as a fill (an order read
after the position can only be further along), never as someone else's sale.

Every order is a decision like an entry (one TradeUpdate, one execution_log row, through
the same outbox), under a key of its own per execution: `<execution_id>#protect`,
`#exit`, `#protect-deferred`, `#exit-deferred`; so a step that runs again after a crash
finds the decision kept, and the broker finds the order by its deterministic
client_order_id (looked up before any send). The outcome goes through the outbox too (outbox.keep_outcome).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from zero_tasks import failpoints
from zero_tasks.adapters import lifecycle_store as store
from zero_tasks.adapters import outbox
from zero_tasks.adapters.alpaca_adapter import BrokerRejected, BrokerTransient, PlacedOrder
from zero_tasks.adapters.market_data import atr_at
from zero_tasks.adapters.metrics import observe_outcome
from zero_tasks.adapters.redis_state import read_snapshot
from zero_tasks.adapters.risk import RateLimited
from zero_tasks.adapters.runtime import Runtime
from zero_tasks.core.checks.market_state import market_state_snapshot
from zero_tasks.core.contract import client_order_id, exit_client_order_id, protect_client_order_id
from zero_tasks.core.decision import Status
from zero_tasks.core.lifecycle.atr import DATA_TRIES
from zero_tasks.core.lifecycle.gate import exit_gate
from zero_tasks.core.lifecycle.horizon import due_time
from zero_tasks.core.lifecycle.outcome import outcome_of
from zero_tasks.core.lifecycle.prices import protect_prices
from zero_tasks.core.lifecycle.rules import ExitAction, Step, decide_exit
from zero_tasks.core.lifecycle.state import Facts, LifecycleRecord, Policy
from zero_tasks.core.record import DecisionRecord
from zero_tasks.core.snapshot import Snapshot
from zero_tasks.worker.flow import forged_record, utcnow, with_session

log = logging.getLogger(__name__)

CALENDAR_DAYS = 21  # enough sessions for HWEEK (1950 trading minutes) across any holidays


@dataclass(frozen=True)
class StepResult:
    action: str
    reason: str


def step(rt: Runtime, execution_id: str, now_fn: Callable[[], datetime] = utcnow) -> StepResult:
    """One claimed step of one execution. Raises redis.RedisError when Redis is away (the
    lease in the due set brings the step back)."""
    ttl_ms = rt.settings.task_time_limit_s * 1000
    if not store.claim_step(rt.redis, execution_id, ttl_ms):
        return StepResult("busy", "another step of this execution is running")
    try:
        try:
            rec = store.load(rt.redis, execution_id, _key(rt))
        except (store.ForgedRecord, ValueError, TypeError, KeyError) as exc:
            return _refuse_record(rt, execution_id, str(exc) if isinstance(exc, store.ForgedRecord)
                                  else f"lifecycle record unreadable ({type(exc).__name__})", now_fn())
        if rec is None or rec.finished:
            store.drop(rt.redis, execution_id)
            return StepResult("none", "no lifecycle" if rec is None else f"finished: {rec.finished}")
        return _run(rt, rec.but(policy=Policy(rt.settings.exit_policy)), now_fn)
    finally:
        store.release_step(rt.redis, execution_id)


def _key(rt: Runtime) -> str:
    return rt.settings.task_signing_key.get_secret_value()


def _refuse_record(rt: Runtime, execution_id: str, problem: str, now: datetime) -> StepResult:
    """A record the gateway did not seal: off the schedule, one ERROR decision, no broker call."""
    log.warning("lifecycle %s refused: %s", execution_id[:80], problem)
    store.drop(rt.redis, execution_id)
    outbox.record(rt, forged_record("lifecycle record", execution_id, problem, now))
    return StepResult("refused", problem)


def _run(rt: Runtime, rec: LifecycleRecord, now_fn: Callable[[], datetime]) -> StepResult:
    """The lifecycle keeps the broker's time: the horizon is counted on the broker's
    calendar and judged by its clock (one GET /v2/clock per step), and the next step is
    scheduled on the gateway's clock by the same delay. Against Alpaca the two agree; a
    simulator's clock moved on (tests) moves the lifecycle with it and nothing else."""
    look = timedelta(seconds=rt.settings.lifecycle_look_every_s)
    now = now_fn()
    try:
        rt.rate_limit.acquire("exit-reads", _reads(rec, now), exit_order=True)
        offset = rt.exits.clock() - now
        rec = _with_due_time(rt, rec)
        facts = read_facts(rt, rec, now + offset)
        if facts.entry is not None and not facts.entry.open and rec.entry_fill is None:
            rec = rec.but(entry_fill=facts.entry)
        rec = _with_atr(rt, rec, facts, now + offset)
    except RateLimited as exc:
        store.schedule(rt.redis, rec.execution_id, now + timedelta(seconds=exc.wait_s))
        return StepResult("wait", str(exc))
    except (BrokerTransient, BrokerRejected) as exc:
        store.save(rt.redis, rec, _key(rt))
        store.schedule(rt.redis, rec.execution_id, now + look)
        return StepResult("wait", f"broker: {exc}")
    snap = with_session(rt, read_snapshot(rt.redis, rec.ticker), now)
    rec = _complete(rt, rec, facts, snap, now)
    gate = exit_gate(snap, now, rt.limits)
    action = decide_exit(rec, facts, gate, now + offset, look)
    log.info("lifecycle %s: %s (%s: %s)", rec.execution_id, action.step.value, action.rule, action.reason)
    next_at = now + offset + look
    try:
        rec, next_at = _act(rt, rec, facts, action, snap, now + offset, now_fn)
    except RateLimited as exc:
        next_at = now + offset + timedelta(seconds=exc.wait_s)
    except BrokerTransient as exc:
        log.warning("lifecycle %s: %s not known to have reached the broker (%s); looked up next step",
                    rec.execution_id, action.step.value, exc.detail)
    except BrokerRejected as exc:
        log.warning("lifecycle %s: %s refused by the broker (%s); looked at again next step",
                    rec.execution_id, action.step.value, exc)
    if rec.finished:
        store.finish(rt.redis, rec, _key(rt))
    else:
        store.save(rt.redis, rec, _key(rt))
        store.schedule(rt.redis, rec.execution_id, next_at - offset)
    return StepResult(action.step.value, action.reason)


def _complete(rt: Runtime, rec: LifecycleRecord, facts: Facts, snap: Snapshot, now: datetime) -> LifecycleRecord:
    """An order at the broker whose decision a crashed step did not keep (the order went
    out, the worker died before recording it): recorded now, found by its client_order_id.
    The outbox keeps the first decision of a key, so this never records one twice."""
    if facts.target_leg is not None and rec.protect_order_id is None:
        order = PlacedOrder(facts.target_leg.order_id, protect_client_order_id(rec.execution_id),
                            facts.target_leg.status, None)
        _record(rt, rec, "protect", Status.SUBMITTED, f"submitted: protect {rec.ticker} OCO (found by "
                "client_order_id)", snap, now, intent="protect", exit_reason="target_stop", order=order)
        rec = rec.but(protect_order_id=order.order_id)
    if facts.horizon_sell is not None and not rec.sell_recorded:
        order = PlacedOrder(facts.horizon_sell.order_id, exit_client_order_id(rec.execution_id),
                            facts.horizon_sell.status, None)
        _record(rt, rec, "exit", Status.SUBMITTED, f"submitted: {rec.ticker} sell market day (horizon "
                f"{rec.horizon} reached; found by client_order_id)", snap, now, intent="exit",
                exit_reason="horizon", order=order)
        rec = rec.but(sell_recorded=True)
    return rec


def _reads(rec: LifecycleRecord, now: datetime) -> int:
    """The broker calls this step's reads take from the budget (read_facts, the clock, the calendar)."""
    protect = rec.protect_order_id is not None or (rec.policy is Policy.ZERO and not rec.protect_skipped)
    due = rec.due_at is None or now >= rec.due_at - timedelta(minutes=5)
    return 2 + (rec.entry_fill is None) + protect + due + (rec.due_at is None)


def _with_due_time(rt: Runtime, rec: LifecycleRecord) -> LifecycleRecord:
    """The horizon's due time, from the broker's calendar, once."""
    if rec.due_at is not None:
        return rec
    start = rec.rank_time.date() - timedelta(days=1)
    sessions = rt.exits.sessions(start, start + timedelta(days=CALENDAR_DAYS))
    due = due_time(rec.rank_time, rec.horizon, sessions, timedelta(seconds=rt.settings.exit_close_buffer_s))
    if isinstance(due, str):
        raise BrokerTransient(f"horizon due time unknown: {due}")
    return rec.but(due_at=due)


def read_facts(rt: Runtime, rec: LifecycleRecord, now: datetime) -> Facts:
    """What the broker says now: the position first, then the orders (module docstring)."""
    exits, exec_id = rt.exits, rec.execution_id
    position = exits.position(rec.ticker)
    entry = rec.entry_fill or exits.order(client_order_id(exec_id))  # an ended entry is not read again
    target = stop = None
    if rec.protect_order_id or (rec.policy is Policy.ZERO and not rec.protect_skipped):
        legs = exits.protect(protect_client_order_id(exec_id), rec.protect_order_id)
        if legs is not None:
            target, stop = legs
    sell = exits.order(exit_client_order_id(exec_id)) if rec.due(now) else None
    return Facts(entry, position, target, stop, sell)


def _with_atr(rt: Runtime, rec: LifecycleRecord, facts: Facts, broker_now: datetime) -> LifecycleRecord:
    """The ATR at the ranking's time, once, when a protect is about to be placed; a read that
    got no answer is tried again at the next looks (atr.DATA_TRIES in all), until the
    horizon (then rule 7 says there is no protect)."""
    entry = facts.entry
    pending = rec.policy is Policy.ZERO and not facts.protect_placed and not rec.protect_skipped
    if not pending or rec.atr is not None or rec.atr_note or entry is None or entry.open or not entry.filled_qty:
        return rec
    if rec.due(broker_now):
        return rec
    try:
        value = atr_at(rt.market_data, rec.ticker, rec.rank_time)
    except BrokerTransient as exc:
        tries = rec.atr_tries + 1
        if tries < DATA_TRIES:
            log.warning("lifecycle %s: market data got no answer (%s), try %d of %d: asked again next look",
                        rec.execution_id, exc.detail, tries, DATA_TRIES)
            return rec.but(atr_tries=tries)
        value = f"market data unavailable after {tries} tries ({exc.detail[:160]})"
    return rec.but(atr=value) if isinstance(value, float) else rec.but(atr_note=value)


def _act(rt: Runtime, rec: LifecycleRecord, facts: Facts, action: ExitAction, snap: Snapshot,
         broker_now: datetime, now_fn: Callable[[], datetime]) -> tuple[LifecycleRecord, datetime]:
    """Do the action; the record as it is now, and when (broker's time) to step again."""
    now = now_fn()
    soon = broker_now + timedelta(seconds=rt.settings.lifecycle_tick_s)
    later = action.at or broker_now + timedelta(seconds=rt.settings.lifecycle_look_every_s)
    if action.step is Step.WAIT:
        return rec, later
    if action.step is Step.DEFER:
        if rec.due(broker_now):
            _record(rt, rec, "exit-deferred", Status.BLOCKED, action.reason, snap, now, intent="exit",
                    exit_reason="horizon")
            return rec.but(exit_deferred=True), later
        _record(rt, rec, "protect-deferred", Status.BLOCKED, action.reason, snap, now, intent="protect",
                exit_reason="target_stop")
        return rec.but(protect_deferred=True), later
    if action.step is Step.NO_PROTECT:
        _record(rt, rec, "protect", Status.SKIPPED, action.reason, snap, now, intent="protect",
                exit_reason="target_stop")
        return rec.but(protect_skipped=True), soon
    if action.step is Step.PROTECT:
        return _protect(rt, rec, facts, action, snap, now_fn), soon
    if action.step is Step.CANCEL:
        assert action.order_id is not None
        rt.rate_limit.acquire("exit-cancel", exit_order=True)
        rt.exits.cancel(action.order_id)
        if failpoints.ARMED:
            failpoints.hit("after_exit_cancel")
        return rec, soon
    if action.step is Step.SELL:
        return _sell(rt, rec, action, snap, now_fn), soon
    if action.step is Step.HAND_OVER:
        log.warning("lifecycle %s handed to the operator: %s", rec.execution_id, action.reason)
        return rec.but(handed_over=f"horizon sell {facts.horizon_sell.status if facts.horizon_sell else 'ended'}"), soon
    if action.step is Step.OUTCOME:
        outcome = outcome_of(rec, facts, broker_now)
        if isinstance(outcome, str):
            return rec.but(finished=outcome), later
        if outbox.keep_outcome(rt.redis, outcome):
            observe_outcome(rt.redis, outcome)
        return rec.but(finished=f"outcome {outcome.outcome or 'manual'} via {outcome.exit_via}"), later
    log.warning("lifecycle %s done: %s", rec.execution_id, action.reason)
    return rec.but(finished=action.reason), later


def _protect(rt: Runtime, rec: LifecycleRecord, facts: Facts, action: ExitAction, snap: Snapshot,
             now_fn: Callable[[], datetime]) -> LifecycleRecord:
    entry = facts.entry
    assert entry is not None and entry.filled_avg_price is not None and rec.atr is not None
    prices = protect_prices(entry.filled_avg_price, rec.atr, rec.target_atr, rec.stop_atr)
    if isinstance(prices, str):
        _record(rt, rec, "protect", Status.SKIPPED, f"no protect: {prices}; horizon exit alone", snap, now_fn(),
                intent="protect", exit_reason="target_stop")
        return rec.but(protect_skipped=True)
    cid = protect_client_order_id(rec.execution_id)
    rt.rate_limit.acquire("exit-protect", exit_order=True)
    detail = (f"protect {action.qty} {rec.ticker}: OCO sell gtc, target {prices.limit} "
              f"(fill {entry.filled_avg_price} + {rec.target_atr} x ATR {rec.atr:.4f}), stop {prices.stop} "
              f"(- {rec.stop_atr} x ATR)")
    try:
        order = rt.exits.submit_protect(rec.ticker, action.qty, prices, cid)
    except BrokerRejected as exc:
        found = _found_after_422(rt, cid, exc)
        if found is None:
            _record(rt, rec, "protect", Status.REJECTED, f"broker rejected: protect {exc.status} {exc.detail}; "
                    "horizon exit alone", snap, now_fn(), intent="protect", exit_reason="target_stop")
            return rec.but(protect_skipped=True)
        order = found
    _record(rt, rec, "protect", Status.SUBMITTED, f"submitted: {detail}", snap, now_fn(), intent="protect",
            exit_reason="target_stop", order=order)
    return rec.but(protect_order_id=order.order_id, limit_price=str(prices.limit), stop_price=str(prices.stop))


def _sell(rt: Runtime, rec: LifecycleRecord, action: ExitAction, snap: Snapshot,
          now_fn: Callable[[], datetime]) -> LifecycleRecord:
    cid = exit_client_order_id(rec.execution_id)
    rt.rate_limit.acquire("exit-sell", exit_order=True)
    try:
        order = rt.exits.submit_sell(rec.ticker, action.qty, cid)
        if failpoints.ARMED:
            failpoints.hit("after_exit_submit")
    except BrokerRejected as exc:
        found = _found_after_422(rt, cid, exc)
        if found is None:
            _record(rt, rec, "exit", Status.REJECTED, f"broker rejected: horizon sell {exc.status} {exc.detail}",
                    snap, now_fn(), intent="exit", exit_reason="horizon")
            # the broker's answer stands: sent again every step it would be refused again (a loop
            # of POSTs against the budget); what is left is the operator's, as after rule 11
            return rec.but(handed_over=f"horizon sell refused by the broker ({exc.status})")
        order = found
    _record(rt, rec, "exit", Status.SUBMITTED, f"submitted: {action.qty} share {rec.ticker} sell market day "
            f"(horizon {rec.horizon} reached)", snap, now_fn(), intent="exit", exit_reason="horizon", order=order)
    return rec.but(sell_recorded=True)


def _found_after_422(rt: Runtime, cid: str, exc: BrokerRejected) -> PlacedOrder | None:
    """A reused client_order_id (422) means the order is placed already: look it up."""
    if exc.status != 422:
        return None
    found = rt.exits.order(cid)
    return PlacedOrder(found.order_id, cid, found.status, None) if found else None


def _record(rt: Runtime, rec: LifecycleRecord, kind: str, status: Status, reason: str, snap: Snapshot,
            now: datetime, *, intent: str, exit_reason: str, order: PlacedOrder | None = None) -> DecisionRecord:
    """One exit decision, kept and announced exactly once per execution and kind."""
    decision = DecisionRecord(
        event_key=f"{rec.execution_id}#{kind}", time=now, decided_at=now, execution_id=rec.execution_id,
        ticker=rec.ticker, horizon=rec.horizon, probability=rec.probability,
        opportunity_score=rec.opportunity_score, status=status, reason=reason, why=[reason],
        market_state_snapshot=market_state_snapshot(snap.market_state),
        alpaca_order_id=order.order_id if order else None, client_order_id=order.client_order_id if order else None,
        submitted_at=datetime.fromisoformat(order.submitted_at) if order and order.submitted_at else now,
        payload=_payload(rec), intent=intent, side="sell", exit_reason=exit_reason)
    return outbox.record(rt, decision)


def _payload(rec: LifecycleRecord) -> dict[str, Any]:
    return {"entry_event_key": rec.event_key, "atr": rec.atr, "atr_note": rec.atr_note,
            "due_at": rec.due_at.isoformat() if rec.due_at else None}


def tick(rt: Runtime, send: Callable[[str], None]) -> int:
    """Hand every due execution to a step task (`send`), each leased so no other tick
    sends it again before its step reschedules it."""
    lease_ms = (rt.settings.task_time_limit_s + 30) * 1000
    taken = store.take_due(rt.redis, utcnow(), lease_ms)
    for execution_id in taken:
        send(execution_id)
    return len(taken)


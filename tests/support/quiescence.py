"""Quiescence, positively known: the gateway has nothing left that could still act.

Silence proves nothing (a task may be waiting on a queue, in a worker's hands or behind a
countdown), so an "exactly one", "no order" or "nothing more" assertion first waits until
every place a message or a task can be is seen empty, twice in a row with nothing changed
in between, and only then counts what came out. Each place is a named probe: a function
returning what is still pending there (an empty list when nothing is). Other work adds its
own (a lifecycle due set, a stream consumer) with `Quiescence.add`.

The probes of a gateway (`gateway_probes`):
- `queues`: the Celery queues. On Redis the lists of kombu's transport (each priority's
  list) and its `unacked` hash and `unacked_index` (a task a worker took but has not
  acknowledged, a dead worker's among them until it is restored); on RabbitMQ each queue's
  ready message count (messages a consumer holds unacknowledged are its reserved tasks).
- `workers`: every live worker's active, reserved and scheduled (countdown) tasks, asked
  through Celery's public `app.control.inspect()`; a live worker that does not answer is
  pending too.
- `delayed hops`: `zero.hop` tasks waiting out their countdown (worker/delayed_send.py).

One kind of task is not pending unless the gateway says so (`Gateway.FOLLOW_UPS_PENDING`):
an order status follow-up (`zero.follow_order`, or a hop carrying one), wherever it is.
It can never publish an event, add a row or place an order (it reads the broker and writes
the order's status on the existing row), its chain lives as long as the order is open at
the broker (up to 40 steps), and a test that holds a lookup at the broker or leaves an
order open would otherwise never settle. A test about the order's status waits for that
status itself. The several-hosts suite counts them (tests/support/hosts_gateway.py).
- `outbox`: a decision kept but its event not published (adapters/outbox.py).
- `audit stream`: decisions not yet written to execution_log, or read and not acknowledged
  (adapters/audit_writer.py).
- `hand-over ledger`: messages handed to the queue and not decided (bridge/handover.py).
- `bridges`: messages a live bridge keeps while its queue is unreachable (its /health).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
import requests
from amqp.exceptions import NotFound
from celery import Celery
from kombu import Connection

from zero_tasks.adapters.audit_writer import GROUP
from zero_tasks.adapters.outbox import AUDIT_STREAM
from zero_tasks.core import keys
from zero_tasks.core.keys import LIFECYCLE_DUE_KEY, LIFECYCLE_STEP_PREFIX, MIRROR_ORDER_PREFIX

if TYPE_CHECKING:
    from .gateway import Gateway

Probe = Callable[[], list[str]]
Fingerprint = Callable[[], object]

QUEUES = ("zero_execution", "zero_audit")  # celeryconfig.task_queues
KOMBU_PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport: queue + SEP + priority is that priority's list
KOMBU_UNACKED = ("unacked", "unacked_index")
HOP = "zero.hop"
FOLLOW_UP = "zero.follow_order"
INSPECT_TIMEOUT_S = 2.0


class NotQuiescent(AssertionError):
    """The gateway still had work pending when the wait ran out (the probes say where)."""


@dataclass
class Quiescence:
    """Named probes, checked until every one is empty twice in a row with the fingerprint
    (what has come out so far) unchanged between the two checks."""

    probes: dict[str, Probe] = field(default_factory=dict)
    fingerprint: Fingerprint = lambda: None

    def add(self, name: str, probe: Probe) -> Quiescence:
        if name in self.probes:
            raise ValueError(f"a probe named {name!r} exists already")
        self.probes[name] = probe
        return self

    def pending(self) -> dict[str, list[str]]:
        """What each probe still sees (only the probes that see something). A probe that
        fails to answer reports its error as pending: unknown is not empty."""
        out: dict[str, list[str]] = {}
        for name, probe in self.probes.items():
            try:
                found = probe()
            except Exception as exc:  # noqa: BLE001 - a probe that cannot look is not a quiet place
                found = [f"probe failed: {exc!r}"]
            if found:
                out[name] = found
        return out

    def _fingerprint(self) -> object:
        """What has come out so far; a fingerprint that cannot be read is never the same twice."""
        try:
            return self.fingerprint()
        except Exception as exc:  # noqa: BLE001 - e.g. the database stopped by a fault test
            return ("fingerprint failed", repr(exc), time.monotonic())

    def wait(self, timeout: float = 60, interval: float = 0.1) -> None:
        """Return once two consecutive checks found nothing pending and nothing changed;
        raise NotQuiescent with what was still pending after `timeout`."""
        deadline = time.monotonic() + timeout
        quiet_print: object = _NOTHING
        last: dict[str, list[str]] = {}
        while time.monotonic() < deadline:
            before = self._fingerprint()
            last = self.pending()
            after = self._fingerprint()
            if not last and before == after:
                if quiet_print == after:
                    return
                quiet_print = after
            else:
                quiet_print = _NOTHING
            time.sleep(interval)
        raise NotQuiescent(f"not quiescent after {timeout}s: {last}")


_NOTHING = object()


def gateway_probes(gw: Gateway) -> Quiescence:
    """Every place of `gw` where something could still happen, and what has come out of it
    so far (events published, rows written, orders posted) as the fingerprint."""
    r = gw.r
    broker_url = gw.celery_broker_url()
    follow_ups = gw.FOLLOW_UPS_PENDING
    inspector = WorkerTasks(gw, broker_url, follow_ups)
    q = Quiescence(fingerprint=lambda: (_published(r), gw.row_count(), _orders_posted(gw)))
    if broker_url.startswith("redis"):
        q.add("queues", lambda: redis_queues(r, follow_ups))
    else:
        q.add("queues", lambda: amqp_queues(broker_url, QUEUES))
    q.add("workers", inspector.pending)
    q.add("delayed hops", inspector.hops)
    q.add("outbox", lambda: unsent_decisions(r))
    q.add("audit stream", lambda: audit_backlog(r))
    q.add("hand-over ledger", lambda: handed_over(r))
    q.add("bridges", lambda: bridge_backlog(gw))
    if gw.mirrors:
        q.add("mirror", lambda: mirror_statuses_owed(gw))
    return q


def mirror_statuses_owed(gw: Gateway) -> list[str]:
    """The account mirror's pending writes: a gateway entry order whose state the mirror
    holds (key:execution_mirror_order:zx-...) while its SUBMITTED row has no order_status
    yet (the consumer writes it within a second, or tries again from its heartbeat)."""
    owed = []
    for key in gw.r.scan_iter(match=MIRROR_ORDER_PREFIX + "zx-*", count=1000):
        cid = key.decode()[len(MIRROR_ORDER_PREFIX):]
        rows = gw.rows(client_order_id=cid, status="SUBMITTED")
        if rows and rows[0].get("order_status") is None:
            owed.append(f"order_status of {cid}")
    return owed


def lifecycle_due(r: redis.Redis) -> list[str]:
    """Executions whose lifecycle step is due now or running (a position waiting for its
    next look later is not pending: nothing happens to it before then). Only for a gateway
    whose beat runs the lifecycle (the suite's shared workers run no beat, so their due
    set is never taken): `gw.quiescence.add("lifecycle", lambda: lifecycle_due(gw.r))`."""
    now_ms = int(time.time() * 1000)
    due = [f"due {k.decode()}" for k in r.zrangebyscore(LIFECYCLE_DUE_KEY, "-inf", now_ms)]
    running = [f"step {k.decode()}" for k in r.scan_iter(match=LIFECYCLE_STEP_PREFIX + "*", count=1000)]
    return due + running


def _orders_posted(gw: Gateway) -> object:
    """The simulator's order count; a gateway pointed at no simulator (tests/test_paper_only.py)
    has none to count."""
    try:
        return gw.order_posts()
    except requests.ConnectionError:
        return "no simulator"


def _published(r: redis.Redis) -> object:
    """Every decision adds one entry to the audit stream: its last id moves with each."""
    try:
        return r.xinfo_stream(AUDIT_STREAM)["last-generated-id"]
    except redis.ResponseError:  # no stream yet
        return None


def redis_queues(r: redis.Redis, follow_ups: bool = False) -> list[str]:
    """What waits on kombu's Redis transport (follow-ups only when `follow_ups`)."""
    out = []
    for name in QUEUES:
        for key in r.scan_iter(match=name + "*"):
            text = key.decode(errors="replace")
            if text != name and not text.startswith(name + KOMBU_PRIORITY_SEP):
                continue
            if r.type(key) != b"list":
                continue
            for raw in r.lrange(key, 0, -1):
                task, argsrepr = _queued_task(json.loads(raw))
                if follow_ups or not _is_follow_up(task, argsrepr):
                    out.append(f"{text!r}: {task} waiting")
    for tag, raw in r.hgetall("unacked").items():
        task, argsrepr = _queued_task(json.loads(raw)[0])  # [message, exchange, routing key]
        if follow_ups or not _is_follow_up(task, argsrepr):
            out.append(f"unacked {tag.decode()}: {task} taken and not acknowledged")
    return out


def _queued_task(message: dict[str, Any]) -> tuple[str, str]:
    """(task name, its argsrepr) of a message of kombu's Redis transport (Celery's headers)."""
    headers = message.get("headers") or {}
    return str(headers.get("task")), str(headers.get("argsrepr") or "")


def _is_follow_up(name: str, args: object) -> bool:
    """A follow-up step, or a hop that carries one (its first argument is the target)."""
    if name == FOLLOW_UP:
        return True
    if name != HOP:
        return False
    first = args[0] if isinstance(args, list) and args else str(args)
    return FOLLOW_UP in str(first)[:40]


def amqp_queues(url: str, names: Iterable[str]) -> list[str]:
    out = []
    with Connection(url, connect_timeout=5) as conn:
        channel = conn.channel()
        try:
            for name in names:
                try:
                    _, ready, _ = channel.queue_declare(queue=name, passive=True)
                except NotFound:  # not declared yet: it holds nothing (the broker closed the channel)
                    channel = conn.channel()
                    continue
                if ready:
                    out.append(f"{name}: {ready} message(s) ready")
        finally:
            channel.close()
    return out


class WorkerTasks:
    """Celery's remote control, asked of every live worker of the gateway."""

    def __init__(self, gw: Gateway, broker_url: str, follow_ups: bool = False) -> None:
        self.gw = gw
        self.follow_ups = follow_ups  # a follow-up step is pending too
        self.app = Celery("quiescence-probe", broker=broker_url, set_as_current=False)
        self.app.conf.broker_connection_retry_on_startup = False

    def _ask(self, what: str) -> tuple[dict[str, Any], list[str]]:
        alive = sum(proc.alive() for proc in self.gw.workers)
        if not alive:
            return {}, []
        inspect = self.app.control.inspect(timeout=INSPECT_TIMEOUT_S, limit=alive)
        replies = getattr(inspect, what)() or {}
        missing = [f"{alive - len(replies)} live worker(s) did not answer {what}"] if len(replies) < alive else []
        return replies, missing

    def pending(self) -> list[str]:
        out: list[str] = []
        for what in ("active", "reserved", "scheduled"):
            replies, missing = self._ask(what)
            out += missing
            for worker, tasks in replies.items():
                out += [f"{worker} {what}: {_task_name(t)}" for t in tasks if self._counts(t)]
        return out

    def hops(self) -> list[str]:
        replies, missing = self._ask("scheduled")
        hops = [f"{worker}: {_task_name(t)}" for worker, tasks in replies.items() for t in tasks
                if _request(t).get("name") == HOP and self._counts(t)]
        return missing + hops

    def _counts(self, task: dict[str, Any]) -> bool:
        return self.follow_ups or not _follow_up(task)

    def close(self) -> None:
        self.app.close()


def _request(task: dict[str, Any]) -> dict[str, Any]:
    return task.get("request", task)  # scheduled entries wrap the request


def _task_name(task: dict[str, Any]) -> str:
    request = _request(task)
    return f"{request.get('name')}[{request.get('id')}]"


def _follow_up(task: dict[str, Any]) -> bool:
    request = _request(task)
    return _is_follow_up(str(request.get("name")), request.get("args"))


def unsent_decisions(r: redis.Redis) -> list[str]:
    return [key.decode() for key in r.scan_iter(match=keys.DECISION_PREFIX + "*", count=1000)
            if not r.hexists(key, "sent")]


def audit_backlog(r: redis.Redis) -> list[str]:
    out = []
    if length := r.xlen(AUDIT_STREAM):
        out.append(f"{length} decision(s) not yet written to execution_log")
    try:
        pending = r.xpending(AUDIT_STREAM, GROUP)["pending"]
    except redis.ResponseError:  # no stream or no group yet
        pending = 0
    if pending:
        out.append(f"{pending} read by a writer and not acknowledged")
    return out


def handed_over(r: redis.Redis) -> list[str]:
    out = [f"{m.decode()} handed over, not decided" for m in r.zrange(keys.IN_FLIGHT_KEY, 0, -1)]
    if not out and (entries := r.hlen(keys.IN_FLIGHT_TASKS_KEY)):
        out.append(f"{entries} ledger task(s) without their entry")
    return out


def bridge_backlog(gw: Gateway) -> list[str]:
    out = []
    for proc in gw.bridges:
        if not proc.alive():
            continue
        host, port = proc.env["EXECUTION_API_HOST"], proc.env["EXECUTION_API_PORT"]
        body = requests.get(f"http://{host}:{port}/health", timeout=5).json()
        if pending := body["bridge"]["pending"]:
            out.append(f"{proc.name}: {pending} message(s) kept for the queue")
        if watching := body["bridge"].get("watching"):
            out.append(f"{proc.name}: {watching} message(s) claimed elsewhere, to be looked at again")
    return out

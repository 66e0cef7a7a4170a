"""A running gateway for end-to-end tests: private Redis, simulator, workers, bridge.

Tests drive it exactly as ZERO does: they write the kill switch and market state keys,
PUBLISH an OpportunityRank on chan:opportunity_update, and read what comes back on
chan:trade_update, in execution_log and at the simulator.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
import requests
from sqlalchemy import Engine, func, select, text

from zero_tasks.adapters.audit import ensure_schema, execution_log, make_engine
from zero_tasks.adapters.redis_state import store_session
from zero_tasks.core import keys
from zero_tasks.core.contract import client_order_id
from zero_tasks.core.session import NEW_YORK
from zero_tasks.core.session import from_broker as session_from_broker

from .procs import (
    TEST_SIGNING_KEY,
    PrivateRedis,
    Proc,
    base_env,
    bridge_proc,
    free_port,
    health,
    mirror_proc,
    wait_for,
    worker_proc,
)
from .quiescence import Quiescence, gateway_probes
from .zero_models import accepted_by_zero

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
# kept when a test empties Redis: the workers' heartbeats and their registry
WORKER_KEYS = (keys.WORKER_ALIVE_PREFIX.encode(), keys.WORKERS_KEY.encode())


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def symbol(prefix: str, n: int, width: int = 2) -> str:
    """The n-th ticker of a series, letters only (tickers are US equity symbols)."""
    out = ""
    for _ in range(width):
        n, d = divmod(n, 26)
        out = chr(65 + d) + out
    return prefix + out


def opportunity(ticker: str = "SPY", probability: float = 0.95, **over: Any) -> dict[str, Any]:
    opp = {"schema_version": "1.0", "timestamp": now_iso(), "ticker": ticker, "horizon": "H30",
           "direction": "LONG", "direction_confidence": 71, "opportunity_score": 95,
           "probability": probability, "target_atr": 1.5, "stop_atr": 0.75, "market_state": "GREEN",
           "attention_stability_score": 80, "attention_bucket": "STABLE", "attention_alignment": 80,
           "why": ["breakout above VWAP"], "liquidity_grade": "A"}
    opp.update(over)
    return opp


def ranking(*opps: dict[str, Any], rank_time: datetime | None = None, **over: Any) -> dict[str, Any]:
    rank_time = rank_time or datetime.now(UTC)
    rank = {"schema_version": "1.0", "timestamp": rank_time.isoformat(), "horizon": "H30",
            "rank_time": rank_time.isoformat(), "total_candidates": 57,
            "opportunities": list(opps) if opps else [opportunity()]}
    rank.update(over)
    return rank


def now_iso(delta_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_s)).isoformat()


def market(state: str = "GREEN", age_s: float = 0, **over: Any) -> str:
    value = {"schema_version": "1.0", "timestamp": now_iso(-age_s), "state": state, "vix_level": 14.2,
             "breadth_score": 62.0, "event_risk": False, "reason": "calm tape"}
    value.update(over)
    return json.dumps(value)


YESTERDAY_S = 26 * 3600  # older than any session now open (the simulator's day opens at New York midnight)


def zero_market(state: str = "GREEN", age_s: float = 0, reason: str | None = "Prime Window") -> str:
    """key:market_state exactly as ZERO's regime service writes it (MarketState.model_dump_json
    at 0a64d61: UTC isoformat with microseconds, the fields it leaves None as null)."""
    stamp = datetime.now(UTC) - timedelta(seconds=age_s)
    return json.dumps({"schema_version": "1.0", "timestamp": stamp.isoformat(timespec="microseconds"),
                       "state": state, "vix_level": None, "vixy_price": 28.41, "vix_roc": None,
                       "adv_decl": None, "trin": None, "breadth_score": None, "event_risk": False,
                       "reason": reason}, separators=(",", ":"))


class Gateway:
    KEPT_KEYS: tuple[bytes, ...] = WORKER_KEYS  # what a clean slate between tests leaves in Redis
    FOLLOW_UPS_PENDING = False  # whether an order's status follow-up keeps the gateway from settling (quiescence.py)

    def __init__(self, log_dir: Path, redis_server: PrivateRedis, sim_url: str, database_url: str,
                 workers: int = 2, bridges: int = 1, mirrors: int = 0, **env: str) -> None:
        self.redis_server = redis_server
        self.sim_url = sim_url
        self.database_url = database_url
        self.api_port = free_port()
        self.env = base_env(redis_server.port, sim_url, database_url, self.api_port, **env)
        self.log_dir = log_dir
        self.workers = [worker_proc(f"w{i}-{self.api_port}", self.env, log_dir) for i in range(workers)]
        self.bridges = [bridge_proc(f"bridge{i}-{self.api_port}", self.env_for_bridge(i), log_dir)
                        for i in range(bridges)]
        # account-mirror consumers (they need a trade_updates stream: ALPACA_STREAM_URL in env)
        self.mirrors = [mirror_proc(f"mirror{i}-{self.api_port}", self.env, log_dir) for i in range(mirrors)]
        self.engine: Engine = make_engine(sqlalchemy_url(database_url))
        self.r = redis_server.client()
        self._quiescence: Quiescence | None = None

    @property
    def quiescence(self) -> Quiescence:
        """The probes `settle` waits on (tests/support/quiescence.py); add to it with
        `gw.quiescence.add(name, probe)`."""
        if self._quiescence is None:
            self._quiescence = gateway_probes(self)
        return self._quiescence

    def settle(self, timeout: float = 60) -> None:
        """Return once nothing more can happen: every queue, worker, hop, the outbox, the
        audit stream, the hand-over ledger and the bridges seen empty twice in a row with
        nothing changed. Every "exactly one", "no order" and "nothing more" waits for it."""
        self.quiescence.wait(timeout)

    def celery_broker_url(self) -> str:
        """The Celery broker of the gateway's processes, as the test reaches it."""
        password = self.redis_server.password
        auth = f":{quote(password, safe='')}@" if password else ""
        return self.env.get("CELERY_BROKER_URL") or f"redis://{auth}127.0.0.1:{self.redis_server.port}/0"

    def pg_schema(self) -> str:
        """The schema named by `options=-csearch_path=...` in the URL, else public."""
        marker = "search_path%3D"
        return self.database_url.split(marker, 1)[1].split("&")[0] if marker in self.database_url else "public"

    def env_for_bridge(self, index: int) -> dict[str, str]:
        port = self.api_port if index == 0 else free_port()
        return {**self.env, "EXECUTION_API_PORT": str(port)}

    # lifecycle ---------------------------------------------------------------------
    def start(self) -> Gateway:
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.execute(text("CREATE SCHEMA IF NOT EXISTS " + self.pg_schema()))
            conn.execute(text("DROP TABLE IF EXISTS execution_log"))
            conn.execute(text("DROP TABLE IF EXISTS zero_execution_schema_version"))
        ensure_schema(self.engine)
        for proc in [*self.workers, *self.bridges, *self.mirrors]:
            proc.start()
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(lambda: self.workers_alive() >= sum(p.alive() for p in self.workers), timeout, "workers alive")
        wait_for(lambda: health(self.api_port)[1]["bridge"]["subscribed"], timeout, "bridge subscribed")

    def add_worker(self, **env: str) -> Proc:
        proc = worker_proc(f"w{len(self.workers)}-{self.api_port}", {**self.env, **env}, self.log_dir)
        self.workers.append(proc.start())
        return proc

    def restart(self, proc: Proc, **env: str) -> Proc:
        """A killed process started again, as an operator (or systemd) would."""
        proc.stop()
        proc.env = {**proc.env, **env}
        return proc.start()

    def revive(self) -> Gateway:
        """Between tests: start what a test killed, wait until ready, clean slate."""
        for proc in [*self.workers, *self.bridges, *self.mirrors]:
            if not proc.alive():
                proc.start()
        self.wait_ready()
        self.reset()
        return self

    def workers_alive(self) -> int:
        return len(list(self.r.scan_iter("key:execution_worker:*")))

    def stop(self) -> None:
        for proc in [*self.mirrors, *self.bridges, *self.workers]:
            proc.stop()
        self.engine.dispose()

    def logs(self) -> str:
        """For a failing test's message: each process's lines at ERROR or above, however long
        ago (the "Unrecoverable error" that ended a worker), then its last 4000 characters."""
        return "\n".join(log_digest(p.name, p.output()) for p in [*self.bridges, *self.workers, *self.mirrors])

    # state -------------------------------------------------------------------------
    def reset(self) -> None:
        """A clean slate between tests: gateway keys, broker, audit table.

        The previous test's work is let finish first (the gateway settled: its rows in the
        table, no bridge still watching a claim): a bridge that looked at a claim after its
        keys were deleted here would decide that message a second time."""
        self.settle()
        doomed = [k for k in self.r.scan_iter("key:*") if not k.startswith(self.KEPT_KEYS)]
        if doomed:
            self.r.delete(*doomed)
        self.sim("POST", "/_sim/reset")
        self.keep_session()
        self.sim("POST", "/_sim/reset")  # the request counters start at zero
        with self.engine.begin() as conn:
            conn.execute(execution_log.delete())

    def keep_session(self) -> None:
        """key:execution_session as a worker keeps it after asking the simulator's clock and
        calendar, so a test that takes the whole broker down still has a session (as a
        gateway that asked before the outage does). A test about the session deletes it."""
        headers = {"APCA-API-KEY-ID": self.env["ALPACA_API_KEY"], "APCA-API-SECRET-KEY": self.env["ALPACA_SECRET_KEY"]}
        clock = requests.get(self.sim_url + "/v2/clock", headers=headers, timeout=10).json()
        at = datetime.fromisoformat(clock["timestamp"])
        day = at.astimezone(NEW_YORK).date().isoformat()
        entries = requests.get(self.sim_url + "/v2/calendar", params={"start": day, "end": day}, headers=headers,
                               timeout=10).json()
        opens = [datetime.fromisoformat(f"{e['date']}T{e['open']}").replace(tzinfo=NEW_YORK) for e in entries]
        current = session_from_broker(datetime.now(UTC), at, clock["is_open"],
                                      datetime.fromisoformat(clock["next_open"]),
                                      datetime.fromisoformat(clock["next_close"]), opens)
        assert not isinstance(current, str), current
        store_session(self.r, current, datetime.now(UTC), key=TEST_SIGNING_KEY)  # sealed, as a worker keeps it

    def market_hours(self, moment: str) -> None:
        """The simulator keeps New York hours and stands at `moment` (frozen); the gateway's
        kept session is dropped, so the next decision asks the broker."""
        self.sim("POST", "/_sim/config", {"always_open": False})
        self.sim("POST", "/_sim/clock", {"now": moment})
        self.r.delete("key:execution_session")

    def green(self, enabled: bool = True) -> None:
        if enabled:
            self.r.set("key:execution_enabled", "true")
        self.r.set("key:market_state", market("GREEN"))

    def sim(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, self.sim_url + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else None

    def orders(self) -> list[dict[str, Any]]:
        return self.sim("GET", "/_sim/orders")

    def order_posts(self) -> int:
        return self.sim("GET", "/_sim/stats")["order_posts"]

    # traffic -----------------------------------------------------------------------
    def subscribe(self) -> redis.client.PubSub:
        pubsub = self.r.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe("chan:trade_update")
        wait_for(lambda: pubsub.get_message(timeout=0.1) is None and pubsub.subscribed, 5, "subscription")
        return pubsub

    def publish(self, payload: dict[str, Any] | bytes | str) -> None:
        data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        receivers = self.r.publish("chan:opportunity_update", data)
        assert receivers >= len([b for b in self.bridges if b.alive()]), "bridge not subscribed"

    def decide(self, *payloads: Any, timeout: float = 20) -> list[dict[str, Any]]:
        """Publish each payload; return the TradeUpdate events once the gateway has settled:
        exactly one per message, or AssertionError (a second event is seen, not left unread)."""
        pubsub = self.subscribe()
        try:
            for payload in payloads:
                self.publish(payload)
            return collect(pubsub, len(payloads), timeout, self)
        finally:
            pubsub.close()

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        query = select(execution_log)
        for column, value in where.items():
            query = query.where(execution_log.c[column] == value)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(execution_log.c.time))]

    def row_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(execution_log)).scalar_one()

    def wait_rows(self, count: int, timeout: float = 15, **where: Any) -> list[dict[str, Any]]:
        """The rows (matching `where`): at least `count` of them, then, once the gateway has
        settled, exactly `count` (AssertionError on one more)."""
        what = f"{count} audit rows" + (f" with {where}" if where else "")
        wait_for(lambda: len(self.rows(**where)) >= count, timeout, what)
        self.settle()
        rows = self.rows(**where)
        assert len(rows) == count, f"expected exactly {what}, found {len(rows)}: {rows}"
        return rows

    def orders_for(self, execution_id: str) -> list[dict[str, Any]]:
        """The orders the simulator holds for one message (by its client_order_id)."""
        wanted = client_order_id(execution_id)
        return [o for o in self.orders() if o.get("client_order_id") == wanted]

    def nothing_more(self, pubsub: redis.client.PubSub) -> list[dict[str, Any]]:
        """Once the gateway has settled, every event on `pubsub` not read yet (there should
        be none): what a test asserts as "nothing more"."""
        self.settle()
        return drain(pubsub)


@contextmanager
def isolated_gateway(log_dir: Path, sim_url: str, db_dir: Path, workers: int = 1, bridges: int = 1,
                     mirrors: int = 0, database_url: str | None = None, **env: str) -> Iterator[Gateway]:
    """A gateway on a Redis of its own (a SQLite audit in `db_dir` unless `database_url`):
    what a test stops or kills there harms no other test."""
    server = PrivateRedis(log_dir).start()
    gw = Gateway(log_dir, server, sim_url, database_url or f"sqlite:///{db_dir / 'audit.db'}", workers=workers,
                 bridges=bridges, mirrors=mirrors, **env).start()
    try:
        yield gw
    finally:
        gw.stop()
        server.stop()


def log_digest(name: str, log: str, most: int = 20, width: int = 600) -> str:
    """`log`'s last `most` lines at ERROR or CRITICAL (each cut at `width` characters), then
    its last 4000 characters."""
    serious = [line[:width] for line in log.splitlines() if '"level": "ERROR"' in line or '"level": "CRITICAL"' in line]
    return "\n".join([f"===== {name}", *serious[-most:], "----- last lines", log[-4000:]])


def postgres_schema_url(schema: str) -> str:
    """The suite's PostgreSQL (TEST_POSTGRES_URL), in a schema of its own (the gateway
    creates it at start)."""
    return os.environ.get("TEST_POSTGRES_URL", PG_URL) + f"?options=-csearch_path%3D{schema}"


def _event(message: dict[str, Any]) -> dict[str, Any]:
    event = json.loads(message["data"])
    if message["channel"] in (b"chan:trade_update", "chan:trade_update"):
        accepted_by_zero(event)  # every event of every test: ZERO's consumer would parse it
    return event


def collect(pubsub: redis.client.PubSub, count: int, timeout: float, gw: Gateway | None = None) -> list[dict[str, Any]]:
    """Exactly `count` events: the first `count` within `timeout`, then (with `gw`) the
    gateway settled and every event published until then read: one more is an
    AssertionError, not an event left unread."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            events.append(_event(message))
    if len(events) < count:
        detail = gw.logs() if gw else ""
        raise AssertionError(f"expected {count} events, got {len(events)}: {events}\n{detail}")
    if gw is not None:
        gw.settle()
    events += drain(pubsub)
    if len(events) > count:
        raise AssertionError(f"expected exactly {count} events, got {len(events)}: {events}")
    return events


def drain(pubsub: redis.client.PubSub, timeout: float = 10) -> list[dict[str, Any]]:
    """Every event published on `pubsub`'s channels before this call: a PING on the same
    connection is answered after every message sent to it earlier, so its PONG marks the end."""
    token = uuid.uuid4().hex
    pubsub.ping(token)
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message is None:
            continue
        if message["type"] == "pong" and message["data"] in (token, token.encode()):
            return events
        if message["type"] == "message":
            events.append(_event(message))
    raise AssertionError(f"no PONG on the subscription within {timeout}s (events so far: {events})")

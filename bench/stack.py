"""The processes under test, started for real: private redis-server, the in-process
simulator (stamping every order it creates), the bridge and the Celery worker(s).

Reuses tests/support/procs.py (the same commands the end-to-end tests run). Every child
is started in its own process group and stopped by `Stack.close()` (called from a
`finally`), politely then with SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from sqlalchemy import Engine, func, select, text

from alpaca_paper_sim import BrokerState, SimServer, TradingSession
from tests.support.procs import (
    PrivateRedis,
    Proc,
    base_env,
    bridge_proc,
    free_port,
    health,
    mirror_proc,
    worker_proc,
)
from zero_tasks.adapters.audit import ensure_schema, execution_log, make_engine
from zero_tasks.core import keys

from .common import OPPORTUNITY_CHANNEL, TRADE_UPDATE_CHANNEL, wait_until

CLK_TCK = os.sysconf("SC_CLK_TCK")
PG_BASE_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_SCHEMA = "bench"


def pg_url(base: str = PG_BASE_URL, schema: str = PG_SCHEMA) -> str:
    return base + ("&" if "?" in base else "?") + "options=" + quote(f"-csearch_path={schema}", safe="-")


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


# the simulator --------------------------------------------------------------------------
class StampingState(BrokerState):
    """The simulator's state, plus the instant each order was created (bench-side only).

    `stamps[client_order_id] = (perf_counter, time.time())` taken when the POST /v2/orders
    reaches the order-creation method, i.e. when the broker receives the order.
    """

    def __init__(self) -> None:
        self._stamp_cond = threading.Condition()
        self.stamps: dict[str, tuple[float, float]] = {}
        self.lookups: dict[str, list[tuple[str, float]]] = {}  # symbol -> [(call, time.time())]
        self._forgotten: set[str] = set()  # entries left out of the day's list (forget_entries)
        # fills at once, any hour
        # made-up tickers listed, and cash for the thousand orders a phase books (the buying power is checked)
        super().__init__(fill_delay_s=0, session=TradingSession.around_the_clock(), rate_limit=10**9,
                         synthetic_assets=True, starting_cash=100_000_000)

    def _lookup(self, call: str, symbol: str) -> None:
        self.lookups.setdefault(symbol.strip().upper(), []).append((call, time.time()))

    def position_json(self, symbol_or_asset_id: str) -> dict[str, Any]:
        self._lookup("GET position", symbol_or_asset_id)
        return super().position_json(symbol_or_asset_id)

    def submit_order(self, body: Any) -> dict[str, Any]:
        t, wall = time.perf_counter(), time.time()
        order = super().submit_order(body)
        with self._stamp_cond:
            self.stamps.setdefault(order["client_order_id"], (t, wall))
            self._stamp_cond.notify_all()
        return order

    def wait_stamp(self, cid: str, timeout: float) -> tuple[float, float] | None:
        with self._stamp_cond:
            self._stamp_cond.wait_for(lambda: cid in self.stamps, timeout)
            return self.stamps.get(cid)

    def forget_entries(self) -> None:
        """The bench resets the daily cap between signals to measure hundreds of orders. The
        gateway counts the cap twice: in Redis (reset_risk_counters) and from the broker's
        own list of the day's orders (issue 25). This is the broker half of that reset: the
        entries placed so far are left out of the day's list (`after=` queries) from now on."""
        with self._stamp_cond:
            self._forgotten.update(o["client_order_id"] for o in self.all_orders())

    def list_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        for symbol in (params.get("symbols") or "").split(","):
            if symbol.strip():
                self._lookup("GET orders", symbol)
        listed = super().list_orders(params)
        if not params.get("after"):
            return listed
        with self._stamp_cond:
            forgotten = set(self._forgotten)
        return [o for o in listed if o["client_order_id"] not in forgotten]

    def reset(self) -> None:
        super().reset()
        with self._stamp_cond:
            self.stamps.clear()
            self.lookups.clear()
            self._forgotten.clear()

    def duplicate_orders(self) -> dict[str, int]:
        """Orders at the broker with a repeated client_order_id or > 1 per execution_id."""
        orders = self.all_orders()
        by_cid: dict[str, int] = {}
        by_exec: dict[str, int] = {}
        for o in orders:
            cid = o["client_order_id"]
            by_cid[cid] = by_cid.get(cid, 0) + 1
            exec_id = cid[3:] if cid.startswith("zx-") else cid
            by_exec[exec_id] = by_exec.get(exec_id, 0) + 1
        repeated_cid = sum(n - 1 for n in by_cid.values() if n > 1)
        repeated_exec = sum(n - 1 for n in by_exec.values() if n > 1)
        return {"orders": len(orders), "repeated_client_order_id": repeated_cid,
                "extra_per_execution_id": repeated_exec, "duplicate_orders": max(repeated_cid, repeated_exec)}


# /proc accounting -----------------------------------------------------------------------
def children_of(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    found += [int(x) for x in fh.read().split()]
            except OSError:
                continue
    except OSError:
        return []
    return found


def process_tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children_of(p)
    return out


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        return None
    return None


def pss_mb(pid: int) -> float | None:
    """Proportional set size: shared pages (prefork children share the parent's) split fairly."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float:
    """utime + stime of one live process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            rest = fh.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_by_pid(root: int) -> dict[int, float]:
    return {p: cpu_s(p) for p in process_tree(root)}


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots of a process tree (new processes count whole)."""
    return sum(t - before.get(p, 0.0) for p, t in after.items())


# pub/sub events -------------------------------------------------------------------------
class EventCollector(threading.Thread):
    """Every TradeUpdate on chan:trade_update, stamped with perf_counter on receipt.

    Kept deliberately cheap (no parsing here): it shares the GIL with the simulator.
    """

    def __init__(self, port: int) -> None:
        super().__init__(name="bench-events", daemon=True)
        self.port = port
        self.events: list[tuple[float, bytes]] = []
        self.cond = threading.Condition()
        self.stop_flag = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        client = redis.Redis(host="127.0.0.1", port=self.port)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(TRADE_UPDATE_CHANNEL)
            while not self.stop_flag.is_set():
                message = pubsub.get_message(timeout=0.2)
                if message is None or message["type"] != "message":
                    continue
                stamp = time.perf_counter()
                with self.cond:
                    self.events.append((stamp, message["data"]))
                    self.cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - reported by the waiter
            self.error = exc
        finally:
            try:
                pubsub.close()
                client.close()
            except Exception:  # noqa: BLE001
                pass

    def count(self) -> int:
        with self.cond:
            return len(self.events)

    def wait_event(self, index: int, timeout: float) -> tuple[float, bytes] | None:
        """The event number `index` (0-based), waiting up to `timeout` seconds."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.events) > index, timeout)
            return self.events[index] if len(self.events) > index else None

    def since(self, index: int) -> list[tuple[float, bytes]]:
        with self.cond:
            return list(self.events[index:])

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(timeout=2)


# the stack ------------------------------------------------------------------------------
class Stack:
    """Private Redis + stamping simulator, shared by every phase of one run."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.redis_server: PrivateRedis | None = None
        self.sim: SimServer | None = None
        self.state = StampingState()
        self.procs: list[Proc] = []  # everything we started, for close()

    def start(self) -> Stack:
        self.redis_server = PrivateRedis(self.log_dir)
        self.procs.append(self.redis_server.proc)
        self.redis_server.start()
        self.sim = SimServer(state=self.state).start()
        return self

    @property
    def port(self) -> int:
        assert self.redis_server is not None
        return self.redis_server.port

    @property
    def sim_url(self) -> str:
        assert self.sim is not None
        return self.sim.url

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)

    def subscribers(self, channel: str = OPPORTUNITY_CHANNEL) -> int:
        return int(dict(self.client().pubsub_numsub(channel)).get(channel.encode(), 0))

    def redis_version(self) -> str:
        return str(self.client().info("server").get("redis_version"))

    def track(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            try:
                proc.stop(timeout=10)
            except Exception:  # noqa: BLE001 - keep stopping the others
                with contextlib.suppress(Exception):  # killed already or gone: nothing left to stop
                    proc.kill()
        if self.sim is not None:
            self.sim.stop()


class GatewayProcs:
    """One bridge and the Celery worker(s), exactly as the tests start them."""

    def __init__(self, stack: Stack, database_url: str, label: str, workers: int = 1, concurrency: int = 2,
                 mirror: bool = False, **env: str) -> None:
        self.stack = stack
        self.label = label
        self.database_url = database_url
        self.api_port = free_port()
        # the account mirror: one consumer on the simulator's trade_updates stream
        if mirror:
            assert stack.sim is not None and stack.sim.stream_url is not None
            env = {"ALPACA_STREAM_URL": stack.sim.stream_url, **env}
        self.env = base_env(stack.port, stack.sim_url, database_url, self.api_port, **env)
        self.mirror = mirror_proc(f"{label}-mirror", self.env, stack.log_dir) if mirror else None
        self.workers = [worker_proc(f"{label}-w{i}", self.env, stack.log_dir, concurrency=concurrency)
                        for i in range(workers)]
        self.bridge = bridge_proc(f"{label}-bridge", self.env, stack.log_dir)
        self.engine: Engine = make_engine(sqlalchemy_url(database_url))

    def prepare_database(self) -> None:
        """A fresh audit store, migrated by the gateway's own `ensure_schema`.

        PostgreSQL: the schema `bench` is dropped and created again (the URL's search_path
        points there; public is never touched). SQLite: the file is removed.
        """
        if self.engine.dialect.name == "postgresql":
            with self.engine.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
                conn.execute(text(f"CREATE SCHEMA {PG_SCHEMA}"))
            self.engine.dispose()
        else:
            self.engine.dispose()
            database = self.engine.url.database
            for suffix in ("", "-wal", "-shm"):
                if database and os.path.exists(database + suffix):
                    os.remove(database + suffix)
        ensure_schema(self.engine)

    def start(self, timeout: float = 60) -> GatewayProcs:
        self.prepare_database()
        for proc in [*self.workers, self.bridge]:
            self.stack.track(proc).start()
        r = self.stack.client()
        try:
            wait_until(lambda: self._alive_workers(r) >= len(self.workers) or self._died(), timeout,
                       f"{self.label} workers")
            wait_until(lambda: health(self.api_port)[1]["bridge"]["subscribed"] or self._died(), timeout,
                       f"{self.label} bridge")
            wait_until(lambda: self.stack.subscribers() >= 1, 10, "bridge subscription")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n{self.logs()}") from None
        if self._died():
            raise RuntimeError(f"a gateway process exited at start\n{self.logs()}")
        if self.mirror is not None:
            self.mirror_on(timeout)
        return self

    def mirror_state(self) -> dict[str, Any]:
        return dict(health(self.api_port)[1].get("mirror") or {})

    def mirror_on(self, timeout: float = 60) -> None:
        """The consumer running and the mirror in sync: row 9 answers from it."""
        assert self.mirror is not None
        if not self.mirror.alive():
            self.stack.track(self.mirror).start()
        try:
            wait_until(lambda: self.mirror_state().get("in_sync"), timeout, f"{self.label} mirror in sync")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n{self.logs()}") from None

    def mirror_off(self, timeout: float = 30) -> None:
        """The consumer stopped (it says out of sync as it goes): row 9 asks the broker, as before the mirror."""
        assert self.mirror is not None
        self.mirror.stop(timeout=15)
        wait_until(lambda: not self.mirror_state().get("in_sync"), timeout, f"{self.label} mirror out of sync")

    def _died(self) -> bool:
        return any(not p.alive() for p in [*self.workers, self.bridge])

    @staticmethod
    def _alive_workers(r: redis.Redis) -> int:
        return len(list(r.scan_iter(keys.WORKER_ALIVE_PREFIX + "*")))

    def stop(self) -> None:
        for proc in [*([self.mirror] if self.mirror else []), self.bridge, *self.workers]:
            proc.stop(timeout=15)
        self.engine.dispose()

    def logs(self, tail: int = 3000) -> str:
        procs = [self.bridge, *self.workers, *([self.mirror] if self.mirror else [])]
        return "\n".join(f"===== {p.name} ({p.log_path})\n{p.output()[-tail:]}" for p in procs)

    def row_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(execution_log)).scalar_one())

    def rows_for(self, execution_ids: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cols = [execution_log.c.execution_id, execution_log.c.status, execution_log.c.time,
                execution_log.c.decided_at, execution_log.c.submitted_at, execution_log.c.event_key]
        with self.engine.connect() as conn:
            for i in range(0, len(execution_ids), 500):
                chunk = execution_ids[i:i + 500]
                query = select(*cols).where(execution_log.c.execution_id.in_(chunk))
                out += [dict(r._mapping) for r in conn.execute(query)]
        return out

    # cost ---------------------------------------------------------------------------
    def pids(self) -> dict[str, list[tuple[int, str]]]:
        workers = []
        for proc in self.workers:
            tree = process_tree(proc.pid)
            workers += [(p, "master" if p == proc.pid else "pool child") for p in tree]
        return {"bridge": [(self.bridge.pid, "bridge")], "workers": workers}

    def memory(self) -> dict[str, Any]:
        pids = self.pids()
        workers = [{"pid": p, "role": role, "rss_mb": rss_mb(p), "pss_mb": pss_mb(p)} for p, role in pids["workers"]]
        return {
            "bridge_rss_mb": rss_mb(self.bridge.pid),
            "bridge_pss_mb": pss_mb(self.bridge.pid),
            "workers": workers,
            "workers_rss_mb_total": round(sum(w["rss_mb"] or 0 for w in workers), 1),
            "workers_pss_mb_total": round(sum(w["pss_mb"] or 0 for w in workers), 1),
        }

    def cpu_snapshot(self) -> dict[str, dict[int, float]]:
        snap = {"bridge": cpu_by_pid(self.bridge.pid), "workers": {}}
        for proc in self.workers:
            snap["workers"].update(cpu_by_pid(proc.pid))
        return snap

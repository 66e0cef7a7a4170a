"""The whole gateway spread over the hosts of tests/support/hosts.py.

Redis, a private PostgreSQL cluster (initdb, its own data directory, listening on the db
host's address only) and the broker simulator each on a host of their own, two worker
hosts and two bridge hosts. The test drives it as ZERO does, from the root namespace,
through the bridge address: `HostsGateway` is tests/support/gateway.py's Gateway with its
processes started inside their namespaces (reset, publish, rows, orders work unchanged).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import redis
import requests

from zero_tasks.core import keys

from . import hosts
from .gateway import WORKER_KEYS, Gateway
from .hosts import BRIDGE_A, BRIDGE_B, BROKER, DB, REDIS, ROOT_ADDR, WORKER_A, WORKER_B, Host, Topology, wait_port
from .procs import CELERY, PYTHON, Proc, base_env, wait_for
from .quiescence import QUEUES

REDIS_PORT = 6379
PG_PORT = 5432
SIM_PORT = 8100
STREAM_PORT = 8101  # the simulator's trade_updates websocket
API_PORT = 8080
RABBITMQ_PROXY_PORT = 5672
PG_BIN = Path("/usr/local/bin")


class HostRedis:
    """redis-server on the Redis host; the shape Gateway expects of PrivateRedis."""

    def __init__(self, topo: Topology, log_dir: Path) -> None:
        self.port = REDIS_PORT
        binary = shutil.which("redis-server") or "redis-server"
        self.proc = topo.proc(REDIS, "redis", [binary, "--port", str(REDIS_PORT), "--bind", REDIS.addr,
                                               "--protected-mode", "no", "--save", "", "--appendonly", "no"],
                              dict(os.environ), log_dir)

    def start(self) -> HostRedis:
        self.proc.start()
        wait_for(lambda: self.client().ping(), 15, "redis host")
        return self

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host=REDIS.addr, port=REDIS_PORT, db=db, socket_timeout=5, socket_connect_timeout=2)

    def stop(self) -> None:
        self.proc.stop()


class HostPostgres:
    """A PostgreSQL cluster of its own on the db host (initdb; run as the postgres user,
    which PostgreSQL requires); removed with its data directory."""

    def __init__(self, topo: Topology, log_dir: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"{hosts.PREFIX}-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        self._initdb = [*as_postgres, str(PG_BIN / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres",
                        "--no-sync"]
        self.proc = topo.proc(DB, "postgres", [*as_postgres, str(PG_BIN / "postgres"), "-D", str(self.data),
                                               "-c", f"listen_addresses={DB.addr}", "-c", f"port={PG_PORT}",
                                               "-c", f"unix_socket_directories={self.dir}", "-c", "fsync=off",
                                               "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                              dict(os.environ), log_dir)
        self.url = f"postgresql://postgres@{DB.addr}:{PG_PORT}/postgres"

    def start(self) -> HostPostgres:
        subprocess.run(self._initdb, check=True, capture_output=True, timeout=120)
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {ROOT_ADDR.rsplit('.', 1)[0]}.0/24 trust\n")
        self.proc.start()
        wait_port(DB.addr, PG_PORT, 60, "postgres on the db host")
        return self

    def stop(self) -> None:
        self.proc.stop(timeout=20)
        shutil.rmtree(self.dir, ignore_errors=True)


def simulator(topo: Topology, log_dir: Path) -> Proc:
    return topo.proc(BROKER, "simulator", [PYTHON, "-m", "alpaca_paper_sim", "--host", BROKER.addr,
                                           "--port", str(SIM_PORT), "--stream-port", str(STREAM_PORT),
                                           "--always-open", "--fill-delay", "0",
                                           "--rate-limit", "100000"], dict(os.environ), log_dir)


class HostsGateway(Gateway):
    """Two worker hosts and two bridge hosts on the topology's Redis, PostgreSQL and broker.

    `broker_url` None runs Celery on the Redis host; an amqp:// URL (through the root
    namespace's proxy) runs it on RabbitMQ."""

    WORKER_HOSTS = (WORKER_A, WORKER_B)
    BRIDGE_HOSTS = (BRIDGE_A, BRIDGE_B)
    # A clean slate also keeps what names the messages already decided (their claims on the
    # bridges, their execution_id claims, their outbox): after a partition, bytes given up by
    # a process can still sit in its kernel's send queue and arrive once the link is back,
    # after the next test has begun (pub/sub messages to a bridge that was cut off, a
    # worker's last writes). They then meet their message's claims and change nothing, as in
    # production, where those claims live a day.
    KEPT_KEYS = (*WORKER_KEYS, *(prefix.encode() for prefix in (
        keys.BRIDGE_MSG_PREFIX, keys.SEEN_PREFIX, keys.DECISION_PREFIX, keys.STEP_PREFIX)))
    # No follow-up chain outlives its scenario: the simulator's clean slate forgets its
    # order, so the chain would look for it for hours, and its steps would run inside the
    # next scenarios' partitions (a Redis-broker worker running one while the Redis host was
    # cut off stopped for good: "Unrecoverable error: UnpicklingError", a stuck pool).
    FOLLOW_UPS_PENDING = True

    def __init__(self, topo: Topology, log_dir: Path, redis_host: HostRedis, database_url: str,
                 broker_url: str | None = None, **env: str) -> None:
        self.topo = topo
        extra = {"REDIS_HOST": REDIS.addr, "EXECUTION_API_PORT": str(API_PORT), **env}
        if broker_url:
            extra["CELERY_BROKER_URL"] = broker_url
        self.broker_url = broker_url
        super().__init__(log_dir, redis_host, f"http://{BROKER.addr}:{SIM_PORT}", database_url,  # type: ignore[arg-type]
                         workers=0, bridges=0, **extra)
        # The gateway's own broker URL is loopback (settings.py accepts nothing else but Alpaca
        # paper): a forwarder on each worker and bridge host carries it to the broker host.
        self.env = base_env(REDIS_PORT, f"http://127.0.0.1:{SIM_PORT}", database_url, API_PORT, **extra)
        self.forwarders = [topo.proc(host, f"forward-{host.name}",
                                     [PYTHON, "-m", "tests.support.tcp_forward", f"127.0.0.1:{SIM_PORT}",
                                      f"{BROKER.addr}:{SIM_PORT}"], self.env, log_dir)
                           for host in (*self.WORKER_HOSTS, *self.BRIDGE_HOSTS)]
        # and the trade_updates stream, for an account-mirror consumer on a worker host
        self.forwarders += [topo.proc(host, f"forward-stream-{host.name}",
                                      [PYTHON, "-m", "tests.support.tcp_forward", f"127.0.0.1:{STREAM_PORT}",
                                       f"{BROKER.addr}:{STREAM_PORT}"], self.env, log_dir)
                            for host in self.WORKER_HOSTS]
        self.worker_on: dict[str, Host] = {}
        self.workers = [self._worker(host) for host in self.WORKER_HOSTS]
        self.bridges = [self._bridge(host) for host in self.BRIDGE_HOSTS]

    def _worker(self, host: Host, **env: str) -> Proc:
        name = f"worker-{host.name}"
        self.worker_on[name] = host
        argv = [CELERY, "-A", "zero_tasks", "worker", "-c", "1", "-n", f"{name}@{host.name}",
                "-Q", ",".join(QUEUES), "--without-gossip", "--without-mingle", "-l", "INFO"]
        return self.topo.proc(host, name, argv, {**self.env, **env}, self.log_dir)

    def _bridge(self, host: Host) -> Proc:
        env = {**self.env, "EXECUTION_API_HOST": host.addr}
        return self.topo.proc(host, f"bridge-{host.name}", [PYTHON, "-m", "bridge"], env, self.log_dir)

    def restart_with(self, proc: Proc, **env: str) -> Proc:
        """The process started again with the gateway's environment plus `env` only (what an
        earlier restart added is gone)."""
        proc.stop()
        base = {**self.env, "EXECUTION_API_HOST": proc.env.get("EXECUTION_API_HOST", self.env["EXECUTION_API_HOST"])}
        proc.env = {**base, **env}
        return proc.start()

    def mirror(self, host: Host) -> Proc:
        """An account-mirror consumer on a worker host (not started): the test starts and
        stops it. While one leads and is in sync, row 9 is answered from the mirror."""
        env = {**self.env, "ALPACA_STREAM_URL": f"ws://127.0.0.1:{STREAM_PORT}/stream"}
        return self.topo.proc(host, f"mirror-{host.name}", [PYTHON, "-m", "zero_tasks.mirror"], env, self.log_dir)

    def beat(self, host: Host, **env: str) -> Proc:
        """Celery beat on a worker host (not started; one per deployment): it drives the
        position lifecycle (zero.lifecycle_tick). Only a test about exits runs one, so the
        other scenarios' entries are never protected or sold."""
        schedule = Path(tempfile.mkdtemp(prefix=f"{hosts.PREFIX}-beat-")) / "beat-schedule"
        argv = [CELERY, "-A", "zero_tasks", "beat", "-s", str(schedule), "-l", "INFO"]
        return self.topo.proc(host, f"beat-{host.name}", argv, {**self.env, **env}, self.log_dir)

    def worker(self, host: Host) -> Proc:
        return next(p for p in self.workers if self.worker_on[p.name] == host)

    def bridge(self, host: Host) -> Proc:
        return next(p for p in self.bridges if p.name == f"bridge-{host.name}")

    def health_of(self, host: Host) -> tuple[int, dict[str, Any]]:
        response = requests.get(f"http://{host.addr}:{API_PORT}/health", timeout=10)
        return response.status_code, response.json()

    def start(self) -> HostsGateway:
        for proc in self.forwarders:
            proc.start()
        super().start()
        return self

    def revive(self) -> HostsGateway:
        for proc in self.forwarders:
            if not proc.alive():
                proc.start()
        super().revive()
        return self

    def stop(self) -> None:
        super().stop()
        for proc in self.forwarders:
            proc.stop()

    def wait_ready(self, timeout: float = 90) -> None:
        alive = [p for p in self.workers if p.alive()]
        wait_for(lambda: self.workers_alive() >= len(alive), timeout, "workers alive")
        for proc in self.bridges:
            if proc.alive():
                host = BRIDGE_A if proc.name.endswith(BRIDGE_A.name) else BRIDGE_B
                wait_for(lambda h=host: self.health_of(h)[1]["bridge"]["subscribed"], timeout,
                         f"{proc.name} subscribed")

    def celery_broker_url(self) -> str:
        return self.broker_url or f"redis://{REDIS.addr}:{REDIS_PORT}/0"

    def diagnosis(self) -> dict[str, Any]:
        """What a stuck scenario needs said: what each quiescence probe still sees, kombu's
        unacked state, each bridge's counters."""
        out: dict[str, Any] = {"pending": self.quiescence.pending()}
        try:
            out["unacked_mutex"] = self.r.get("unacked_mutex")
            out["unacked_index"] = self.r.zrange("unacked_index", 0, -1, withscores=True)
            out["redis_time"] = self.r.time()
            out["blocked_pops"] = [(c.get("addr"), c.get("age"), c.get("idle")) for c in self.r.client_list()
                                   if c.get("cmd") in ("brpop", "blpop", "brpoplpush", "blmove")]
        except Exception as exc:  # noqa: BLE001 - a diagnosis never raises
            out["redis"] = repr(exc)
        for host in self.BRIDGE_HOSTS:
            try:
                out[host.name] = self.health_of(host)[1].get("bridge")
            except Exception as exc:  # noqa: BLE001
                out[host.name] = repr(exc)
        return out

    def settle(self, timeout: float = 120) -> None:
        """The base gateway's quiescence (tests/support/quiescence.py), with the longer wait
        a scenario needs after a partition (a worker back from a cut answers again)."""
        super().settle(timeout)

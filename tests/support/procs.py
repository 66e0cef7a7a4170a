"""Real processes for the tests: a private redis-server, Celery workers, the bridge.

A private Redis on a free port keeps the suite away from anything else on the machine's
Redis (pub/sub channels are global across DB numbers) and lets fault tests stop it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
import requests

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
CELERY = str(Path(PYTHON).with_name("celery"))
TEST_SIGNING_KEY = "test-task-signing-key-0123456789abcdef"  # bridges and workers of the tests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """The predicate's first truthy value. An exception means "not ready yet" (a refused
    connection, a missing key), except an AssertionError: a predicate that asserts has
    found a broken promise, and waiting longer would hide it. On timeout the last
    exception is named and chained, so the reason is not lost."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - not ready yet
            last, value = exc, None
        if value:
            return value
        time.sleep(interval)
    detail = f" (last error: {last!r})" if last is not None else ""
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}{detail}") from last


def children_of(pid: int) -> list[int]:
    """The processes `pid` started itself (Linux: /proc/<pid>/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in task.read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return found


def ended(pid: int) -> bool:
    """The process is gone, or a zombie: it has ended, whether or not it was reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class Proc:
    """A child process with its output in a log file, stopped politely then firmly."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with open(self.log_path, "ab") as log:  # the child has its own copy of the descriptor
            self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a Celery worker has pool children)."""
        if self.alive():
            os.killpg(self.pid, sig)
            self.popen.wait(timeout=15)

    def stop(self, timeout: float = 10) -> None:
        if not self.alive():
            return
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class PrivateRedis:
    def __init__(self, log_dir: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password  # --requirepass: every client must AUTH with it
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is needed for the end-to-end tests (apt-get install redis-server)")
        self.proc = Proc(f"redis-{self.port}", [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                               "--save", "", "--appendonly", "no",
                                               *(["--requirepass", password] if password else [])],
                         dict(os.environ), log_dir)

    def start(self) -> PrivateRedis:
        self.proc.start()
        wait_for(lambda: self.client().ping(), 10, "private redis")
        return self

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, password=self.password, socket_timeout=5)

    def clean_db(self, db: int) -> Iterator[redis.Redis]:
        """For a fixture: a client of database `db`, empty before the test and after it."""
        client = self.client(db=db)
        client.flushdb()
        yield client
        client.flushdb()

    def stop(self) -> None:
        self.proc.stop()


def base_env(redis_port: int, sim_url: str, database_url: str, api_port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "REDIS_", "CELERY_"))}
    env.update({
        "ALPACA_PAPER": "true", "ALPACA_API_KEY": "test-key-id", "ALPACA_SECRET_KEY": "test-secret-value",
        "TASK_SIGNING_KEY": TEST_SIGNING_KEY,
        "ALPACA_BASE_URL": sim_url, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_port), "REDIS_DB": "0",
        "DATABASE_URL": database_url, "EXECUTION_API_PORT": str(api_port), "EXECUTION_API_HOST": "127.0.0.1",
        "BROKER_MAX_RETRIES": "2", "BROKER_RETRY_BACKOFF_MAX_S": "1", "BROKER_TIMEOUT_S": "1.5",
        # off unless a test turns it on (test_keep_warm_e2e.py): its GET /v2/clock and budget
        # slots would otherwise land in tests that count them
        "BROKER_KEEP_WARM_S": "0",
        "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def duplicating(env: dict[str, str]) -> bool:
    """The duplicate experiment: start the test build that announces every decision twice
    (tests/support/duplicating.py) instead of the gateway."""
    return env.get("ZERO_TEST_DUPLICATE", os.environ.get("ZERO_TEST_DUPLICATE", "")) == "1"


def worker_proc(name: str, env: dict[str, str], log_dir: Path, concurrency: int = 1) -> Proc:
    app = "tests.support.duplicating" if duplicating(env) else "zero_tasks"
    return Proc(name, [CELERY, "-A", app, "worker", "-c", str(concurrency), "-n", f"{name}@%h",
                       "-Q", "zero_execution,zero_audit", "--without-gossip", "--without-mingle",
                       "-l", "INFO"], env, log_dir)


def bridge_proc(name: str, env: dict[str, str], log_dir: Path) -> Proc:
    module = "tests.support.duplicating" if duplicating(env) else "bridge"
    return Proc(name, [PYTHON, "-m", module], env, log_dir)


def mirror_proc(name: str, env: dict[str, str], log_dir: Path) -> Proc:
    """An account-mirror consumer (`python -m zero_tasks.mirror`)."""
    return Proc(name, [PYTHON, "-m", "zero_tasks.mirror"], env, log_dir)


def health(port: int) -> tuple[int, dict[str, Any]]:
    response = requests.get(f"http://127.0.0.1:{port}/health", timeout=10)
    return response.status_code, response.json()


RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def purge_rabbitmq(url: str = RABBITMQ_URL) -> None:
    """The gateway's queues emptied on the RabbitMQ at `url` (a queue not declared yet: nothing to do)."""
    from amqp.exceptions import NotFound
    from kombu import Connection

    with Connection(url, connect_timeout=10) as conn:
        for queue in ("zero_execution", "zero_audit"):  # celeryconfig.task_queues
            try:
                conn.channel().queue_purge(queue)
            except NotFound:  # it closes the channel: a new one for the next queue
                continue


def rabbitmq_available(url: str = RABBITMQ_URL) -> bool:
    """RabbitMQ answers at `url` (the fault and several-hosts suites skip without it, except
    under CI=true, where .ci/run starts it and a guarantee may not skip)."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:  # noqa: BLE001 - any failure to connect means not available
        return False

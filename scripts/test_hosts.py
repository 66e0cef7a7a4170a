"""`make test-hosts`: the several-hosts suite's two halves, one per Celery broker, side by side.

Each half is a pytest run of its own (`HOSTS_BROKER`, tests/conftest.py) on a topology of
its own (`HOSTS_NET`: its namespaces and subnet, tests/support/hosts.py), with its own
temporary directory, where its processes' logs stay after the run. Each line of output is
led by its half's broker. The exit status is 0 when both halves pass, else the first
failing half's. Arguments go to both pytest runs (`make test-hosts ARGS="-s -x"`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO

HALVES = (("redis", 17), ("rabbitmq", 18))  # (Celery broker, HOSTS_NET)
SUITE = "tests/test_hosts_e2e.py"
ROOT = Path(__file__).resolve().parent.parent


def start(broker: str, net: int, extra: list[str]) -> subprocess.Popen[str]:
    basetemp = Path(tempfile.gettempdir()) / f"zero-test-hosts-{broker}"
    argv = [sys.executable, "-m", "pytest", "-m", "hosts", SUITE, f"--basetemp={basetemp}", *extra]
    env = {**os.environ, "HOSTS_BROKER": broker, "HOSTS_NET": str(net), "PYTHONUNBUFFERED": "1"}
    print(f"[{broker}] {' '.join(argv[1:])}  (logs under {basetemp})", flush=True)
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")


def relay(broker: str, stream: IO[str], lock: threading.Lock) -> None:
    """Each line of a half's output, led by its broker, whole (the two halves interleave)."""
    for line in stream:
        with lock:
            sys.stdout.write(f"[{broker}] {line}")
            sys.stdout.flush()


def main(extra: list[str]) -> int:
    lock = threading.Lock()
    runs = [(broker, start(broker, net, extra)) for broker, net in HALVES]
    relays = [threading.Thread(target=relay, args=(broker, proc.stdout, lock)) for broker, proc in runs]
    for thread in relays:
        thread.start()
    try:
        codes = [(broker, proc.wait()) for broker, proc in runs]
    finally:
        for _, proc in runs:  # interrupted: no half outlives the runner
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
        for thread in relays:
            thread.join()
    for broker, code in codes:
        print(f"[{broker}] {'passed' if code == 0 else f'failed (pytest exit status {code})'}")
    return next((code for _, code in codes if code), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

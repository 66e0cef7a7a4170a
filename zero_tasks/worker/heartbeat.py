"""Workers announce themselves in Redis so /health can count them without a broadcast.

`celery inspect ping` costs a round of pidbox messages and a timeout; a key with a TTL
refreshed every few seconds is cheap and tells the truth within HEARTBEAT_TTL; the name goes
into the workers' registry beside it (adapters/registry.py), so /health reads, never scans.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from typing import Any

import redis
from celery import signals

from zero_tasks.adapters import registry
from zero_tasks.adapters.redis_clock import read_anchor
from zero_tasks.adapters.redis_state import connect
from zero_tasks.core import keys
from zero_tasks.settings import settings_or_exit
from zero_tasks.worker.watchdog import takes_work

HEARTBEAT_EVERY_S = 2
HEARTBEAT_TTL_S = 10
log = logging.getLogger(__name__)
_stop = threading.Event()


def _beat(hostname: str, concurrency: Any, controller: Any) -> None:
    r = connect(settings_or_exit().redis_url)
    started = time.time()
    while not _stop.is_set():
        try:
            if not takes_work(controller):  # stopping: /health counts it out now (watchdog.py)
                r.delete(keys.worker_alive_key(hostname))
                _stop.wait(HEARTBEAT_EVERY_S)
                continue
            # this host's wall clock against Redis's, for /health (decisions use Redis's: redis_clock.py)
            skew = round(read_anchor(r).skew_s, 3)
            value = json.dumps({"hostname": hostname, "pid": os.getpid(), "concurrency": concurrency,
                                "started": started, "clock_skew_s": skew})
            pipe = r.pipeline(transaction=False)
            pipe.set(keys.worker_alive_key(hostname), value, ex=HEARTBEAT_TTL_S)
            registry.register(pipe, keys.WORKERS_KEY, hostname, time.time())
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("heartbeat failed: %s", type(exc).__name__)
        _stop.wait(HEARTBEAT_EVERY_S)
    with contextlib.suppress(redis.RedisError):
        pipe = r.pipeline(transaction=False)
        pipe.delete(keys.worker_alive_key(hostname))
        registry.unregister(pipe, keys.WORKERS_KEY, hostname)
        pipe.execute()


@signals.worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None) or f"worker@{os.getpid()}"
    controller = getattr(sender, "controller", None)
    concurrency = getattr(controller, "concurrency", None)
    threading.Thread(target=_beat, args=(hostname, concurrency, controller), daemon=True, name="heartbeat").start()


@signals.worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    _stop.set()

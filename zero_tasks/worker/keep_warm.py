"""The worker's broker connections kept warm through the quiet minutes between rankings.

ZERO ranks about once a minute. A keep-alive connection left idle that long is closed by
the server (or a NAT, or a load balancer), and the next order pays a new TCP and TLS
handshake, two to three round trips to the broker, more than the gateway itself adds.
So each worker process runs one thread that, every BROKER_KEEP_WARM_S / 4 seconds, makes a
cheap call (GET /v2/clock) on each of its broker's two connections (AlpacaBroker: the main
one and the read thread's, row 9) that no call has used for BROKER_KEEP_WARM_S: a
connection is never idle much longer than 1.25 x BROKER_KEEP_WARM_S, so set it below
0.8 x the server's idle timeout. A connection the server closed all the same is opened
again here, ahead of the next order.

Each call takes a slot of the shared broker budget (RateLimitedBroker), as every broker
call does; when the budget is spent the call waits for a later round, never an order.
A connection in use (an order's call on it) is skipped, and an order's call never waits
for a keep-warm call to start; it can wait for the rest of one already on its connection
(at most one round trip, against the two or three of a new handshake).
BROKER_KEEP_WARM_S=0 turns it off.
"""

from __future__ import annotations

import logging
import threading

import redis

from zero_tasks.adapters.alpaca_adapter import BrokerRejected, BrokerTransient, RateLimitedBroker
from zero_tasks.adapters.risk import RateLimited

log = logging.getLogger(__name__)

CHECKS_PER_PERIOD = 4  # rounds per BROKER_KEEP_WARM_S: how late after the idle mark a call can come
_stop = threading.Event()


def once(broker: RateLimitedBroker, idle_s: float) -> list[str]:
    """One round: the connections warmed. Never raises (the thread must go on)."""
    try:
        return broker.keep_warm(idle_s)
    except RateLimited as exc:
        log.info("broker keep-warm skipped: the broker budget is spent (next slot in %.1fs)", exc.wait_s)
    except (BrokerTransient, BrokerRejected) as exc:
        log.warning("broker keep-warm call failed: %s", exc)
    except redis.RedisError as exc:
        log.warning("broker keep-warm skipped: the broker budget cannot be read (%s)", type(exc).__name__)
    except Exception:  # a bug here must not end the thread (logged with its traceback)
        log.exception("broker keep-warm round failed")
    return []


def run(broker: RateLimitedBroker, every_s: float, stop: threading.Event) -> None:
    while not stop.wait(every_s / CHECKS_PER_PERIOD):
        warmed = once(broker, every_s)
        if warmed:
            log.debug("broker keep-warm: %s", ", ".join(warmed))


def start() -> threading.Thread | None:
    """In a worker process, once it is warm (warm.py): the keep-warm thread, or None
    when BROKER_KEEP_WARM_S is 0 or the runtime cannot be built (the first message builds
    it then, and this process keeps no connection warm)."""
    from zero_tasks.worker.runtime import get_runtime

    try:
        rt = get_runtime()
    except Exception as exc:  # noqa: BLE001 - a bad configuration exits before this (celeryconfig)
        log.warning("broker keep-warm not started: runtime not built (%s)", type(exc).__name__)
        return None
    every_s = rt.settings.broker_keep_warm_s
    if every_s <= 0:
        return None
    thread = threading.Thread(target=run, args=(RateLimitedBroker(rt.broker, rt.rate_limit), every_s, _stop),
                              daemon=True, name="broker-keep-warm")
    thread.start()
    log.info("broker connections kept warm: a call on each one idle for %gs", every_s)
    return thread

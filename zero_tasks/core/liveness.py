"""Whether a worker still takes work, judged from what its watchdog saw (worker/watchdog.py).

A Celery worker can stay up and take nothing: its consumer gone after a broker connection
reset (celery#10205, #10302), or its warm shutdown hung on a pool process that will never
finish (after an "Unrecoverable error", say). Its supervisor sees a process and restarts
nothing; its heartbeat would go on telling /health it is there. The way out is to exit, so
the supervisor starts a fresh one; its unacked task comes back to the queue, and the claims
make a second run a no-op.

Pure: the watchdog brings what it saw and the monotonic clock; this says when to give up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sight:
    """One look at the worker.

    running: its main blueprint still runs (not stopping).
    consuming: its consumer answered through the broker and names every queue it must
    consume (True), did not answer or named fewer (False); None when nothing was asked or
    the broker did not take the question (unreachable: the consumer cannot be blamed).
    """

    at_s: float
    running: bool
    consuming: bool | None = None


@dataclass(frozen=True)
class Limits:
    deaf_after_s: float  # the broker takes questions, the consumer has answered none for this long
    stop_grace_s: float  # a shutdown that lasts longer than this is stuck


@dataclass(frozen=True)
class Liveness:
    """Since when the worker has been deaf, or stopping (None: it is not)."""

    deaf_since_s: float | None = None
    stopping_since_s: float | None = None

    def see(self, sight: Sight) -> Liveness:
        """The state after one more look."""
        if not sight.running:
            return Liveness(stopping_since_s=sight.at_s if self.stopping_since_s is None else self.stopping_since_s)
        if sight.consuming is not False:
            return Liveness()
        return Liveness(deaf_since_s=sight.at_s if self.deaf_since_s is None else self.deaf_since_s)

    def verdict(self, now_s: float, limits: Limits) -> str | None:
        """Why the worker must exit now, or None while it may go on."""
        if self.stopping_since_s is not None and now_s - self.stopping_since_s >= limits.stop_grace_s:
            return f"its shutdown has not finished in {now_s - self.stopping_since_s:.0f} s"
        if self.deaf_since_s is not None and now_s - self.deaf_since_s >= limits.deaf_after_s:
            return (f"its consumer has not taken its queues for {now_s - self.deaf_since_s:.0f} s "
                    "while the broker answered")
        return None

"""The one place the gateway reaches into kombu: a crash fix in its Redis transport.

When the Redis connection breaks, Celery closes the consumer's channel, and kombu's Redis
`QoS` can still be asked to reach Redis through that closed channel, whose connection is
now None: `AttributeError: 'NoneType' object has no attribute 'hostname'` (or `'client'`)
in `_connparams`, which Celery reports as "Unrecoverable error", and the worker exits.
Two moments do it:

- the close itself, restoring the messages the worker holds unacknowledged (late acks;
  retry countdowns and order follow-ups are held unacked): `QoS.restore_unacked` (seen in
  the Redis-restart fault test; upstream celery/kombu#582 and #970, the same family, open);
- a task that finished just before the break: Celery defers its acknowledgement to the
  next turn of its event loop, which runs it on the channel closed meanwhile:
  `QoS.ack`, or `QoS.reject` for a run that is given back (seen once in CI, after a
  Redis restart in tests/test_mirror_e2e.py).

Nothing needs doing there: the messages are still in kombu's unacked hash in Redis and
come back by the visibility-timeout sweep, where a copy of a run that already finished is
a no-op (the step guards and claims). So only that AttributeError is turned into a
warning, and the worker reconnects like after any outage.

`QoS.restore_unacked`, `QoS.ack` and `QoS.reject` of kombu's Redis transport are not a
public API. kombu is pinned exactly, and `apply` refuses any other installed version: a
new kombu is taken only after checking that the crash is still there and that these are
still the methods Celery's channel close and its acknowledgements call, then moving PINNED
with the lock.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from kombu.transport import redis as kombu_redis

from zero_tasks.adapters.pins import require_version

log = logging.getLogger(__name__)
PINNED = "5.7.0"
ORIGINAL = {name: getattr(kombu_redis.QoS, name) for name in ("restore_unacked", "ack", "reject")}


def require_pinned(installed: str | None = None) -> None:
    """Stop the process unless the installed kombu is the pinned one."""
    require_version("kombu", PINNED, installed=installed, why=(
        "zero_tasks/adapters/kombu_fixes.py wraps kombu's Redis QoS.restore_unacked, ack and reject, which are "
        f"not public (a crash fix, celery/kombu#582). Install kombu=={PINNED}, or check the fix against the new "
        "version and move PINNED and the lock together."))


def _connection_gone(exc: AttributeError) -> bool:
    return "'NoneType' object has no attribute" in str(exc)


def _absorbing_gone_connection(original: Callable[..., Any], what: str, instead: Any) -> Callable[..., Any]:
    """`original`, with the closed channel's AttributeError turned into a warning and `instead`."""

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except AttributeError as exc:
            if not _connection_gone(exc):
                raise
            log.warning("redis connection gone while %s: they return after the visibility timeout", what)
            return instead

    return wrapper


FIXED = {
    "restore_unacked": _absorbing_gone_connection(ORIGINAL["restore_unacked"], "restoring unacked messages", ()),
    "ack": _absorbing_gone_connection(ORIGINAL["ack"], "acknowledging messages", None),
    "reject": _absorbing_gone_connection(ORIGINAL["reject"], "rejecting messages", None),
}


def apply() -> None:
    require_pinned()
    for name, method in FIXED.items():
        # deliberate: the crash fix replaces kombu's methods (see the module docstring)
        setattr(kombu_redis.QoS, name, method)

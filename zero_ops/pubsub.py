"""Redis pub/sub for `tail` and `publish-sample`: subscribe for sure, then read with a deadline.

A SUBSCRIBE is only in force once Redis confirms it; publishing before the confirmation
could miss the answer, so `subscribe` waits for it. Messages stay bytes (a non-UTF-8
message must not crash the reader) and are decoded with errors="replace".
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import redis

CONFIRM_TIMEOUT_S = 5.0
POLL_S = 0.2


def subscribe(r: redis.Redis, channel: str) -> redis.client.PubSub:
    """A PubSub on `channel` whose subscription Redis has confirmed."""
    pubsub = r.pubsub()
    pubsub.subscribe(channel)
    deadline = time.monotonic() + CONFIRM_TIMEOUT_S
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=POLL_S)
        if message and message["type"] == "subscribe":
            return pubsub
    pubsub.close()
    raise redis.TimeoutError(f"no confirmation of SUBSCRIBE {channel} within {CONFIRM_TIMEOUT_S:.0f}s")


def messages(pubsub: redis.client.PubSub, timeout: float | None = None) -> Iterator[str]:
    """Each message's data as text, until `timeout` seconds pass (forever when None)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        wait = POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic()))
        message = pubsub.get_message(timeout=wait)
        if message and message["type"] in ("message", "pmessage"):
            yield as_text(message["data"])


def as_text(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return str(data)


def wait_for_decision(pubsub: redis.client.PubSub, exec_id: str, timeout: float) -> dict[str, Any] | None:
    """The first TradeUpdate for `exec_id`; other traffic on the channel is ignored."""
    for text in messages(pubsub, timeout):
        try:
            update = json.loads(text)
        except ValueError:
            continue
        if isinstance(update, dict) and update.get("execution_id") == exec_id:
            return update
    return None

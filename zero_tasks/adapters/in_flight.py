"""The hand-over ledger: messages put on the worker queue and not decided yet.

kombu's Redis transport takes a task off the queue (BRPOP) and only then writes it to its
unacked hash. A worker whose main process dies in between, or that stops while a BRPOP
reply is still in its socket (celery/celery#4354, #7950), loses the task for good: late
acks and the visibility timeout never see it, and nothing would ever decide that
message. So every message a bridge puts on the queue is also written here just before
`send_task`, the outbox script that keeps the message's decision removes it in the same
step, and the bridges queue again whatever stays here longer than
HANDOVER_RESCUE_AFTER_S (`due`).

Queuing a message twice is harmless, which is what makes this safe to run on every
bridge: the decision outbox keeps the first decision of a message, its execution_id
claim remembers the message (a second run looks the order up by client_order_id before
sending), and the broker refuses a second order with the same client_order_id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from zero_tasks.adapters import scripts
from zero_tasks.core import keys
from zero_tasks.core.task_auth import SEAL_MAX_AGE_S

# Past this its decide task's seal has expired (task_auth.SEAL_MAX_AGE_S, counted from the
# hand-over, just after the message was heard): queued again it would only be refused.
GIVE_UP_AFTER = timedelta(seconds=SEAL_MAX_AGE_S - 600)


@dataclass(frozen=True)
class Entry:
    """What it takes to queue the message again: the decide task's id and argument."""

    task_id: str
    message: dict[str, Any]

    @property
    def message_id(self) -> str:
        return str(self.message["message_id"])

    def to_json(self) -> str:
        return json.dumps({"task_id": self.task_id, "message": self.message}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Entry:
        """Raises ValueError for anything that is not an entry this module wrote."""
        try:
            data = json.loads(raw)
            return cls(str(data["task_id"]), dict(data["message"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a hand-over entry ({type(exc).__name__})") from exc

    def too_old(self, now: datetime) -> bool:
        """Heard longer ago than its seal lasts (GIVE_UP_AFTER), or when is unreadable: not
        queued again."""
        try:
            heard = datetime.fromisoformat(str(self.message["received_at"]))
            return now - heard > GIVE_UP_AFTER
        except (KeyError, ValueError, TypeError):
            return True


async def record(client: aioredis.Redis, entries: list[Entry]) -> None:
    """Before these messages go on the queue by `send_task` (one round trip)."""
    if entries:
        args = [part for e in entries for part in (e.message_id, e.to_json())]
        await scripts.register(client, "ledger_record")(keys=[keys.IN_FLIGHT_KEY, keys.IN_FLIGHT_TASKS_KEY], args=args)


async def due(client: aioredis.Redis, after_s: float, limit: int = 100) -> list[Entry]:
    """The messages handed over at least `after_s` ago without a decision, taken by this sweep."""
    raw = await scripts.register(client, "ledger_due")(keys=[keys.IN_FLIGHT_KEY, keys.IN_FLIGHT_TASKS_KEY],
                                                       args=[int(after_s * 1000), limit])
    return [Entry.from_json(item) for item in raw]


async def forget(client: aioredis.Redis, message_id: str) -> None:
    await client.zrem(keys.IN_FLIGHT_KEY, message_id)
    await client.hdel(keys.IN_FLIGHT_TASKS_KEY, message_id)


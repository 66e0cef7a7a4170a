"""Delayed tasks on the Redis transport: how long one may wait, and when a copy is a copy.

Pure policy (numbers in, decisions out); the Redis and Celery edge is `delayed_send.py`.

Why hops. A task sent with a countdown is delivered at once and held by a worker, unacked,
until its time; kombu's Redis transport puts every message unacked for longer than the
visibility timeout back on the queue (Celery's documented caveat for ETA tasks on Redis),
so a countdown longer than it is run twice, and every copy schedules the next step. A
message is held at most its countdown plus its run (the task time limit), so a countdown
is kept to HOP_SHARE of what the visibility timeout leaves after the time limit: a longer
wait becomes a chain of short hops, each carrying the due time.

Why a step guard, and its TTL. A copy can still come (a pool busy past a hop, a worker
killed mid-task); a step runs only for whoever claims it first. The claim says "running"
for the task time limit, then "done" for DONE_TTL_S:
- a live original is killed at the time limit, so while the claim says "running" it may
  still be working: a copy then does nothing;
- kombu gives a message back only a visibility timeout after it was delivered, and the
  original claimed it at most a hop later and held the claim for at most the time limit,
  which together stay under the visibility timeout: so the copy of a step whose worker
  really died finds no claim, and runs;
- once done, any later copy (queued behind a backlog, say) does nothing for a day.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

HOP_SHARE = 0.5  # of visibility timeout minus task time limit: a wide margin for a busy pool
DONE_TTL_S = 24 * 3600
RUNNING = "running"
DONE = "done"


def hop_max_s(visibility_timeout_s: float, task_time_limit_s: float) -> float:
    """The longest countdown a message may carry (Settings keeps the slack positive)."""
    return max(0.5, (visibility_timeout_s - task_time_limit_s) * HOP_SHARE)


@dataclass(frozen=True)
class Hop:
    """Send the target after `countdown` (final), or another hop after `countdown`."""

    countdown: float
    final: bool


def next_hop(now_s: float, due_s: float, hop_s: float) -> Hop:
    """The next message on the way to `due_s`: the target itself once it is within a hop."""
    remaining = max(0.0, due_s - now_s)
    if remaining <= hop_s:
        return Hop(countdown=remaining, final=True)
    return Hop(countdown=hop_s, final=False)


def hop_task_id(target_task_id: str, index: int) -> str:
    """Deterministic along the chain: two copies of one hop make the same next hop, and the
    step guard lets only one of them through."""
    return f"{target_task_id}:hop:{index}"


class StepVerdict(StrEnum):
    RUN = "run"
    RUNNING_ELSEWHERE = "running elsewhere"
    ALREADY_DONE = "already done"


def step_verdict(claimed: bool, holder: str | None) -> StepVerdict:
    """What a delivery of a step does, given its claim attempt and who held the claim."""
    if claimed:
        return StepVerdict.RUN
    return StepVerdict.ALREADY_DONE if holder == DONE else StepVerdict.RUNNING_ELSEWHERE


def running_ttl_s(task_time_limit_s: float) -> int:
    return max(1, int(task_time_limit_s))


def period_index(now_s: float, period_s: float) -> int:
    """The period a periodic run belongs to: the same number on every host (Redis's clock),
    so one claim per period however many beats sent the task."""
    return int(now_s // period_s)

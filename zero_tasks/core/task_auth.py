"""Who may ask the worker for a decision or an order: only a holder of TASK_SIGNING_KEY.

A Celery task is a JSON message on a Redis list; anyone who can reach that Redis (or an
authenticated Flower user, through its send-task API) can write one. So a task carries no
authority of its own: the bridge seals every decide task, and the worker every order task
it schedules, with an HMAC-SHA256 over the task's name and its argument; the worker opens
the seal before anything else runs. A task that fails is not run: it ends as one audited
ERROR decision (`error: forged task ...`) under a key of its own, so a forgery can neither
reach the broker nor take the place of a real message's decision.

A seal also carries when it was made (`sealed_at`, inside the digest) and is refused once
it is older than SEAL_MAX_AGE_S: a task copied off the queue and replayed after its
message's claims and outbox expired (CLAIM_TTL_SECONDS, measured from the decision, which
comes after the seal) would otherwise be decided a second time, under the real message's
decision id. The bound is far longer than any legitimate wait of a sealed task (an order
round's retries and hops take minutes, a hand-over rescue gives up at the same bound) and
leaves hours between it and the claims' expiry for hosts whose clocks disagree.

The seal is the first line only. An order task that passes it is still checked against
the payload it carries (flow.place derives the ticker and execution_id from it) and
against the reservations it is about to use (`forged_holdings`).

Pure: the key and the time are passed in, nothing here reads Redis or the clock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from zero_tasks.core.keys import CLAIM_TTL_SECONDS

SEAL_FIELD = "seal"
SEALED_AT_FIELD = "sealed_at"
MIN_KEY_LENGTH = 32
SEAL_MAX_AGE_S = 20 * 3600  # < CLAIM_TTL_SECONDS: a seal dies hours before the claims it protects
SEAL_MAX_AHEAD_S = 300  # a sealer's clock ahead of the opener's by more than this: refused
assert SEAL_MAX_AGE_S + 3600 < CLAIM_TTL_SECONDS


def _digest(key: str, task: str, body: dict[str, Any]) -> str:
    text = json.dumps([task, body], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def seal(key: str, task: str, body: dict[str, Any], issued_at: datetime | None = None) -> dict[str, Any]:
    """The task argument with its seal: valid only for `task`, exactly this body, and until
    SEAL_MAX_AGE_S after `issued_at` (a body that carries its `sealed_at` already keeps it)."""
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError("no TASK_SIGNING_KEY here: nothing can be sealed")
    unsealed = {k: v for k, v in body.items() if k != SEAL_FIELD}
    if issued_at is not None:
        unsealed[SEALED_AT_FIELD] = issued_at.isoformat()
    if not isinstance(unsealed.get(SEALED_AT_FIELD), str):
        raise ValueError("a seal needs the time it is made")
    return {**unsealed, SEAL_FIELD: _digest(key, task, unsealed)}


def open_seal(key: str, task: str, argument: object, now: datetime,
              max_age_s: float = SEAL_MAX_AGE_S) -> tuple[dict[str, Any] | None, str | None]:
    """(the body without its seal and time, None) when `argument` was sealed for `task`
    with `key` less than `max_age_s` ago; otherwise (None, why it is refused)."""
    if len(key) < MIN_KEY_LENGTH:  # an empty key would open what anyone sealed with it
        return None, "this process has no TASK_SIGNING_KEY: no seal opens"
    if not isinstance(argument, dict):
        return None, f"argument is a {type(argument).__name__}, not a sealed object"
    given = argument.get(SEAL_FIELD)
    if not isinstance(given, str):
        return None, "no seal"
    body = {k: v for k, v in argument.items() if k != SEAL_FIELD}
    try:
        expected = _digest(key, task, body)
    except (TypeError, ValueError):
        return None, "argument is not plain JSON"
    if not hmac.compare_digest(given, expected):
        return None, "seal does not match (not made with this gateway's TASK_SIGNING_KEY for this task)"
    problem = _age_problem(body.pop(SEALED_AT_FIELD, None), now, max_age_s)
    return (None, problem) if problem else (body, None)


def _age_problem(sealed_at: object, now: datetime, max_age_s: float) -> str | None:
    """Why a seal made at `sealed_at` is no longer (or not yet) good at `now`; None when it is."""
    if not isinstance(sealed_at, str):
        return "seal has no time (made before seals expired)"
    try:
        made = datetime.fromisoformat(sealed_at)
        age = (now - made).total_seconds()
    except (ValueError, TypeError):
        return f"seal time {sealed_at[:40]!r} is not an ISO time with an offset"
    if age > max_age_s:
        return f"seal expired (made {age:.0f} s ago, good for {max_age_s:.0f} s)"
    if age < -SEAL_MAX_AHEAD_S:
        return f"seal made {-age:.0f} s in the future"
    return None


def record_seal(key: str, kind: str, text: str) -> str:
    """The seal of a record the gateway keeps in Redis for itself (a lifecycle record): a
    hand-written or altered one does not match, so it carries no authority either."""
    return hmac.new(key.encode(), f"{kind}\n{text}".encode(), hashlib.sha256).hexdigest()


def record_sealed(key: str, kind: str, text: str, given: str | None) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given, record_seal(key, kind, text))


def forgery_key(task: str, argument: object) -> str:
    """The event key of a refused task: the same forgery sent twice is one decision, and it
    never collides with a real message's id."""
    try:
        text = json.dumps([task, argument], sort_keys=True, default=repr)
    except (TypeError, ValueError):
        text = repr((task, argument))
    return "forged:" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:24]


@dataclass(frozen=True)
class Holdings:
    """Who holds the reservations an order is about to use, as read from Redis."""

    claim_owner: str | None  # message_id holding key:execution_seen:<execution_id>
    cooldown_owner: str | None  # execution_id holding the ticker's cooldown reservation
    has_daily_slot: bool  # the execution_id holds a slot of the message's trading day


def forged_holdings(holdings: Holdings, message_id: str, execution_id: str, ticker: str) -> str | None:
    """Why an order task may not use these reservations, or None when they are its own.

    Only the admission (rows 7-8 and the daily cap, passed by this very message) makes
    them; an order task for anything else did not pass the decision table."""
    if holdings.claim_owner != message_id:
        return f"claim of {execution_id} is not held by message {message_id}"
    if holdings.cooldown_owner != execution_id:
        return f"cooldown reservation of {ticker} is not held by {execution_id}"
    if not holdings.has_daily_slot:
        return f"{execution_id} holds no order slot of its trading day"
    return None

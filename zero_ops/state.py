"""What the gateway would see right now: the Redis side of `status` and `enable`, as plain dicts.

Every function returns JSON-ready values, so `status --json` and the human view are the
same facts. The market-state and stand-down rules are the gateway's own (zero_tasks.core.pipeline),
not a re-implementation that could drift.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import redis

from zero_tasks.adapters import registry
from zero_tasks.adapters.redis_state import kept_session as kept_session_of
from zero_tasks.core import keys, session
from zero_tasks.core.checks.market_state import check_market_state, parse_market_state
from zero_tasks.core.contract import StandDownSignal
from zero_tasks.core.snapshot import Snapshot

CELERY_QUEUES = ("zero_execution", "zero_audit")
OWNER_SUFFIX = ":owner"  # redis_state's helper key next to each cooldown: not a cooldown


def read_keys(r: redis.Redis) -> Snapshot:
    """The operator/regime keys and the kept trading session in one round trip, as the gateway reads them."""
    enabled, market, stand_down, kept = r.mget(keys.EXECUTION_ENABLED_KEY, keys.MARKET_STATE_KEY,
                                               keys.STAND_DOWN_KEY, keys.SESSION_KEY)
    return Snapshot(reply_text(enabled), reply_text(market), reply_text(stand_down), session=reply_text(kept))


def reply_text(value: bytes | str | None) -> str | None:
    """A Redis reply as text, whether the client decodes replies or not."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def kill_switch(raw: str | None) -> dict[str, Any]:
    """Enabled only when exactly "true": anything else (missing included) is off."""
    return {"enabled": raw == "true", "value": raw}


def market_state(raw: str | None, now: datetime, max_age_s: float | None, kept_session: str | None) -> dict[str, Any]:
    """State, age, the trading session the workers last heard from the broker, and `veto`:
    the gateway's own objection (row 3), None if it would trade. The kept session counts
    only when its seal opens (redis_state.kept_session), as the workers count it."""
    kept, refused = kept_session_of(kept_session)
    verdict = check_market_state(Snapshot("true", raw, None, session=kept, session_error=refused), now, max_age_s)
    current = session.parse(kept) if refused is None else refused
    view: dict[str, Any] = {"state": None, "timestamp": None, "age_s": None, "max_age_s": max_age_s,
                            "reason": None, "problem": None, "veto": verdict.reason if verdict else None,
                            "session": None if isinstance(current, str) else {
                                "is_open": current.is_open,
                                "opened_at": current.opened_at.isoformat() if current.opened_at else None,
                                "until": current.until.isoformat(),
                                "next_open": current.next_open.isoformat() if current.next_open else None},
                            "session_problem": current if isinstance(current, str) else None}
    parsed = parse_market_state(raw)
    if isinstance(parsed, str):
        view["problem"] = parsed
        return view
    age = (now - parsed.timestamp).total_seconds()
    view.update(state=parsed.state, timestamp=parsed.timestamp.isoformat(), age_s=round(age, 1), reason=parsed.reason)
    return view


def stand_down(raw: str | None, now: datetime) -> dict[str, Any]:
    """The StandDownSignal and whether it is in force; unreadable counts as in force (fail closed)."""
    view: dict[str, Any] = {"present": raw is not None, "in_force": False, "scope": None, "ticker": None,
                            "sector": None, "reason": None, "expires_at": None, "problem": None}
    if raw is None:
        return view
    try:
        signal = StandDownSignal.model_validate_json(raw)
    except ValueError:
        view.update(in_force=True, problem="key:stand_down_reason is unreadable; the gateway fails closed")
        return view
    expired = signal.expires_at is not None and signal.expires_at <= now
    view.update(in_force=not expired, scope=signal.scope, ticker=signal.ticker, sector=signal.sector,
                reason=signal.reason, expires_at=signal.expires_at.isoformat() if signal.expires_at else None)
    return view


def cooldowns(r: redis.Redis) -> list[dict[str, Any]]:
    """Tickers in their cooldown: key:execution_cooldown:<ticker>, skipping the `:owner` helpers."""
    names = sorted(k for k in r.scan_iter(match=keys.COOLDOWN_PREFIX + "*", count=500)
                   if not k.endswith(OWNER_SUFFIX))
    return [{"ticker": name[len(keys.COOLDOWN_PREFIX):], "since": since, "ttl_s": ttl}
            for name, (since, ttl) in zip(names, _values_and_ttls(r, names), strict=True)
            if since is not None]


def workers(r: redis.Redis) -> list[dict[str, Any]]:
    """Worker heartbeats (key:execution_worker:<hostname>, TTL 10 s, the names in the workers'
    registry): present means alive."""
    names = [keys.worker_alive_key(name) for name in registry.names(r, keys.WORKERS_KEY)]
    alive = []
    for name, (value, ttl) in zip(names, _values_and_ttls(r, names), strict=True):
        if value is None:
            continue  # registered, but its heartbeat has expired: not alive
        info = _json_object(value)
        alive.append({"hostname": info.get("hostname", name[len(keys.WORKER_ALIVE_PREFIX):]),
                      "pid": info.get("pid"), "concurrency": info.get("concurrency"),
                      "started": info.get("started"), "ttl_s": ttl})
    return alive


def queue_depths(broker_url: str) -> dict[str, int] | str:
    """LLEN of the Celery queues, only when the Celery broker is Redis; "n/a" otherwise."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return "n/a"
    client = redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=3)
    try:
        return {queue: int(client.llen(queue)) for queue in CELERY_QUEUES}
    except redis.RedisError as exc:
        return f"unavailable ({type(exc).__name__})"
    finally:
        client.close()


def _values_and_ttls(r: redis.Redis, names: list[str]) -> list[tuple[str | None, int | None]]:
    """GET and TTL of many keys in one pipeline; a TTL of -1/-2 becomes None."""
    if not names:
        return []
    pipe = r.pipeline(transaction=False)
    for name in names:
        pipe.get(name)
        pipe.ttl(name)
    results = pipe.execute()
    return [(results[i], results[i + 1] if results[i + 1] >= 0 else None) for i in range(0, len(results), 2)]


def _json_object(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}

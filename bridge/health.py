"""GET /health: the truth about Redis, the audit database, the broker and the workers.

`down` when Redis is unreachable (nothing can be decided, and nothing will be ordered);
`degraded` when Redis answers but the database, the broker or the workers do not, or
when an audit writer reports that it cannot write execution_log (audit_health.py);
`ok` otherwise. No secret is ever part of the answer. The account mirror is shown (who
leads, in sync or why not, its counters) but is not a check: out of sync, row 9 asks the
broker as it always did.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from zero_tasks.adapters import metrics, redis_clock, registry
from zero_tasks.adapters.audit_health import FAILING_KEY, audit_check, failure_key
from zero_tasks.adapters.mirror_store import read_status_async
from zero_tasks.adapters.outbox import AUDIT_STREAM
from zero_tasks.adapters.redis_clock import Anchor
from zero_tasks.adapters.redis_state import kept_session
from zero_tasks.core import keys, session
from zero_tasks.core.checks.market_state import check_market_state, parse_market_state
from zero_tasks.core.mirror import status_view
from zero_tasks.core.snapshot import Snapshot
from zero_tasks.secrets import cut, scrub

from .metrics import queue_depths  # the same LLEN the metrics use
from .read_clients import ReadClients

BROKER_CACHE_S = 10.0
CHECK_TIMEOUT_S = 2.0


@dataclass
class HealthSources:
    clients: ReadClients  # pooled, made once (read_clients.py)
    db_ping: Callable[[], None]  # a blocking SELECT 1 (db_probe.pinger)
    broker_probe: Callable[[], str]
    database_label: str
    stats: Callable[[], dict[str, Any]] = dict
    market_state_max_age_s: float | None = None
    mirror_max_age_s: float = 3.0
    mirror_seal_key: str = ""  # TASK_SIGNING_KEY: a sync record not sealed with it is not in sync
    _broker_cache: tuple[float, dict[str, Any]] | None = field(default=None, repr=False)


def _check(ok: bool, detail: str, started: float) -> dict[str, Any]:
    return {"ok": ok, "detail": detail, "ms": round(1000 * (time.perf_counter() - started), 1)}


async def _redis_view(client: aioredis.Redis) -> tuple[dict[str, Any], dict[str, Any]]:
    started = time.perf_counter()
    try:
        await client.ping()
        enabled, market, breaker, last, session_raw = await client.mget(
            keys.EXECUTION_ENABLED_KEY, keys.MARKET_STATE_KEY, keys.BREAKER_KEY, metrics.LAST_DECISION,
            keys.SESSION_KEY)
        beats = await registry.present_async(client, keys.WORKERS_KEY, keys.worker_alive_key)
        failing = await registry.present_async(client, FAILING_KEY, failure_key)
        view = {"execution_enabled": enabled == b"true", "market_state_raw": market, "workers": len(beats),
                "worker_beats": beats,
                "session_raw": session_raw,
                "breaker_raw": breaker, "last_decision_age_s": _age(last),
                "audit_backlog": int(await client.xlen(AUDIT_STREAM)),
                "in_flight": int(await client.zcard(keys.IN_FLIGHT_KEY)),
                "audit_failures": failing,
                "mirror": await read_status_async(client)}
        return _check(True, "ping ok", started), view
    except Exception as exc:  # noqa: BLE001 - any failure means Redis is not usable
        return _check(False, f"unreachable: {type(exc).__name__}", started), {}


async def _database(src: HealthSources) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.to_thread(src.db_ping), CHECK_TIMEOUT_S + 2)
        return _check(True, f"{src.database_label} reachable", started)
    except Exception as exc:  # noqa: BLE001
        return _check(False, f"{src.database_label} unreachable: {type(exc).__name__}", started)


async def _broker(src: HealthSources) -> dict[str, Any]:
    now = time.monotonic()
    if src._broker_cache and now - src._broker_cache[0] < BROKER_CACHE_S:
        return src._broker_cache[1]
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(asyncio.to_thread(src.broker_probe), CHECK_TIMEOUT_S + 5)
        result = _check(True, detail, started)
    except Exception as exc:  # noqa: BLE001
        result = _check(False, f"unreachable: {type(exc).__name__}: {cut(str(exc), 120)}", started)
    src._broker_cache = (now, result)
    return result


def _market_state(raw: bytes | None) -> tuple[str | None, float | None]:
    if raw is None:
        return None, None
    try:
        state = parse_market_state(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, None
    if isinstance(state, str):
        return None, None
    return state.state, round(time.time() - state.timestamp.timestamp(), 1)


def _market_view(market_raw: bytes | None, session_raw: bytes | None,
                 max_age_s: float | None) -> tuple[dict[str, Any] | None, str | None]:
    """The trading session the workers last heard from the broker, and row 3's objection to
    the market state now (None: it would permit an order). A regime service that died
    in GREEN shows here as an hours-old GREEN with no objection, until the session closes."""
    try:
        market, kept = (v.decode("utf-8") if v is not None else None for v in (market_raw, session_raw))
    except UnicodeDecodeError:
        return None, "unreadable (not UTF-8)"
    kept, refused = kept_session(kept)  # a session nobody sealed is none (session.py)
    current = session.parse(kept) if refused is None else refused
    view = None if isinstance(current, str) else {
        "is_open": current.is_open, "opened_at": _iso(current.opened_at), "until": _iso(current.until),
        "next_open": _iso(current.next_open)}
    verdict = check_market_state(Snapshot("true", market, None, session=kept, session_error=refused),
                                 datetime.now(UTC), max_age_s)
    return view, verdict.reason if verdict else None


def _mirror(raw: dict[str, Any] | None, max_age_s: float, seal_key: str) -> dict[str, Any] | None:
    """Not a check: a mirror out of sync only sends row 9 to the broker, as before it existed."""
    if raw is None:
        return None
    return status_view(raw["lease"], raw["sync"], raw["stats"], datetime.now(UTC), max_age_s, seal_key)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _age(raw: bytes | str | None) -> float | None:
    if raw is None:
        return None
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw  # UnicodeDecodeError is a ValueError
        return round(time.time() - datetime.fromisoformat(text).timestamp(), 1)
    except ValueError:
        return None


def _breaker(raw: bytes | None) -> dict[str, Any]:
    """Open breaker = degraded: the gateway watches but submits nothing."""
    if raw is None:
        return {"ok": True, "detail": "closed"}
    try:
        state = json.loads(raw)
    except ValueError:
        state = {}
    return {"ok": False, "detail": f"OPEN since {state.get('since')}: {state.get('reason')}",
            "until": state.get("until")}


async def _queues(src: HealthSources) -> dict[str, int] | None:
    try:
        return await queue_depths(src.clients.queues()) or None
    except Exception:  # noqa: BLE001 - part of Redis' own check
        return None


async def health(src: HealthSources) -> tuple[int, dict[str, Any]]:
    (redis_check, view), database, broker = await asyncio.gather(
        _redis_view(src.clients.state()), _database(src), _broker(src))
    workers_alive = view.get("workers", 0)
    workers = {"ok": workers_alive > 0, "detail": f"{workers_alive} worker(s) alive", "alive": workers_alive}
    market, market_age = _market_state(view.get("market_state_raw"))
    trading_session, market_veto = _market_view(view.get("market_state_raw"), view.get("session_raw"),
                                                src.market_state_max_age_s)
    breaker_state = _breaker(view.get("breaker_raw"))
    checks = {"redis": redis_check, "database": database, "broker": broker, "workers": workers,
              "circuit_breaker": breaker_state,
              "audit": audit_check(view.get("audit_failures", []))}  # the writers' own failure reports
    if not redis_check["ok"]:
        status = "down"
    elif all(c["ok"] for c in checks.values()):
        status = "ok"
    else:
        status = "degraded"
    body = {
        "status": status,
        "paper": True,
        "execution_enabled": bool(view.get("execution_enabled", False)),
        "market_state": market,
        "market_state_age_s": market_age,
        "market_state_veto": market_veto if redis_check["ok"] else None,  # row 3's objection now, if any
        "trading_session": trading_session,  # as the broker last told a worker; null until one asked
        "last_decision_age_s": view.get("last_decision_age_s"),
        "queue_depth": await _queues(src),
        "audit_backlog": view.get("audit_backlog"),  # decisions not yet written to execution_log
        "in_flight": view.get("in_flight"),  # messages on the worker queue, not decided yet (handover.py)
        "database": src.database_label,
        "clock": clock_view(view.get("worker_beats", []), redis_clock.CLOCK.anchor),
        # row 9's account mirror (zero_tasks/mirror)
        "mirror": _mirror(view.get("mirror"), src.mirror_max_age_s, src.mirror_seal_key),
        "checks": checks,
        **src.stats(),
    }
    return (503 if status == "down" else 200), body


def clock_view(beats: list[bytes | None], own: Anchor | None) -> dict[str, Any]:
    """Each host's wall clock against the Redis host's, in seconds (positive: ahead). The
    gateway judges time by Redis's clock (redis_clock.py), so a skew here is not a wrong
    decision; it says which host's NTP to fix (its logs and its Celery ETAs use its own)."""
    workers: dict[str, float] = {}
    for raw in beats:
        try:
            beat = json.loads(raw) if raw else {}
        except ValueError:
            continue
        if isinstance(beat, dict) and isinstance(beat.get("clock_skew_s"), (int, float)):
            workers[str(beat.get("hostname"))] = beat["clock_skew_s"]
    bridge = round(own.skew_s, 3) if own else None
    known = [abs(s) for s in [*workers.values(), *([bridge] if bridge is not None else [])]]
    return {"bridge_skew_s": bridge, "workers_skew_s": workers, "max_abs_skew_s": max(known) if known else None}


def render(body: dict[str, Any]) -> bytes:
    """Scrubbed as a whole: a check's detail, the breaker's reason and the bridge's stats
    all come from text the gateway did not write itself."""
    return scrub(json.dumps(body, default=str)).encode()

"""Redis edge of the decision: the snapshot read, the execution_id claim, the cooldown.

Claim, cooldown and the day's order slot are one Lua script (lua/admit.lua), so two workers
deciding at the same instant cannot both win. Claim and cooldown remember their owner so
that a redelivered task (same message) can tell its own earlier claim from somebody else's.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import redis
import redis.asyncio as aioredis

from zero_tasks.adapters import scripts
from zero_tasks.adapters.risk import BrokerRateLimit
from zero_tasks.core import keys
from zero_tasks.core.checks.admission import Admission, Claim
from zero_tasks.core.checks.asset import AssetVerdict
from zero_tasks.core.session import TradingSession, opened, sealed
from zero_tasks.core.snapshot import Snapshot
from zero_tasks.core.task_auth import Holdings
from zero_tasks.secrets import signing_key


def connect(url: str) -> redis.Redis:
    """Short timeouts: a Redis that does not answer is a veto, not a hang.

    No health-check PING: with one ranking a minute every connection is idle longer than
    any interval, so a check would put one more round trip before the first command of
    every signal. A connection the server closed meanwhile is seen closed when the pool
    hands it out, and opened again (redis-py checks it there); one silently dropped ends in
    the socket timeout, with or without a check."""
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0)


def connect_async(url: str) -> aioredis.Redis:
    """The bridge's command client, as `connect` (bytes: pub/sub payloads need not be UTF-8).

    Here a connection the server closed fails its next command, health check or not (the
    asyncio pool does not check a RESP3 connection it hands out): the bridge takes any
    RedisError as Redis away (the listener reconnects, a write falls back to the worker)."""
    return aioredis.Redis.from_url(url, decode_responses=False, socket_timeout=2.0, socket_connect_timeout=2.0)


SHARED_SNAPSHOT_KEYS = (keys.EXECUTION_ENABLED_KEY, keys.MARKET_STATE_KEY, keys.STAND_DOWN_KEY, keys.BREAKER_KEY,
                        keys.SESSION_KEY)
_SHARED = len(SHARED_SNAPSHOT_KEYS)


def snapshot_of(shared: list, blocklist: object = None) -> Snapshot:
    """The Snapshot of raw MGET values (str or bytes); bytes that are not UTF-8 fail closed."""
    try:
        enabled, market, stand_down, breaker, session, block = (
            v.decode() if isinstance(v, bytes) else v for v in (*shared, blocklist))
    except UnicodeDecodeError as exc:
        return Snapshot(None, None, None, error=f"redis: {type(exc).__name__}")
    kept, refused = kept_session(session)
    return Snapshot(enabled, market, stand_down, breaker=breaker, blocklist=block, session=kept,
                    session_error=refused)


def kept_session(raw: str | None, key: str | None = None) -> tuple[str | None, str | None]:
    """The kept trading session once its seal is opened (session.opened), with this
    process's TASK_SIGNING_KEY unless `key` is given: a session nobody sealed is none."""
    return opened(raw, signing_key() if key is None else key, datetime.now(UTC))


ASSET_VERDICTS_PREFIX = "key:execution_assets:"  # + trading day; hash symbol -> AssetVerdict JSON
ASSET_VERDICTS_TTL_S = 2 * 86400


def kept_asset(r: redis.Redis, day: str, ticker: str) -> AssetVerdict | None:
    """The broker's word on `ticker` kept for this trading day, or None (ask it, with row 9).
    A kept verdict can be forged by whoever writes Redis; the broker still refuses the order
    then, and that refusal is read as the asset's (flow.place), never counted as a failure."""
    raw = r.hget(ASSET_VERDICTS_PREFIX + day, ticker)
    return AssetVerdict.from_json(raw) if raw is not None else None


def keep_asset(r: redis.Redis, day: str, verdict: AssetVerdict) -> None:
    pipe = r.pipeline(transaction=False)
    pipe.hset(ASSET_VERDICTS_PREFIX + day, verdict.symbol, verdict.to_json())
    pipe.expire(ASSET_VERDICTS_PREFIX + day, ASSET_VERDICTS_TTL_S)
    pipe.execute()


ASSET_VERDICTS_CHUNK = 1000  # fields per HSET: a list of 12,000 equities never holds Redis up in one command
ASSETS_LISTED_FIELD = "_listed"  # in the day's hash: the broker's list is kept (no ticker is spelt so)


def keep_assets(r: redis.Redis, day: str, verdicts: list[AssetVerdict], at: datetime) -> None:
    """Many verdicts for the trading day at once (the broker's list of its equities, kept by
    the account mirror's leader), then the mark that the list is kept: one pipeline, the
    hash's TTL set as `keep_asset` sets it."""
    pipe = r.pipeline(transaction=False)
    for i in range(0, len(verdicts), ASSET_VERDICTS_CHUNK):
        pipe.hset(ASSET_VERDICTS_PREFIX + day,
                  mapping={v.symbol: v.to_json() for v in verdicts[i:i + ASSET_VERDICTS_CHUNK]})
    pipe.hset(ASSET_VERDICTS_PREFIX + day, ASSETS_LISTED_FIELD,
              json.dumps({"symbols": len(verdicts), "at": at.isoformat()}))
    pipe.expire(ASSET_VERDICTS_PREFIX + day, ASSET_VERDICTS_TTL_S)
    pipe.execute()


def assets_listed(r: redis.Redis, day: str) -> bool:
    """Whether the broker's list is kept for `day` (by this leader or one before it). A mark
    written by hand only makes the workers ask about each symbol, as without the list."""
    return bool(r.hexists(ASSET_VERDICTS_PREFIX + day, ASSETS_LISTED_FIELD))


def store_session(r: redis.Redis, current: TradingSession, now: datetime, key: str | None = None) -> None:
    """Keep the broker's session answer, sealed (with this process's TASK_SIGNING_KEY unless
    `key` is given), for every worker and bridge until it runs out."""
    key = signing_key() if key is None else key
    if not key:
        raise ValueError("the trading session is kept sealed: TASK_SIGNING_KEY is not set here")
    r.set(keys.SESSION_KEY, sealed(current, key, now), px=current.ttl_ms(now))


def _snapshot_keys(ticker: str | None) -> list[str]:
    return list(SHARED_SNAPSHOT_KEYS) + ([keys.blocklist_key(ticker)] if ticker else [])


def read_snapshot(r: redis.Redis, ticker: str | None = None) -> Snapshot:
    """Every key the veto reads, in one MGET (one round trip, one consistent moment)."""
    names = _snapshot_keys(ticker)
    try:
        values = r.mget(*names)
    except (redis.RedisError, UnicodeDecodeError) as exc:
        return Snapshot(None, None, None, error=f"redis: {type(exc).__name__}")
    return snapshot_of(values[:_SHARED], values[_SHARED] if ticker else None)


def _mirror_keys(ticker: str) -> list[str]:
    return [keys.MIRROR_SYNC_KEY, keys.mirror_book_key(ticker)]


def with_mirror(snap: Snapshot, values: list) -> Snapshot:
    """The snapshot with the mirror's two raw values (sync record, book) read beside it;
    values that are not UTF-8 leave the mirror unread (row 9 then asks the broker)."""
    try:
        sync, book = (v.decode() if isinstance(v, bytes) else v for v in values)
    except UnicodeDecodeError:
        return snap
    return replace(snap, mirror_read=True, mirror_sync=sync, mirror_book=book)


def read_snapshot_with_mirror(r: redis.Redis, ticker: str) -> tuple[Snapshot, str | None, str | None]:
    """The veto's snapshot, the mirror's sync record and the ticker's book, in one MGET:
    row 9 and the veto read at one moment, in one round trip, right before the submit.
    An unreadable read gives the snapshot's error and no mirror (row 9 then asks the broker)."""
    names = [*_snapshot_keys(ticker), *_mirror_keys(ticker)]
    try:
        values = r.mget(*names)
        sync, book = (v.decode() if isinstance(v, bytes) else v for v in values[_SHARED + 1:])
    except (redis.RedisError, UnicodeDecodeError) as exc:
        return Snapshot(None, None, None, error=f"redis: {type(exc).__name__}"), None, None
    return snapshot_of(values[:_SHARED], values[_SHARED]), sync, book


def read_hash_field_and_snapshot(r: redis.Redis, key: str, field: str,
                                 ticker: str) -> tuple[bytes | str | None, Snapshot]:
    """A hash field (the message's stored decision) and the snapshot with the account
    mirror for `ticker` (row 9's facts, when the mirror may answer), in one round trip.

    Raises RedisError when Redis cannot be reached: the caller cannot know whether the
    message is decided yet. Values that are not UTF-8 are read again one by one, so the
    snapshot fails closed on them the way `read_snapshot` does.
    """
    pipe = r.pipeline(transaction=False)
    pipe.hget(key, field)
    pipe.mget(*_snapshot_keys(ticker), *_mirror_keys(ticker))
    try:
        stored, values = pipe.execute()
    except UnicodeDecodeError:
        return r.hget(key, field), read_snapshot(r, ticker)
    return stored, _snapshot_with_mirror(values)


def _snapshot_with_mirror(values: list) -> Snapshot:
    """The snapshot of one MGET of `_snapshot_keys(ticker)` then `_mirror_keys(ticker)`."""
    return with_mirror(snapshot_of(values[:_SHARED], values[_SHARED]), values[_SHARED + 1:])


def read_hash_fields_and_snapshots(r: redis.Redis, key_field: list[tuple[str, str]],
                                   tickers: list[str | None]) -> list[tuple[bytes | str | None, Snapshot | None]]:
    """`read_hash_field_and_snapshot` for a batch, in one round trip: for each item its hash
    field and, where it names a ticker, its snapshot with the mirror (None where it names
    none: an invalid message needs no snapshot). Raises RedisError as the single read does;
    a batch holding a value that is not UTF-8 is read again item by item."""
    pipe = r.pipeline(transaction=False)
    for (key, field), ticker in zip(key_field, tickers, strict=True):
        pipe.hget(key, field)
        if ticker is not None:
            pipe.mget(*_snapshot_keys(ticker), *_mirror_keys(ticker))
    try:
        replies = iter(pipe.execute())
    except UnicodeDecodeError:
        return [read_hash_field_and_snapshot(r, key, field, ticker) if ticker is not None
                else (r.hget(key, field), None)
                for (key, field), ticker in zip(key_field, tickers, strict=True)]
    out: list[tuple[bytes | str | None, Snapshot | None]] = []
    for ticker in tickers:
        stored = next(replies)
        if ticker is None:
            out.append((stored, None))
            continue
        out.append((stored, _snapshot_with_mirror(next(replies))))
    return out


def _owner_key(ticker: str) -> str:
    return keys.cooldown_key(ticker) + ":owner"


class ExecutionLocks:
    """The claim on an execution_id and the per-ticker cooldown reservation."""

    def __init__(self, r: redis.Redis, cooldown_s: int) -> None:
        self._r = r
        self._cooldown_s = cooldown_s
        self._admit = scripts.register(r, "admit")
        self._release = scripts.register(r, "release_cooldown")
        self._release_claim = scripts.register(r, "release_claim")

    def admit(self, execution_id: str, message_id: str, ticker: str, now: datetime,
              daily_key: str, daily_cap: int, received_at: datetime,
              budget: BrokerRateLimit | None = None, slots: int = 0) -> Admission:
        """Claim the execution_id, reserve the ticker's cooldown and a slot of the day, or
        say which of them refused. Atomic: two workers at the same instant cannot both win.

        With `budget`, an admitted order also takes its `slots` broker calls in the same
        round trip (`Admission.prepaid`: 0 when this minute's budget is spent)."""
        per_minute, member = (budget.entry_limit, budget.member("placement")) if budget else (0, "")
        claim, refused, since, prepaid = self._admit(
            keys=[keys.seen_key(execution_id), keys.cooldown_key(ticker), _owner_key(ticker), daily_key,
                  keys.BROKER_RATE_KEY],
            args=[message_id, keys.CLAIM_TTL_SECONDS, now.isoformat(), self._cooldown_s, execution_id,
                  daily_cap, keys.DAILY_TTL_SECONDS, received_at.isoformat(), per_minute, member,
                  slots if budget else 0])
        return Admission(Claim(int(claim)), refused or None, since, int(prepaid))

    def holdings(self, execution_id: str, ticker: str, daily_key: str) -> Holdings:
        """Who holds the claim, the cooldown reservation and the day's slot (one round trip).

        Raises RedisError: an order whose reservations cannot be checked is not sent."""
        pipe = self._r.pipeline(transaction=False)
        pipe.get(keys.seen_key(execution_id))
        pipe.get(_owner_key(ticker))
        pipe.hexists(daily_key, execution_id)
        claim_owner, cooldown_owner, slot = pipe.execute()
        return Holdings(claim_owner, cooldown_owner, bool(slot))

    def release_claim(self, execution_id: str, message_id: str) -> None:
        """Only when no order was attempted: a BLOCKED decision must not stop a later one."""
        self._release_claim(keys=[keys.seen_key(execution_id)], args=[message_id])

    def count_attempt(self, execution_id: str) -> int:
        """How many order attempts this execution_id has had, this one included.

        Above 1 means an earlier attempt may have reached the broker (a retry, a
        redelivery after a crash, a duplicate delivery): look the order up before sending.
        """
        key = keys.attempt_key(execution_id)
        pipe = self._r.pipeline()
        pipe.incr(key)
        pipe.expire(key, keys.CLAIM_TTL_SECONDS)
        return int(pipe.execute()[0])

    def confirm_cooldown(self, ticker: str, execution_id: str, submitted_at: datetime,
                         pipe: redis.client.Pipeline | None = None) -> None:
        """The cooldown runs from the order's time, as the contract's value says.

        With `pipe`, the commands join it and the caller executes it (one round trip with
        whatever else follows an order)."""
        own = pipe is None
        pipe = self._r.pipeline() if pipe is None else pipe
        pipe.set(keys.cooldown_key(ticker), submitted_at.isoformat(), ex=self._cooldown_s)
        pipe.set(_owner_key(ticker), execution_id, ex=self._cooldown_s)
        if own:
            pipe.execute()

    def release_cooldown(self, ticker: str, execution_id: str) -> None:
        self._release(keys=[keys.cooldown_key(ticker), _owner_key(ticker)], args=[execution_id])

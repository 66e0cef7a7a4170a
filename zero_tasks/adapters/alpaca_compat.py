"""The one place the gateway reaches into alpaca-py: a request timeout and no blind retry.

alpaca-py's TradingClient offers neither knob the gateway needs:
- no request timeout: every call goes through `requests.Session.request` without one, so a
  silent broker blocks the task for ever (upstream: alpacahq/alpaca-py#415, "Support REST
  requests timeout", open);
- no way to turn its own retry off: `RESTClient._request` sleeps 3 s and sends the same
  request again, up to 3 times, on a 429 or a 504, the POST of an order included;
  TradingClient does not pass `retry_attempts` on, and RESTClient ignores 0 (`if
  retry_attempts and retry_attempts > 0`). The gateway's task retries instead, after
  looking the order up by client_order_id (no upstream issue found).

So `configure` sets two attributes that RESTClient makes in its constructor and reads on
every call, neither of them public: `_session` (the requests.Session every call goes
through: here a `BrokerSession`, which adds the timeout) and `_retry` (the retries left:
0). alpaca-py is pinned exactly in pyproject.toml, and importing this module refuses any
other installed version (`require_pinned`): a new alpaca-py is taken only after checking
that `RESTClient.__init__` still makes both attributes and `_request` / `_one_request`
still read them, then moving `PINNED`.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import requests
from alpaca.common.rest import RESTClient
from alpaca.trading.client import TradingClient
from alpaca.trading.stream import TradingStream

from zero_tasks.adapters.pins import require_version

PINNED = "0.44.0"


def require_pinned(installed: str | None = None) -> None:
    """Stop the process unless the installed alpaca-py is the pinned one."""
    require_version("alpaca-py", PINNED, installed=installed, why=(
        "zero_tasks/adapters/alpaca_compat.py sets two attributes of alpaca-py's RESTClient that are not "
        "public (_session for the request timeout, _retry to turn its own retry off). "
        f"Install alpaca-py=={PINNED}, or check both in the new version and move PINNED and "
        "the pyproject.toml pin together (then `make lock`)."))


require_pinned()


class BrokerSession(requests.Session):
    """A plain requests.Session with a timeout on every call, and the environment (the
    proxy for the broker's host, REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE) read once here, not
    on every call. TLS is verified against that CA bundle, or certifi's as requests does;
    with `ca_file` (ALPACA_CA_FILE, a loopback HTTPS simulator's test CA) against that file
    only, whatever the environment says."""

    def __init__(self, timeout: float, base_url: str, ca_file: str | None = None) -> None:
        super().__init__()
        self.timeout = timeout
        self.base_url = base_url
        self.ca_file = ca_file
        found = self.merge_environment_settings(base_url, {}, None, ca_file, None)
        self.proxies.update(found["proxies"])
        self.verify = found["verify"]
        self.trust_env = False

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


C = TypeVar("C", bound=RESTClient)  # the trading client, or the market-data client (the ATR's bars)


def without_retry(client: C) -> C:
    """alpaca-py's own retry off: a 429 or a 504 reaches the caller at once, never resent."""
    client._retry = 0
    return client


def configure(client: C, timeout: float, base_url: str, ca_file: str | None = None) -> C:
    """Every call with a timeout and without alpaca-py's own retry."""
    client._session = BrokerSession(timeout, base_url, ca_file)
    return without_retry(client)


def twin(client: TradingClient) -> TradingClient:
    """Another client like a configured one (same broker, keys, timeout), with its own
    session: its own keep-alive connection, for use by another thread."""
    session = client._session
    if not isinstance(session, BrokerSession):
        raise TypeError("twin() needs a client made by configure()")
    return configure(copy.copy(client), session.timeout, session.base_url, session.ca_file)


class ListeningStream(TradingStream):
    """alpaca-py's TradingStream, telling the account mirror when it listens and when it drops.

    The mirror must know the moment the stream listens (then, and only then, it takes its
    REST snapshot) and the moment it drops (it is out of sync at once); TradingStream
    reconnects by itself and says neither. Three of its methods are not public and are
    extended or used here, pinned with the rest of this module: `_run_forever` (`listen`
    runs it in the caller's loop), `_dispatch` (the server's
    `listening` answer to the subscription goes to `on_listening`), `close` (every drop,
    error or stop, goes through it: `on_drop`), and `_ws` is pinged by `alive`.
    `on_listening` runs inside the receive loop: events that arrive meanwhile wait in the
    websocket's queue and are handed over after it, in order."""

    def __init__(self, api_key: str, secret_key: str, url: str,
                 on_listening: Callable[[], Awaitable[None]], on_drop: Callable[[], Awaitable[None]]) -> None:
        # ping every 2 s, dead after 4 s unanswered: a silently dropped connection is seen
        super().__init__(api_key, secret_key, paper=True, url_override=url,
                         websocket_params={"ping_interval": 2, "ping_timeout": 4, "max_queue": 1024})
        self._on_listening = on_listening
        self._on_drop = on_drop

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        if msg.get("stream") == "listening" and "trade_updates" in ((msg.get("data") or {}).get("streams") or []):
            await self._on_listening()
            return
        await super()._dispatch(msg)

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self._on_drop()

    async def alive(self, timeout_s: float) -> bool:
        """Whether the connection answers a ping within `timeout_s` (none open: False)."""
        ws = self._ws
        if ws is None or not self._running:
            return False
        try:
            pong = await ws.ping()
            await asyncio.wait_for(pong, timeout_s)
        except Exception:  # noqa: BLE001 - closed, timed out, broken: not alive, whatever the cause
            return False
        return True

    async def listen(self) -> None:
        """TradingStream.run's loop, inside the caller's event loop (run() makes its own)."""
        await self._run_forever()

    async def drop(self) -> None:
        """Close the connection; TradingStream opens a new one (the mirror resyncs)."""
        await self.close()

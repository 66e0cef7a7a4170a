"""The ``trade_updates`` websocket as Alpaca serves it, on a port of its own (``SimServer.stream_url``).

A client authenticates (``{"action": "auth", "key": .., "secret": ..}`` or alpaca-py's
``{"action": "authenticate", "data": {"key_id": .., "secret_key": ..}}``) and is answered
``{"stream": "authorization", "data": {"status": "authorized", "action": "authenticate"}}``;
then ``{"action": "listen", "data": {"streams": ["trade_updates"]}}`` is answered
``{"stream": "listening", "data": {"streams": ["trade_updates"]}}`` and every trade update the
broker state emits from then on follows, as JSON text (alpaca-py reads JSON). A wrong key pair
is answered ``unauthorized`` and the connection closed, as Alpaca does. The websockets library's
threaded server runs each connection on its own thread; the broker hands each listener its
updates through a queue, so the broker's lock is never held while a socket is written.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import queue
import threading
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from .state import BrokerState

STREAM_PATH = "/stream"
_AUTH_TIMEOUT_S = 10.0
_POLL_S = 0.2


class TradeStream:
    """The websocket endpoint over one broker state, with its connected clients (for /_sim)."""

    def __init__(self, state: BrokerState, host: str, port: int, keys: tuple[str, str]) -> None:
        self.state = state
        self._keys = (keys[0].encode(), keys[1].encode())
        self._clients: set[ServerConnection] = set()
        self._lock = threading.Lock()
        self._server: Server = serve(self._handle, host, port)
        self.port: int = self._server.socket.getsockname()[1]
        self._thread: threading.Thread | None = None

    def start(self) -> TradeStream:
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"alpaca_paper_sim:stream:{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.drop_all()
        if self._thread is None:  # never served: only the listening socket to close
            self._server.socket.close()
            return
        self._server.shutdown()
        self._thread.join(timeout=5)

    def client_count(self) -> int:
        with self._lock:
            return len(self._clients)

    def drop_all(self) -> int:
        """Close every stream connection (a fault for tests: the client must reconnect)."""
        with self._lock:
            clients = list(self._clients)
        for connection in clients:
            with contextlib.suppress(Exception):
                connection.close(code=1011, reason="dropped by the simulator")
        return len(clients)

    # ------------------------------------------------------------ internal
    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            self._clients.add(connection)
        try:
            if self._authenticate(connection):
                self._serve(connection)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._clients.discard(connection)

    def _authenticate(self, connection: ServerConnection) -> bool:
        message = _load(connection.recv(timeout=_AUTH_TIMEOUT_S))
        action = message.get("action")
        raw_data = message.get("data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        if action == "auth":
            key, secret = message.get("key", ""), message.get("secret", "")
        elif action == "authenticate":
            key, secret = data.get("key_id", ""), data.get("secret_key", "")
        else:
            connection.send(json.dumps({"stream": "authorization",
                                        "data": {"status": "unauthorized", "action": str(action)}}))
            connection.close()
            return False
        key_ok = hmac.compare_digest(str(key).encode(), self._keys[0])
        secret_ok = hmac.compare_digest(str(secret).encode(), self._keys[1])
        status = "authorized" if key_ok and secret_ok else "unauthorized"
        connection.send(json.dumps({"stream": "authorization", "data": {"status": status, "action": "authenticate"}}))
        if status != "authorized":
            connection.close()
            return False
        return True

    def _serve(self, connection: ServerConnection) -> None:
        updates: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        unsubscribe = None
        try:
            while True:
                try:
                    raw = connection.recv(timeout=_POLL_S)
                except TimeoutError:
                    raw = None
                if raw is not None:
                    message = _load(raw)
                    if message.get("action") == "listen":
                        data = message.get("data")
                        streams = (data.get("streams") if isinstance(data, dict) else None) or []
                        wanted = [s for s in streams if s == "trade_updates"]
                        if wanted and unsubscribe is None:
                            unsubscribe = self.state.subscribe(updates.put)
                        if not wanted and unsubscribe is not None:
                            unsubscribe()
                            unsubscribe = None
                        connection.send(json.dumps({"stream": "listening", "data": {"streams": wanted}}))
                if unsubscribe is not None:
                    self.state.sync()  # bring the book to now: what fell due is published
                while not updates.empty():
                    connection.send(json.dumps(updates.get()))
        finally:
            if unsubscribe is not None:
                unsubscribe()


def _load(raw: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return message if isinstance(message, dict) else {}

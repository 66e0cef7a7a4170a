"""HTTP layer of the Alpaca paper simulator (standard library only).

Translates Alpaca Trading API v2 requests (and the /_sim admin API) into calls
on :class:`BrokerState` and applies the injected fault plan around them.

Latency matters because gateway tests make many sequential calls over one
keep-alive connection: each response is pre-built into ONE bytes buffer and
written with a single ``wfile.write`` on a ``TCP_NODELAY`` socket. Splitting
headers and body into two writes triggers Nagle + delayed-ACK stalls (~40 ms
per request).

HTTPS (``tls=``, see tls.py) and an idle timeout (``idle_timeout_s=``) make it behave as a
server across the internet does to a quiet client: a connection costs a TLS handshake, and
one left idle past the timeout is closed by the server, so the next request pays a new
TCP and TLS handshake. Both are off by default.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import marketdata
from .ratelimit import Quota
from .state import PRE_FAULTS, BrokerState, FaultRule, SimError, invalid
from .stream import STREAM_PATH, TradeStream
from .tls import TestTLS

ADMIN_PREFIX = "/_sim"
ADMIN_CONNECTIONS = ADMIN_PREFIX + "/connections"  # the server's connection counters (GET)
ADMIN_STREAM_DROP = ADMIN_PREFIX + "/stream/drop"  # close every trade_updates connection (POST)
PEER_RESETS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)  # the client closed the connection
HANDSHAKE_TIMEOUT_S = 10.0  # a client that opens a socket and says nothing holds one thread, not for ever
# The pair the tests' gateways use (tests/support/procs.py base_env); any other is refused.
DEFAULT_KEY_ID = "test-key-id"
DEFAULT_SECRET_KEY = "test-secret-value"
UNAUTHORIZED = {"code": 40110000, "message": "request is not authorized"}
_ORDER_PATH = r"/v2/orders/(?P<order_id>[^/:]+)"


@dataclass
class Reply:
    """A response before serialisation; ``body=None`` means an empty body."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def error_reply(status: int, code: int, message: str, **headers: str) -> Reply:
    return Reply(status, {"code": code, "message": message}, dict(headers))


_FAULT_REPLIES: dict[str, tuple[int, int, str]] = {
    "500": (500, 50010000, "internal server error"),
    "503": (503, 50310000, "service unavailable"),
    "429": (429, 42910000, "rate limit exceeded"),
    "403": (403, 40310000, "insufficient buying power"),
}


def fault_reply(rule: FaultRule) -> Reply:
    """An injected failure; a 429 says Retry-After unless the rule has ``retry_after: null``."""
    status, code, message = _FAULT_REPLIES[rule.mode]
    reply = error_reply(status, code, message)
    if rule.mode == "429" and rule.retry_after is not None:
        seconds = rule.retry_after or 1
        reply.headers["Retry-After"] = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
    return reply


def _json_body(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise SimError(400, 40010000, "request body format is invalid") from None


Route = tuple[str, "re.Pattern[str]", Callable[..., Reply]]


def _route(method: str, pattern: str, fn: Callable[..., Reply]) -> Route:
    return method, re.compile(pattern + r"/?\Z"), fn


def _no_content(fn: Callable[[], Any]) -> Reply:
    fn()
    return Reply(204)


TRADING_ROUTES: list[Route] = [
    _route("GET", r"/v2/account", lambda s, m, q, b: Reply(200, s.account_json())),
    _route("GET", r"/v2/clock", lambda s, m, q, b: Reply(200, s.clock_json())),
    _route("GET", r"/v2/calendar", lambda s, m, q, b: Reply(200, s.calendar_json(q))),
    _route("POST", r"/v2/orders", lambda s, m, q, b: Reply(200, s.submit_order(_json_body(b)))),
    _route("GET", r"/v2/orders", lambda s, m, q, b: Reply(200, s.list_orders(q))),
    _route(
        "GET",
        r"/v2/orders:by_client_order_id",
        lambda s, m, q, b: Reply(200, s.get_order_by_client_id(q.get("client_order_id", ""))),
    ),
    _route("GET", _ORDER_PATH, lambda s, m, q, b: Reply(200, s.get_order(m["order_id"]))),
    _route("DELETE", _ORDER_PATH, lambda s, m, q, b: _no_content(lambda: s.cancel_order(m["order_id"]))),
    _route("PATCH", _ORDER_PATH, lambda s, m, q, b: Reply(200, s.replace_order(m["order_id"], _json_body(b)))),
    _route("DELETE", r"/v2/orders", lambda s, m, q, b: Reply(207, s.cancel_all())),
    _route("GET", r"/v2/positions", lambda s, m, q, b: Reply(200, s.positions_json())),
    _route("DELETE", r"/v2/positions", lambda s, m, q, b: Reply(207, s.close_all_positions(q))),
    _route("GET", r"/v2/positions/(?P<symbol>[^/]+)", lambda s, m, q, b: Reply(200, s.position_json(m["symbol"]))),
    _route("DELETE", r"/v2/positions/(?P<symbol>[^/]+)",
           lambda s, m, q, b: Reply(200, s.close_position(m["symbol"], q))),
    _route("GET", r"/v2/assets", lambda s, m, q, b: Reply(200, s.assets_json(q))),
    _route("GET", r"/v2/assets/(?P<symbol>.+)", lambda s, m, q, b: Reply(200, s.asset_json(m["symbol"]))),
    _route("GET", r"/v2/stocks/bars", lambda s, m, q, b: _market(s, marketdata.bars, q, None)),
    _route("GET", r"/v2/stocks/(?P<symbol>[^/]+)/bars", lambda s, m, q, b: _market(s, marketdata.bars, q, m["symbol"])),
    _route("GET", r"/v2/stocks/(?P<kind>trades|quotes|bars)/latest",
           lambda s, m, q, b: _latest(s, m["kind"], q, None)),
    _route("GET", r"/v2/stocks/(?P<symbol>[^/]+)/(?P<kind>trades|quotes|bars)/latest",
           lambda s, m, q, b: _latest(s, m["kind"], q, m["symbol"])),
]


def _market(state: BrokerState, fn: Callable[..., Any], query: dict[str, str], symbol: str | None) -> Reply:
    with state.lock:
        book, now = state.price_book()
        return Reply(200, fn(book, now, query, symbol))


def _latest(state: BrokerState, kind: str, query: dict[str, str], symbol: str | None) -> Reply:
    with state.lock:
        book, now = state.price_book()
        return Reply(200, marketdata.latest(kind, book, now, query, symbol))

_OK = {"ok": True}


_CONFIG_KEYS = frozenset({"fill", "price", "fill_delay_s", "always_open", "rate_limit", "seed", "synthetic_assets"})


def _admin_config(state: BrokerState, body: dict[str, Any]) -> Reply:
    unknown = sorted(set(body) - _CONFIG_KEYS)
    if unknown:
        raise invalid(f"unknown config key(s): {', '.join(unknown)}")
    state.configure(**body)
    return Reply(200, _OK)


def _admin_fault(state: BrokerState, body: dict[str, Any]) -> Reply:
    state.add_fault(body)
    return Reply(200, _OK)


def _admin_position(state: BrokerState, body: dict[str, Any]) -> Reply:
    state.set_position(body.get("symbol"), body.get("qty"), body.get("avg_entry_price"))
    return Reply(200, _OK)


def _admin_remove_position(state: BrokerState, symbol: str) -> Reply:
    if not state.remove_position(symbol):
        return error_reply(404, 40410000, "position does not exist")
    return Reply(200, _OK)


def _dict_body(raw: bytes) -> dict[str, Any]:
    body = _json_body(raw)
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    return body


_ADMIN_ORDER = ADMIN_PREFIX + r"/orders/(?P<order_id>[^/]+)"
ADMIN_ROUTES: list[Route] = [
    _route("POST", ADMIN_PREFIX + "/reset", lambda s, m, q, b: (s.reset(), Reply(200, _OK))[1]),
    _route("POST", ADMIN_PREFIX + "/config", lambda s, m, q, b: _admin_config(s, _dict_body(b))),
    _route("POST", ADMIN_PREFIX + "/fault", lambda s, m, q, b: _admin_fault(s, _dict_body(b))),
    _route("DELETE", ADMIN_PREFIX + "/fault", lambda s, m, q, b: (s.clear_faults(), Reply(200, _OK))[1]),
    _route("GET", ADMIN_PREFIX + "/stats", lambda s, m, q, b: Reply(200, s.stats())),
    _route("POST", ADMIN_PREFIX + "/clock", lambda s, m, q, b: Reply(200, s.set_time(_dict_body(b).get("now")))),
    _route("POST", ADMIN_PREFIX + "/clock/advance",
           lambda s, m, q, b: Reply(200, s.advance_time(_dict_body(b).get("seconds")))),
    _route("POST", ADMIN_PREFIX + "/prices", lambda s, m, q, b: Reply(200, s.set_prices(_dict_body(b)))),
    _route("GET", ADMIN_PREFIX + "/prices",
           lambda s, m, q, b: Reply(200, s.quote_prices([x for x in q.get("symbols", "").split(",") if x]))),
    _route("POST", ADMIN_PREFIX + "/assets", lambda s, m, q, b: Reply(200, s.add_asset(_dict_body(b)))),
    _route("GET", ADMIN_PREFIX + "/events", lambda s, m, q, b: Reply(200, s.events())),
    _route("GET", ADMIN_PREFIX + "/orders", lambda s, m, q, b: Reply(200, s.all_orders())),
    _route(
        "POST",
        _ADMIN_ORDER + "/fill",
        lambda s, m, q, b: Reply(200, s.fill_order(m["order_id"], **_fill_args(_dict_body(b)))),
    ),
    _route("POST", _ADMIN_ORDER + "/cancel", lambda s, m, q, b: Reply(200, s.admin_cancel(m["order_id"]))),
    _route("POST", _ADMIN_ORDER + "/reject", lambda s, m, q, b: Reply(200, s.reject_order(m["order_id"]))),
    _route("POST", ADMIN_PREFIX + "/positions", lambda s, m, q, b: _admin_position(s, _dict_body(b))),
    _route(
        "DELETE",
        ADMIN_PREFIX + r"/positions/(?P<symbol>[^/]+)",
        lambda s, m, q, b: _admin_remove_position(s, m["symbol"]),
    ),
]


def _fill_args(body: dict[str, Any]) -> dict[str, Any]:
    return {"qty": body.get("qty"), "price": body.get("price")}


def dispatch(
    routes: list[Route], state: BrokerState, method: str, path: str, query: dict[str, str], raw: bytes
) -> Reply:
    """Find the route for method+path and run it, mapping SimError to Alpaca-style JSON."""
    for route_method, pattern, fn in routes:
        match = pattern.match(path)
        if match and route_method == method:
            args = {k: unquote(v) for k, v in match.groupdict().items()}
            try:
                return fn(state, args, query, raw)
            except SimError as exc:
                return Reply(exc.status, exc.body())
    return error_reply(404, 40410000, "endpoint not found")


class _Handler(BaseHTTPRequestHandler):
    """One keep-alive connection; every method funnels into :meth:`_handle`."""

    protocol_version = "HTTP/1.1"
    server_version = "alpaca_paper_sim"
    sys_version = ""
    server: SimHTTPServer

    def setup(self) -> None:
        if self.server.idle_timeout_s is not None:  # a wait for a request line longer than this times out
            self.request.settimeout(self.server.idle_timeout_s)
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()
        self.server.track(self.request, add=True)

    def handle_one_request(self) -> None:
        """One request, or the idle timeout: the stdlib closes the connection when the wait
        for a request line times out, and leaves ``raw_requestline`` unset then."""
        self.raw_requestline = None
        super().handle_one_request()
        if self.raw_requestline is None:
            self.server.count("idle_closed")

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.request, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _handle(self) -> None:
        split = urlsplit(self.path)
        path, method = split.path, self.command
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        raw = self._read_body()
        if raw is None:
            return
        state = self.server.state
        if path == ADMIN_CONNECTIONS and method == "GET":
            self._send(Reply(200, self.server.connection_stats()))
            return
        if path == ADMIN_STREAM_DROP and method == "POST":
            stream = self.server.stream
            self._send(Reply(200, {"dropped": stream.drop_all() if stream is not None else 0}))
            return
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            self._send(self._safe(ADMIN_ROUTES, method, path, query, raw))
            return

        state.record_request(method, path)
        key_id, secret_key = self.headers.get("APCA-API-KEY-ID", ""), self.headers.get("APCA-API-SECRET-KEY", "")
        if not self.server.authorized(key_id, secret_key):
            self._send(Reply(401, dict(UNAUTHORIZED), state.rate_limiter.peek().headers()))
            return
        quota = state.rate_limiter.take()
        if not quota.allowed:
            self._send(Reply(429, {"code": 42910000, "message": "rate limit exceeded"}, quota.headers()))
            return
        rule = state.take_fault(method, path, query)
        if rule is not None and rule.mode in PRE_FAULTS:
            if rule.mode == "drop":
                self._drop()
                return
            if rule.mode == "echo_headers":
                self._send(self._echo_headers())
                return
            if rule.mode != "slow":
                self._send(_with_quota(fault_reply(rule), rule, state))
                return
            time.sleep(rule.delay)
        reply = self._safe(TRADING_ROUTES, method, path, query, raw)
        if rule is not None and rule.mode == "accept_then_drop":
            self._drop()
            return
        if rule is not None and rule.mode == "accept_then_500":
            reply = fault_reply(FaultRule(mode="500"))
        elif rule is not None and rule.mode == "accept_then_slow":
            time.sleep(rule.delay)
        reply.headers.update(quota.headers())
        self._send(reply)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

    def _echo_headers(self) -> Reply:
        quoted = {name.lower(): value for name, value in self.headers.items() if name.lower().startswith("apca-")}
        return error_reply(502, 50210000, f"bad gateway, request was {json.dumps(quoted)}; "
                                          f"secret {self.headers.get('APCA-API-SECRET-KEY', '')}")

    def _safe(self, routes: list[Route], method: str, path: str, query: dict[str, str], raw: bytes) -> Reply:
        try:
            return dispatch(routes, self.server.state, method, path, query, raw)
        except Exception:  # noqa: BLE001 - a simulator bug must still answer, not hang the client
            traceback.print_exc(file=sys.stderr)
            return error_reply(500, 50010000, "internal simulator error")

    def _read_body(self) -> bytes | None:
        """Always consume the body so the next request on this connection parses cleanly."""
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            self._send(error_reply(411, 41110000, "Content-Length required"))
            return None
        try:
            length = int(length_header or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._send(error_reply(400, 40010000, "invalid Content-Length"))
            return None
        return self.rfile.read(length) if length else b""

    def _drop(self) -> None:
        """Close the connection without answering (the client sees a connection error)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.log_message('"%s" dropped', self.requestline)

    def _send(self, reply: Reply) -> None:
        body = b"" if reply.body is None else json.dumps(reply.body, separators=(",", ":")).encode()
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = ""
        lines = [
            f"HTTP/1.1 {reply.status} {phrase}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
        ]
        if reply.status != 204:  # RFC 9110: no Content-Length on 204
            lines.append("Content-Type: application/json; charset=utf-8")
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: close" if self.close_connection else "Connection: keep-alive")
        lines.append(f"X-Request-ID: {uuid.uuid4().hex}")
        lines.extend(f"{name}: {value}" for name, value in reply.headers.items())
        journal = self.server.journal
        if journal is not None and not urlsplit(self.path).path.startswith(ADMIN_PREFIX):
            journal.append((self.command, urlsplit(self.path).path, reply.status, reply.body))
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:  # client gave up (e.g. timed out during a slow fault): not our error
            self.close_connection = True
            return
        self.log_request(reply.status)


def _with_quota(reply: Reply, rule: FaultRule, state: BrokerState) -> Reply:
    """Every trading answer carries the quota; an injected 429 reports it spent until it lifts."""
    if rule.mode == "429":
        quota: Quota = state.rate_limiter.exhaust_for(rule.retry_after if rule.retry_after is not None else 1.0)
    else:
        quota = state.rate_limiter.peek()
    reply.headers.update(quota.headers())
    return reply


class SimHTTPServer(ThreadingHTTPServer):
    """Threaded server that knows its broker state, its one key pair and open connections.

    With a TLS context every accepted socket is wrapped, and its handshake is made in the
    connection's own thread (a slow or refused client never holds up the accept loop);
    with an idle timeout a connection that sends no request for that long is closed.
    The counters (``connection_stats``) say what the clients cost the server: connections
    accepted, handshakes completed and refused, TLS versions, idle closes, resets by the client.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        state: BrokerState,
        verbose: bool = False,
        keys: tuple[str, str] = (DEFAULT_KEY_ID, DEFAULT_SECRET_KEY),
        tls: ssl.SSLContext | None = None,
        idle_timeout_s: float | None = None,
        connect_delay_s: float = 0.0,
    ) -> None:
        if idle_timeout_s is not None and idle_timeout_s <= 0:
            raise ValueError("the idle timeout must be > 0 seconds (None: never closed for idleness)")
        if connect_delay_s < 0:
            raise ValueError("the connect delay must be >= 0 seconds")
        self.connect_delay_s = connect_delay_s
        self.state = state
        self.verbose = verbose
        self.tls = tls
        self.idle_timeout_s = idle_timeout_s
        self._keys = (keys[0].encode(), keys[1].encode())
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._counters: dict[str, int] = {"accepted": 0, "tls_handshakes": 0, "tls_refused": 0, "idle_closed": 0,
                                          "reset": 0}
        self._tls_versions: dict[str, int] = {}
        self.stream: TradeStream | None = None  # set by SimServer: its clients are counted here too
        self.journal: list[tuple[str, str, int, Any]] | None = None  # (method, path, status, body) if kept
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = self.socket.accept()
        self.count("accepted")
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.connect_delay_s:
            time.sleep(self.connect_delay_s)  # the round trips of a distant server's TCP (and TLS) handshake
        if isinstance(request, ssl.SSLSocket) and not self._handshake(request):
            return  # process_request_thread closes the socket
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection the client reset (or whose pipe broke under a write) while its handler
        read or wrote it is a closed connection: counted as ``reset``, reported only when
        verbose. Anything else is a simulator error: the stdlib prints its traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, PEER_RESETS):
            self.count("reset")
            if self.verbose:
                sys.stderr.write(f"alpaca_paper_sim: connection from {client_address} reset by the client: {exc}\n")
            return
        super().handle_error(request, client_address)

    def _handshake(self, conn: ssl.SSLSocket) -> bool:
        """The TLS handshake; a client that does not trust the certificate (or speaks less
        than TLS 1.3) aborts it, which is counted, not logged as a server error."""
        conn.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            conn.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            self.count("tls_refused")
            if self.verbose:
                sys.stderr.write(f"alpaca_paper_sim: TLS handshake refused: {exc}\n")
            return False
        conn.settimeout(None)  # the handler sets the idle timeout, if any
        with self._connections_lock:
            self._counters["tls_handshakes"] += 1
            version = conn.version() or "?"
            self._tls_versions[version] = self._tls_versions.get(version, 0) + 1
        return True

    def count(self, name: str) -> None:
        with self._connections_lock:
            self._counters[name] += 1

    def connection_stats(self) -> dict[str, Any]:
        """Cumulative since the server started (``/_sim/reset`` leaves them): read differences."""
        with self._connections_lock:
            stats = {**self._counters, "open": len(self._connections), "tls_versions": dict(self._tls_versions),
                     "tls": self.tls is not None, "idle_timeout_s": self.idle_timeout_s,
                     "connect_delay_s": self.connect_delay_s}
        stats["stream_clients"] = self.stream.client_count() if self.stream is not None else 0
        stats["stream_listeners"] = self.state.listener_count()  # clients listening to trade_updates
        return stats

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse-DNS lookup that can
        # take seconds in sandboxes; the simulator never needs the FQDN.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def authorized(self, key_id: str, secret_key: str) -> bool:
        """Only the configured pair, compared in constant time (both halves, always)."""
        key_ok = hmac.compare_digest(key_id.encode(), self._keys[0])
        secret_ok = hmac.compare_digest(secret_key.encode(), self._keys[1])
        return key_ok and secret_ok

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._connections_lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def close_connections(self) -> None:
        """Shut idle keep-alive connections so stop() leaves no half-open sockets."""
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class SimServer:
    """Run the simulator in a background thread: ``with SimServer() as sim: sim.url``.

    Only ``key_id``/``secret_key`` are let in. The market (session, fill delay, rate limit)
    is the state's: ``SimServer(state=BrokerState(fill_delay_s=0, session=...))``.
    ``tls=make_test_tls()`` serves HTTPS (``url`` is then https://; clients trust
    ``tls.ca_pem``); ``idle_timeout_s`` closes a connection idle that long; ``connect_delay_s``
    holds a new connection that long before its handshake, as the TCP and TLS round trips to a
    distant server do (the ``slow`` fault holds requests, not handshakes). Two servers may
    share one state (one plain, one HTTPS): the same broker behind two endpoints.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
        state: BrokerState | None = None,
        key_id: str = DEFAULT_KEY_ID,
        secret_key: str = DEFAULT_SECRET_KEY,
        tls: TestTLS | None = None,
        idle_timeout_s: float | None = None,
        connect_delay_s: float = 0.0,
        stream_port: int | None = 0,
        journal: bool = False,
    ) -> None:
        if not key_id or not secret_key:
            raise ValueError("the simulator needs a non-empty key id and secret key")
        self.state = state if state is not None else BrokerState()
        self.host = host
        self.key_id = key_id
        self.tls = tls
        self._httpd = SimHTTPServer((host, port), self.state, verbose, (key_id, secret_key),
                                    tls=tls.context if tls is not None else None, idle_timeout_s=idle_timeout_s,
                                    connect_delay_s=connect_delay_s)
        self.port: int = self._httpd.server_address[1]
        self.stream = TradeStream(self.state, host, stream_port, (key_id, secret_key)) \
            if stream_port is not None else None
        self._httpd.stream = self.stream
        self.journal: list[tuple[str, str, int, Any]] | None = [] if journal else None
        self._httpd.journal = self.journal  # every API answer (method, path, status, body): the spec proof
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls is not None else 'http'}://{host}:{self.port}"

    @property
    def stream_url(self) -> str | None:
        """The trade_updates websocket (``TradingStream(url_override=sim.stream_url)``), if served."""
        if self.stream is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.stream.port}{STREAM_PATH}"

    def connection_stats(self) -> dict[str, Any]:
        """Connections accepted, TLS handshakes made and refused (and their versions), idle
        closes, resets by the client, connections open now; also ``GET /_sim/connections``."""
        return self._httpd.connection_stats()

    def start(self) -> SimServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"alpaca_paper_sim:{self.port}",
                daemon=True,
            )
            self._thread.start()
            if self.stream is not None:
                self.stream.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        if self.stream is not None:
            self.stream.stop()
        self._httpd.close_connections()
        self._httpd.server_close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

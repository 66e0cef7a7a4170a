"""The only door to Flower: checks the password itself, passes on only what watches.

Why this exists: Flower's API and UI act as well as watch. An authenticated user can send
or apply any task (`POST /api/task/send-task/zero.place_order` places an order), revoke,
terminate or abort tasks, change rate limits and time limits, shut workers down, restart,
grow, shrink or autoscale their pools and add or cancel their queue consumers. Flower's own
`--read_only` switch covers those handlers today, but it is one flag inside the program we
are guarding, and a future Flower may add a handler it does not cover. So Flower listens
only on a unix socket in a directory only the guard's user can enter, and the public port
is served by this proxy, which decides from the request alone, before Flower sees it:

- no valid `Authorization: Basic` for one of FLOWER_BASIC_AUTH's entries: 401;
- GET or HEAD of a path on the watching list below: passed on (with the same
  `Authorization`, so Flower's own basic auth is a second check);
- `POST /tasks/datatable`, the tasks page's table (a search, no action): passed on as a GET
  with the form fields as the query string, so Flower itself only ever receives GET/HEAD;
- anything else, every other method and every other path: 403, never passed on.

The list is an allow-list: a path Flower adds in a later version is refused until someone
reads its handler and adds it here. Pure decisions (`route`, `credentials_match`) are apart
from the tornado adapter (`FlowerProxy`) so they can be tested as tables.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from tornado.httputil import HTTPHeaders
from tornado.netutil import Resolver
from tornado.simple_httpclient import SimpleAsyncHTTPClient
from tornado.web import Application, RequestHandler

log = logging.getLogger("zero.flower_proxy")

# Every watching route of Flower 2.2 (flower/urls.py), matched against the raw request path
# exactly as Flower's router will see it. Each handler behind these has only reads in its GET.
WATCH_PATHS: tuple[re.Pattern[str], ...] = tuple(re.compile(pattern) for pattern in (
    r"/", r"/workers", r"/worker/.+", r"/task/.+", r"/tasks", r"/tasks/datatable", r"/broker",
    r"/api/workers", r"/api/tasks", r"/api/task/types", r"/api/queues/length", r"/api/task/info/.*",
    r"/api/task/result/.+", r"/metrics", r"/healthcheck", r"/static/.*",
))
READ_METHODS = ("GET", "HEAD")
DATATABLE_PATH = "/tasks/datatable"  # the tasks page POSTs its search form here
REALM = 'Basic realm="flower"'
UPSTREAM_CONNECT_TIMEOUT_S = 10.0
UPSTREAM_REQUEST_TIMEOUT_S = 120.0  # /api/task/result?timeout=N waits up to N seconds
MAX_REQUEST_BODY_BYTES = 1 << 20   # only the tasks page's search form has a body worth reading
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "trailers", "transfer-encoding", "upgrade"})
# Never forwarded upstream: no request body goes to Flower, so neither do its framing headers.
_REQUEST_DROP = HOP_BY_HOP | {"content-length", "content-type", "expect"}
_RESPONSE_DROP = HOP_BY_HOP | {"content-length"}


@dataclass(frozen=True)
class Forward:
    """Pass the request on to Flower as `method`; `body_as_query`: the form body becomes the query."""

    method: str
    body_as_query: bool = False


@dataclass(frozen=True)
class Refuse:
    reason: str


def route(method: str, path: str) -> Forward | Refuse:
    """What the proxy does with an authenticated request, from its method and raw path alone."""
    watching = any(pattern.fullmatch(path) for pattern in WATCH_PATHS)
    if method == "POST" and path == DATATABLE_PATH:
        return Forward("GET", body_as_query=True)
    if method not in READ_METHODS:
        return Refuse(f"Flower is read-only here: {method} is never passed on")
    if not watching:
        return Refuse(f"Flower is read-only here: {path[:200]} is not a watching page")
    return Forward(method)


def credential_digests(entries: Sequence[str]) -> tuple[bytes, ...]:
    """FLOWER_BASIC_AUTH's `user:password` entries, kept only as digests of equal length."""
    return tuple(hashlib.sha256(entry.encode()).digest() for entry in entries)


def credentials_match(header: str | None, digests: Sequence[bytes]) -> bool:
    """True when `header` is `Basic base64(user:password)` for one of the entries.

    The comparison is over SHA-256 digests with hmac.compare_digest against every entry, so
    neither the time taken nor an early exit tells which entry, or how much of one, matched.
    """
    scheme, _, encoded = (header or "").partition(" ")
    if scheme != "Basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    given_digest = hashlib.sha256(given.encode()).digest()
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(digest, given_digest)
    return matched


def upstream_uri(path: str, query: str, form: dict[str, list[bytes]] | None) -> str:
    """The path and query Flower receives; with `form`, its fields are appended to the query."""
    if form is None:
        return f"{path}?{query}" if query else path
    fields = urlencode([(name, value.decode("utf-8", "replace")) for name, values in form.items()
                        for value in values])
    joined = "&".join(part for part in (query, fields) if part)
    return f"{path}?{joined}" if joined else path


def forwarded_request_headers(headers: HTTPHeaders) -> HTTPHeaders:
    listed = {name.strip().lower() for name in headers.get("Connection", "").split(",")}
    kept = HTTPHeaders()
    for name, value in headers.get_all():
        if name.lower() not in _REQUEST_DROP and name.lower() not in listed:
            kept.add(name, value)
    return kept


class FlowerSocket(Resolver):
    """Resolves every host to Flower's unix socket: the proxy can reach nothing else."""

    def initialize(self, path: str) -> None:
        self._path = path

    async def resolve(self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC,
                      ) -> list[tuple[int, object]]:
        return [(socket.AF_UNIX, self._path)]


class FlowerProxy(RequestHandler):
    """One handler for every path: authenticate, decide with `route`, forward or refuse."""

    def initialize(self, digests: Sequence[bytes], upstream: SimpleAsyncHTTPClient) -> None:
        self._digests = digests
        self._upstream = upstream

    async def get(self, *_: str) -> None:
        await self._serve()

    head = post = put = delete = patch = options = get

    async def _serve(self) -> None:
        if not credentials_match(self.request.headers.get("Authorization"), self._digests):
            self.set_status(401)
            self.set_header("WWW-Authenticate", REALM)
            self.finish("Access denied")
            return
        decision = route(self.request.method or "", self.request.path)
        if isinstance(decision, Refuse):
            log.warning("refused %s %s: %s", self.request.method, self.request.path[:200], decision.reason)
            self.set_status(403)
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.set_header("X-Content-Type-Options", "nosniff")
            self.finish(f"refused: {decision.reason}\n")
            return
        await self._forward(decision)

    async def _forward(self, decision: Forward) -> None:
        form = self.request.body_arguments if decision.body_as_query else None
        request = HTTPRequest(
            "http://flower" + upstream_uri(self.request.path, self.request.query, form),
            method=decision.method, headers=forwarded_request_headers(self.request.headers),
            follow_redirects=False, decompress_response=False,
            connect_timeout=UPSTREAM_CONNECT_TIMEOUT_S, request_timeout=UPSTREAM_REQUEST_TIMEOUT_S)
        try:
            response = await self._upstream.fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:
            log.error("Flower did not answer %s %s: %s", decision.method, self.request.path[:200],
                      type(exc).__name__)
            self.set_status(502)
            self.finish("Flower is not answering\n")
            return
        self._relay(response, decision.method)

    def _relay(self, response: HTTPResponse, method: str) -> None:
        self.set_status(response.code, response.reason)
        kept = [(name, value) for name, value in response.headers.get_all()
                if name.lower() not in _RESPONSE_DROP or (method == "HEAD" and name.lower() == "content-length")]
        for name in {name for name, _ in kept}:
            self.clear_header(name)
        for name, value in kept:
            self.add_header(name, value)
        if method != "HEAD" and response.code not in (204, 304) and response.body:
            self.write(response.body)
        self.finish()


def make_app(credentials: Sequence[str], socket_path: str) -> Application:
    """The proxy's tornado application; `credentials` are FLOWER_BASIC_AUTH's entries."""
    upstream = SimpleAsyncHTTPClient(force_instance=True, resolver=FlowerSocket(path=socket_path),
                                     max_clients=20)
    return Application([(r".*", FlowerProxy, {"digests": credential_digests(credentials), "upstream": upstream})])

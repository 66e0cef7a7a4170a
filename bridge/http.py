"""A minimal asyncio HTTP/1.1 server for GET /health and GET /metrics.

Two routes do not justify a web framework in the bridge's process; each response is
written in one call with TCP_NODELAY set (two writes stall on Nagle + delayed ACK).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Route = Callable[[], Awaitable[tuple[int, str, bytes]]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable",
            500: "Internal Server Error", 400: "Bad Request"}


def _response(status: int, content_type: str, body: bytes, keep_alive: bool) -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    return head.encode() + body


class HttpServer:
    def __init__(self, routes: dict[str, Route]) -> None:
        self._routes = routes

    async def start(self, host: str, port: int) -> asyncio.base_events.Server:
        return await asyncio.start_server(self._serve, host, port, reuse_address=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
                lines = request.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                keep_alive = "connection: close" not in request.decode("latin-1").lower()
                writer.write(await self._answer(parts, keep_alive))
                await writer.drain()
                if not keep_alive:
                    break
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, parts: list[str], keep_alive: bool) -> bytes:
        if len(parts) != 3:
            return _response(400, "text/plain", b"bad request\n", False)
        method, target, _ = parts
        route = self._routes.get(target.split("?", 1)[0])
        if route is None:
            return _response(404, "text/plain", b"not found\n", keep_alive)
        if method not in ("GET", "HEAD"):
            return _response(405, "text/plain", b"GET only\n", keep_alive)
        try:
            status, content_type, body = await route()
        except Exception:  # a broken check must not kill the server
            log.exception("route %s failed", target)
            return _response(500, "text/plain", b"internal error\n", keep_alive)
        return _response(status, content_type, b"" if method == "HEAD" else body, keep_alive)

"""A local HTTP proxy that writes down where each request wanted to go and lets none through.

Pointing a process's HTTPS_PROXY at it turns "which host did it try to reach" into a fact
the test can read: every `CONNECT host:port` (how TLS goes through a proxy) and every
plain request with an absolute URI is recorded as `host:port`, then refused with 403, so
nothing leaves the machine whatever the process was configured to reach.
"""

from __future__ import annotations

import socketserver
import threading
from types import TracebackType
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def target_of(request_line: str) -> str | None:
    """`host:port` that one request line asks the proxy for; None for an origin-form path."""
    parts = request_line.split()
    if len(parts) < 2:
        return None
    method, target = parts[0].upper(), parts[1]
    if method == "CONNECT":
        return target.lower()
    if "://" not in target:
        return None
    url = urlsplit(target)
    port = url.port or _DEFAULT_PORTS.get(url.scheme.lower(), 0)
    return f"{(url.hostname or '').lower()}:{port}"


class _Handler(socketserver.StreamRequestHandler):
    timeout = 10

    def handle(self) -> None:
        request_line = self.rfile.readline(8192).decode("latin-1").strip()
        while self.rfile.readline(8192).strip():  # the headers: read, never forwarded
            pass
        target = target_of(request_line)
        if target is not None:
            self.server.record(target)  # type: ignore[attr-defined]
        self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._lock = threading.Lock()
        self.targets: list[str] = []

    def record(self, target: str) -> None:
        with self._lock:
            self.targets.append(target)


class RefusingProxy:
    """`with RefusingProxy() as proxy:` ... `proxy.hosts()` is the set of `host:port` asked for."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, name="refusing-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        """Proxy variables for a child process: every scheme to this proxy; only loopback
        (Redis, the database, the bridge's own API) is reached directly."""
        names = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
        bypass = "127.0.0.1,localhost"
        return {**dict.fromkeys(names, self.url), "NO_PROXY": bypass, "no_proxy": bypass}

    def requests(self) -> list[str]:
        with self._server._lock:
            return list(self._server.targets)

    def hosts(self) -> set[str]:
        return set(self.requests())

    def start(self) -> RefusingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RefusingProxy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

"""A TCP forwarder a test can shut: every connection through it goes on to `target`, until
`hold()` cuts them all and turns new ones away (accepted, then closed at once), until
`release()`. Put in front of the simulator's trade_updates stream, it keeps the account
mirror's consumer disconnected for as long as a test needs (the simulator's own
`/_sim/stream/drop` cuts once, and the consumer is back a second later)."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpGate:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._held = False
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stopped = False
        self.accepted = 0

    def url(self, scheme: str = "ws", path: str = "/stream") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> TcpGate:
        threading.Thread(target=self._accept, name=f"tcp-gate-{self.port}", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self.hold()
        self._listener.close()

    def hold(self) -> None:
        """Cut every connection now and turn new ones away."""
        with self._lock:
            self._held = True
            doomed, self._open = list(self._open), set()
        for sock in doomed:
            _close(sock)

    def release(self) -> None:
        with self._lock:
            self._held = False

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                held = self._held
            if held:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self.accepted += 1
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass  # either side closed: both are closed below
        finally:
            for sock in (src, dst):
                _close(sock)
                with self._lock:
                    self._open.discard(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()

"""A small userspace TCP forwarder: `python -m tests.support.tcp_forward LISTEN_ADDR:PORT TARGET_ADDR:PORT`.

The several-hosts tests need two: RabbitMQ listens on 127.0.0.1 in the root namespace only,
so the hosts reach it through a forwarder on the bridge address; and the gateway talks to
a broker only on loopback or at Alpaca paper (settings.py refuses anything else), so each
worker and bridge host runs one on its own 127.0.0.1 to the simulator on the broker host,
as a process of that host: cutting the host off from the broker host cuts the forwarder's
connections too. Nothing is read or changed in the bytes.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading


class TcpProxy:
    """Forwards a listening address to another (RabbitMQ runs on 127.0.0.1 in the root
    namespace only: the hosts reach it through ROOT_ADDR:port)."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen = listen
        self.target = target
        self._server = socket.create_server(listen, reuse_port=False)
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept, daemon=True, name="tcp-proxy").start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for end in (src, dst):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stop.set()
        self._server.close()
        with self._lock:
            for conn in self._conns:
                conn.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str]) -> int:
    listen, target = (_address(a) for a in argv)
    TcpProxy(listen, target).start()
    print(f"forwarding {listen} to {target}", flush=True)
    threading.Event().wait()  # until SIGTERM
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

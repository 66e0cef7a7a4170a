"""One read sent to the broker ahead of time, on a second keep-alive connection.

Row 9 asks the broker two things before an order: is there an open position, is there an
open order for the ticker. alpaca-py's calls are synchronous, so asked one after the
other they cost two round trips to the broker. Here the open-orders read is sent first,
on its own connection, and the position read is asked meanwhile on the pool's
connection: the broker works on both at once, and when alpaca-py then asks for the open
orders the answer is already on its way. Against Alpaca, one round trip to the broker
less on every order.

Only a GET is ever sent ahead: reading something twice is harmless, sending an order
twice is not. An answer nobody asks for (a position was found, so the open orders are
not needed) is dropped by closing its connection, never read into the next call.
"""

from __future__ import annotations

import http.client
import logging
from dataclasses import dataclass

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util import parse_url

log = logging.getLogger(__name__)
LINE_FAILURES = (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError)


@dataclass(frozen=True)
class Request:
    """What alpaca-py was about to send, as the transport saw it."""

    method: str
    url: str  # with its encoded query
    headers: dict[str, str]


class AheadLine:
    """The second connection: one request in flight at a time, used by one thread
    (BrokerSession keeps one per thread)."""

    def __init__(self, base_url: str, ca_certs: str) -> None:
        parts = parse_url(base_url)
        if parts.scheme == "https":
            self._conn: HTTPConnection = HTTPSConnection(parts.host or "", parts.port or 443,
                                                         cert_reqs="CERT_REQUIRED", ca_certs=ca_certs)
        else:
            self._conn = HTTPConnection(parts.host or "", parts.port or 80)
        self._pending: Request | None = None
        self.answered = 0  # calls answered from a request sent ahead (tests, bench)

    def send(self, request: Request, timeout: float) -> bool:
        """Send now; False when it could not be sent (the call then asks the usual way)."""
        if request.method != "GET":
            return False
        self.drop()
        if self._conn.sock is not None and not self._conn.is_connected:
            self._conn.close()  # the broker closed it while idle: request() reconnects
        try:
            self._conn.timeout = timeout
            self._conn.request(request.method, parse_url(request.url).request_uri, headers=request.headers)
        except LINE_FAILURES as exc:
            log.debug("read not sent ahead (%s); it is asked the usual way", type(exc).__name__)
            self._conn.close()
            return False
        self._pending = request
        return True

    def answer_for(self, method: str, url: str, timeout: float) -> urllib3.BaseHTTPResponse | None:
        """The answer to this request if it was sent ahead; None if it was not, or if the
        line broke before an answer came (the caller then asks again: a GET).

        Raises urllib3's ReadTimeoutError when the broker is too slow, as the pool would."""
        pending = self._pending
        if pending is None or (pending.method, pending.url) != (method, url):
            return None  # another request: the one sent ahead waits for its own call
        self._pending = None
        try:
            self._conn.timeout = timeout
            response = self._conn.getresponse()
        except (TimeoutError, urllib3.exceptions.ReadTimeoutError) as exc:
            self._conn.close()
            raise urllib3.exceptions.ReadTimeoutError(None, url, f"read timed out ({timeout}s)") from exc
        except LINE_FAILURES as exc:
            log.debug("read sent ahead got no answer (%s); asking again", type(exc).__name__)
            self._conn.close()
            return None
        self.answered += 1
        return response

    def drop(self) -> None:
        """Forget an answer nobody asked for: close its connection, so that it is never
        read as the answer to another request."""
        if self._pending is not None:
            self._pending = None
            self._conn.close()

    def close(self) -> None:
        self._pending = None
        self._conn.close()

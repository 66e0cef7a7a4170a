"""The HTTP transport under alpaca-py's TradingClient: requests' interface, urllib3's pool.

alpaca-py talks to the Trading API through a `requests.Session`. requests itself costs
about as much CPU per call as the HTTP exchange under it (session merge, hooks, cookies,
adapter), and an order makes three calls back to back (row 9's two reads, the submit).
So `BrokerSession.request` sends alpaca-py's requests straight through one urllib3 pool
and hands back a real `requests.Response` (`python -m bench.http_transport`: per call of
alpaca-py against the simulator, CPU 1.73 -> 1.20 ms and wall 2.35 -> 1.79 ms, against
requests with the environment read once; stock requests 2.25 / 2.89 ms). alpaca-py's error
handling (`raise_for_status`, `APIError`) and ours (`alpaca_adapter._classified`, which
sees requests' exception classes) work unchanged.

What requests would have done and still happens here: query parameters encoded by
requests' own encoder, a JSON body, TLS verified against the same CA bundle, the
environment's proxy for the broker's host read once, no redirects followed, no retries
(a request that may have reached the broker is never resent blindly), a timeout on every
call (alpaca-py sets none). A call with any option beyond those alpaca-py uses goes
through plain requests.

`BrokerSession.ahead(call)` sends the GET that `call` makes on a second connection now and
answers `call` from it later (broker_ahead.py): row 9's two reads in one round trip.
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import requests
import urllib3
from requests.models import RequestEncodingMixin
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers, get_environ_proxies

from .broker_ahead import AheadLine, Request

log = logging.getLogger(__name__)
_HANDLED = frozenset({"params", "json", "headers", "allow_redirects", "timeout"})


def _ca_bundle() -> str:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or DEFAULT_CA_BUNDLE_PATH


class BrokerSession(requests.Session):
    """One keep-alive pool to the broker, with a timeout on every call."""

    def __init__(self, timeout: float, base_url: str) -> None:
        super().__init__()
        self._timeout = timeout
        self.trust_env = False  # the environment is read once, here, not on every request
        self.verify = _ca_bundle()
        self.proxies.update(get_environ_proxies(base_url))
        proxy = self.proxies.get(urlsplit(base_url).scheme) or self.proxies.get("all")
        options: dict[str, Any] = {"num_pools": 2, "maxsize": 2, "retries": False, "block": False,
                                   "cert_reqs": "CERT_REQUIRED", "ca_certs": self.verify}
        self._pool = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
        # Through a proxy every request takes the pool's way; nothing is sent ahead.
        self._ahead_to = None if proxy else base_url
        self._local = threading.local()  # one line and one capture per thread
        self._lines: list[AheadLine] = []

    @property
    def answered_ahead(self) -> int:
        """Calls answered from a read sent ahead (the tests check it is used)."""
        return sum(line.answered for line in self._lines)

    def _line(self) -> AheadLine | None:
        """This thread's second connection (a line carries one request at a time)."""
        if self._ahead_to is None:
            return None
        line = getattr(self._local, "line", None)
        if line is None:
            line = self._local.line = AheadLine(self._ahead_to, self.verify)
            self._lines.append(line)
        return line

    @contextmanager
    def ahead(self, call: Callable[[], object]) -> Iterator[None]:
        """Send the GET that `call` makes now, on the second connection, and let the block
        do something else meanwhile; `call` run again inside the block reads that answer.

        The request is exactly alpaca-py's: `call` runs with the transport capturing what
        it would send instead of sending it. Anything that cannot be sent ahead (not a
        GET, a proxy, a broken connection) is simply asked the usual way when `call` runs."""
        line = self._line()
        if line is not None:
            request = self._capture(call)
            if request is not None:
                line.send(request, self._timeout)
        try:
            yield
        finally:
            if line is not None:
                line.drop()

    def _capture(self, call: Callable[[], object]) -> Request | None:
        self._local.capturing = True
        try:
            call()
        except _Captured as captured:
            return captured.request
        except Exception:  # noqa: BLE001 - nothing is sent ahead; the real call will say what is wrong
            log.debug("no request captured to send ahead", exc_info=True)
        finally:
            self._local.capturing = False
        return None

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self._timeout)
        plain = bool(args or set(kwargs) - _HANDLED or kwargs.get("allow_redirects", False))
        if getattr(self._local, "capturing", False):
            raise _Captured(None if plain else self._request_of(str(method).upper(), str(url), kwargs))
        if plain:
            return super().request(method, url, *args, **kwargs)  # not what alpaca-py sends: plain requests
        return self._send(str(method).upper(), str(url), kwargs.get("params"), kwargs.get("json"),
                          kwargs.get("headers") or {}, kwargs["timeout"])

    @staticmethod
    def _request_of(method: str, url: str, kwargs: dict[str, Any]) -> Request:
        """The request as it goes on the wire: encoded query, headers (a GET has no body)."""
        params = kwargs.get("params")
        if params:
            url = f"{url}?{RequestEncodingMixin._encode_params(params)}"
        headers = {"Accept": "*/*", "Accept-Encoding": "identity", **(kwargs.get("headers") or {})}
        return Request(method, url, headers)

    def _send(self, method: str, url: str, params: Any, body: Any, headers: dict[str, str],
              timeout: float) -> requests.Response:
        request = self._request_of(method, url, {"params": params, "headers": headers})
        url, headers = request.url, request.headers
        data = None
        if body is not None:
            data = jsonlib.dumps(body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        try:
            line = getattr(self._local, "line", None)  # made by `ahead` only
            raw = line.answer_for(method, url, timeout) if line else None
            if raw is None:
                raw = self._pool.urlopen(method, url, body=data, headers=headers, redirect=False, retries=False,
                                         timeout=urllib3.Timeout(connect=timeout, read=timeout),
                                         preload_content=True)
        except urllib3.exceptions.ConnectTimeoutError as exc:
            raise requests.ConnectTimeout(exc) from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise requests.ReadTimeout(exc) from exc
        except urllib3.exceptions.SSLError as exc:
            raise requests.exceptions.SSLError(exc) from exc
        except urllib3.exceptions.ProxyError as exc:
            raise requests.exceptions.ProxyError(exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise requests.ConnectionError(exc) from exc
        return _response(url, raw)

    def close(self) -> None:
        self._pool.clear()
        for line in self._lines:
            line.close()
        super().close()


class _Captured(Exception):
    """Carries the request a call was about to send out of alpaca-py (see `ahead`)."""

    def __init__(self, request: Request | None) -> None:
        super().__init__("captured")
        self.request = request


def _response(url: str, raw: urllib3.BaseHTTPResponse) -> requests.Response:
    """The urllib3 answer as the `requests.Response` alpaca-py reads."""
    response = requests.Response()
    response.status_code = raw.status
    response.headers = CaseInsensitiveDict(raw.headers)
    response._content = raw.data
    response.encoding = get_encoding_from_headers(response.headers)
    response.reason = raw.reason or ""
    response.url = url
    return response

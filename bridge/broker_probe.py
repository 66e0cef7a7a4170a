"""The broker check of /health: one authenticated GET /v2/account, without alpaca-py.

alpaca-py imports pandas and numpy (~90 MB) and requests ~6 MB more; the bridge needs
nothing from either but this one call, so it is made with the standard library's
urllib (which, like requests, honours the proxy environment variables). The URL is the
same paper-only one the workers use (the validated ALPACA_BASE_URL, else Alpaca's paper
host), with a timeout; keys go in headers only, and a redirect is refused rather than
followed, so they are never sent to another address.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

from zero_tasks.settings import ALPACA_PAPER_HOST, Settings


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


class BrokerProbe:
    def __init__(self, settings: Settings, timeout_s: float = 5.0) -> None:
        self._url = (settings.alpaca_base_url or f"https://{ALPACA_PAPER_HOST}") + "/v2/account"
        self._headers = {"APCA-API-KEY-ID": settings.alpaca_api_key.get_secret_value(),
                         "APCA-API-SECRET-KEY": settings.alpaca_secret_key.get_secret_value(),
                         "Accept": "application/json"}
        self._timeout_s = timeout_s
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if settings.alpaca_ca_file:  # a loopback HTTPS simulator's test CA, trusted alone (settings.py)
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=settings.alpaca_ca_file)))
        self._opener = urllib.request.build_opener(*handlers)

    def __call__(self) -> str:
        """'account ACTIVE in 3 ms'; raises with the HTTP status (never a key) otherwise."""
        started = time.perf_counter()
        request = urllib.request.Request(self._url, headers=self._headers, method="GET")
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"HTTP {exc.code}") from None
        status = json.loads(body).get("status", "?")
        return f"account {status} in {1000 * (time.perf_counter() - started):.0f} ms"

"""The broker check of /health: one authenticated GET /v2/account, without alpaca-py.

alpaca-py imports pandas and numpy (~90 MB); the bridge needs nothing from it but this
one call. The URL is the same paper-only one the workers use (the validated
ALPACA_BASE_URL, else Alpaca's paper host), with a timeout; keys go in headers only.
"""

from __future__ import annotations

import time

import requests

from zero_tasks.settings import ALPACA_PAPER_HOST, Settings


class BrokerProbe:
    def __init__(self, settings: Settings, timeout_s: float = 5.0) -> None:
        self._url = (settings.alpaca_base_url or f"https://{ALPACA_PAPER_HOST}") + "/v2/account"
        self._headers = {"APCA-API-KEY-ID": settings.alpaca_api_key.get_secret_value(),
                         "APCA-API-SECRET-KEY": settings.alpaca_secret_key.get_secret_value()}
        self._timeout_s = timeout_s
        self._session = requests.Session()

    def __call__(self) -> str:
        started = time.perf_counter()
        response = self._session.get(self._url, headers=self._headers, timeout=self._timeout_s,
                                     allow_redirects=False)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")
        status = response.json().get("status", "?")
        return f"account {status} in {1000 * (time.perf_counter() - started):.0f} ms"

"""Local Alpaca Trading API v2 simulator for testing the paper-only gateway.

The real alpaca-py ``TradingClient(..., url_override=sim.url)`` talks to it
unchanged, so gateway tests exercise the genuine client code path (parsing,
error handling, retries) without any outside service, and the /_sim admin API
injects the failures (5xx, 429, dropped connections, "accepted but the answer
was lost") that a live paper account can never be made to produce on demand.
"""

from .server import SimServer
from .state import BrokerState

__all__ = ["BrokerState", "SimServer"]

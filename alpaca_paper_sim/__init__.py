"""Local Alpaca Trading API v2 simulator for testing the paper-only gateway.

The real alpaca-py ``TradingClient(..., url_override=sim.url)`` talks to it
unchanged, so gateway tests exercise the genuine client code path (parsing,
error handling, retries) without any outside service, and the /_sim admin API
injects the failures (5xx, 429, dropped connections, "accepted but the answer
was lost") that a live paper account can never be made to produce on demand.

It behaves as Alpaca does where the gateway can tell: one key pair, a trading session
(New York regular hours by default, or always open), market orders that fill a moment
after they are accepted (at the next open when the market is shut), Alpaca's clock,
calendar and X-RateLimit-* headers. It can serve HTTPS (TLS 1.3, a throw-away test CA) and
close idle keep-alive connections, as a server across the internet does.
"""

from .server import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, SimServer
from .session import TradingSession
from .state import BrokerState
from .tls import TestTLS, make_test_tls


def open_market(**overrides: object) -> BrokerState:
    """A market that never closes and fills market orders at once, and lists any plain made-up
    equity symbol (``synthetic_assets``): for tests about the gateway, not about the hours or
    the assets (those build their own ``BrokerState``)."""
    settings: dict = {"fill_delay_s": 0, "session": TradingSession.around_the_clock(), "rate_limit": 1_000_000,
                      "synthetic_assets": True}
    settings.update(overrides)
    return BrokerState(**settings)


__all__ = ["DEFAULT_KEY_ID", "DEFAULT_SECRET_KEY", "BrokerState", "SimServer", "TestTLS", "TradingSession",
           "make_test_tls", "open_market"]

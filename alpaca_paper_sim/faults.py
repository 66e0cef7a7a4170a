"""The failures the admin API injects into trading requests (``POST /_sim/fault``)."""

from __future__ import annotations

from dataclasses import dataclass

# "echo_headers": a 502 whose message quotes the request's key headers, as a misbehaving
# proxy might: for the tests that prove no secret leaves the gateway.
PRE_FAULTS = frozenset({"500", "503", "429", "403", "slow", "drop", "echo_headers"})
POST_FAULTS = frozenset({"accept_then_drop", "accept_then_500", "accept_then_slow"})
FAULT_MODES = PRE_FAULTS | POST_FAULTS


@dataclass
class FaultRule:
    """One injected failure: applies to the next ``count`` matching trading requests."""

    mode: str
    count: int = 1  # -1 = until cleared
    method: str | None = None
    path: str | None = None
    delay: float = 2.0
    retry_after: float | None = 1.0  # None: a 429 without Retry-After (X-RateLimit-Reset only)
    query: dict[str, str] | None = None  # only requests with these query parameters

    def matches(self, method: str, path: str, query: dict[str, str] | None = None) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.query and any((query or {}).get(k) != v for k, v in self.query.items()):
            return False
        return self.path is None or path.startswith(self.path)

"""The verdict of one message: a status and a reason that starts with a stable code.

Codes are the contract's "reason starts with" column; dashboards and tests match on
them, so they never change. The detail after the colon carries the deciding values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    SUBMITTED = "SUBMITTED"
    BLOCKED = "BLOCKED"
    SKIPPED = "SKIPPED"
    REJECTED = "REJECTED"
    ERROR = "ERROR"


class Code(StrEnum):
    INVALID = "invalid payload"
    NO_OPPORTUNITIES = "no opportunities"
    DISABLED = "execution disabled"
    MARKET_STATE = "market state"
    STAND_DOWN = "stand-down"
    CIRCUIT_OPEN = "circuit open"
    BLOCKLIST = "blocklist"
    DAILY_CAP = "daily cap"
    RATE_LIMIT = "rate limit"
    THRESHOLD = "threshold"
    EXPIRED = "expired"
    DUPLICATE = "duplicate"
    COOLDOWN = "cooldown"
    OPEN_POSITION = "open position"
    BROKER_REJECTED = "broker rejected"
    ERROR = "error"
    SUBMITTED = "submitted"


STATUS_OF: dict[Code, Status] = {
    Code.INVALID: Status.SKIPPED,
    Code.NO_OPPORTUNITIES: Status.SKIPPED,
    Code.DISABLED: Status.BLOCKED,
    Code.MARKET_STATE: Status.BLOCKED,
    Code.STAND_DOWN: Status.BLOCKED,
    Code.CIRCUIT_OPEN: Status.BLOCKED,
    Code.BLOCKLIST: Status.BLOCKED,
    Code.DAILY_CAP: Status.BLOCKED,
    Code.RATE_LIMIT: Status.BLOCKED,
    Code.THRESHOLD: Status.BLOCKED,
    Code.EXPIRED: Status.SKIPPED,
    Code.DUPLICATE: Status.SKIPPED,
    Code.COOLDOWN: Status.SKIPPED,
    Code.OPEN_POSITION: Status.SKIPPED,
    Code.BROKER_REJECTED: Status.REJECTED,
    Code.ERROR: Status.ERROR,
    Code.SUBMITTED: Status.SUBMITTED,
}


@dataclass(frozen=True)
class Verdict:
    """One decision. `deny` returns one of these; None means "no objection"."""

    code: Code
    detail: str

    @property
    def status(self) -> Status:
        return STATUS_OF[self.code]

    @property
    def reason(self) -> str:
        return f"{self.code.value}: {self.detail}" if self.detail else self.code.value


def deny(code: Code, detail: str) -> Verdict:
    return Verdict(code, detail)

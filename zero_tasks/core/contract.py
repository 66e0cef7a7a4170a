"""Pydantic models of the wire contract (../shared/CONTRACT.md) and the execution_id.

Inbound models validate in strict JSON mode: a bool is not a probability, a string is
not a number, NaN and infinity are not finite. Unknown fields are kept (they reach the
audit copy) and never change a decision.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError

SCHEMA_VERSION = "1.0"

Horizon = Literal["H30", "H2H", "HDAY", "HWEEK"]
HORIZONS = frozenset(get_args(Horizon))
State = Literal["GREEN", "YELLOW", "RED"]
Direction = Literal["LONG", "SHORT", "NEUTRAL"]
Status = Literal["SUBMITTED", "BLOCKED", "SKIPPED", "REJECTED", "ERROR"]
Intent = Literal["entry", "protect", "exit"]
Side = Literal["buy", "sell"]
ExitReason = Literal["target_stop", "horizon"]


def as_utc(value: datetime) -> datetime:
    """The contract: a time without an offset is UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-05:00 is past year 9999 in UTC
        raise ValueError("time is out of range once converted to UTC") from None


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_text(value: object) -> object:
    """ISO 8601 only: pydantic would also take epoch numbers, which the contract does not."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("time must be an ISO 8601 string")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("time must be an ISO 8601 string") from None


UtcDatetime = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(as_utc)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Score = Annotated[int | float, Field(ge=0, le=100, allow_inf_nan=False)]
# A US equity symbol: upper-case letters with at most one class suffix (BRK.B). Nothing
# else is ever ordered: an option contract symbol (F250117C00012000) is 100 shares of
# exposure per "1", and a symbol goes into the broker's URL paths.
TICKER_PATTERN = r"^[A-Z]{1,6}(?:\.[A-Z]{1,2})?$"
Ticker = Annotated[str, StringConstraints(pattern=TICKER_PATTERN)]


class Opportunity(BaseModel):
    """One ranked opportunity; only `opportunities[0]` is ever traded."""

    model_config = ConfigDict(extra="allow")

    ticker: Ticker
    horizon: Horizon
    opportunity_score: Score
    probability: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    target_atr: Finite
    stop_atr: Finite
    market_state: State
    attention_stability_score: Score
    direction: Direction = "LONG"
    why: list[Annotated[str, StringConstraints(max_length=1000)]] = Field(default_factory=list, max_length=50)


class OpportunityRank(BaseModel):
    """What core logic publishes on chan:opportunity_update. Entries past [0] stay raw."""

    model_config = ConfigDict(extra="allow")

    schema_version: str = SCHEMA_VERSION
    timestamp: UtcDatetime | None = None
    horizon: Horizon | None = None
    rank_time: UtcDatetime
    total_candidates: int | None = None
    opportunities: list[Any]


class MarketState(BaseModel):
    """The regime service's verdict in key:market_state: the final veto. The fields of
    ZERO's own MarketState, typed as it types them: what this model reads, ZERO's
    consumers read too."""

    model_config = ConfigDict(extra="allow")

    schema_version: str = SCHEMA_VERSION
    timestamp: UtcDatetime
    state: State
    vix_level: Finite | None = None
    vixy_price: Finite | None = None
    vix_roc: Finite | None = None
    adv_decl: Finite | None = None
    trin: Finite | None = None
    breadth_score: Finite | None = None
    event_risk: bool = False
    reason: str | None = None


def is_market_state(value: dict[str, Any] | None) -> bool:
    """Whether a stored snapshot is a MarketState (else an event carries `market_state` null)."""
    if value is None:
        return False
    try:
        MarketState.model_validate(value)
    except ValidationError:
        return False
    return True


class StandDownSignal(BaseModel):
    """Optional key:stand_down_reason: while in force, no order for its scope."""

    model_config = ConfigDict(extra="allow")

    schema_version: str = SCHEMA_VERSION
    timestamp: UtcDatetime | None = None
    reason: str = ""
    scope: Literal["GLOBAL", "TICKER", "SECTOR"]
    ticker: str | None = None
    sector: str | None = None
    expires_at: UtcDatetime | None = None


class TradeUpdate(BaseModel):
    """What the gateway publishes on chan:trade_update, one per decision."""

    schema_version: str = SCHEMA_VERSION
    timestamp: datetime
    execution_id: str
    ticker: str | None
    horizon: Horizon | None
    probability: float | None
    opportunity_score: int | float | None
    status: Status
    alpaca_order_id: str | None = None
    why: list[str]
    market_state_snapshot: dict[str, Any] | None = None
    market_state: dict[str, Any] | None = None  # a MarketState, or null
    submitted_at: datetime  # the attempt time, for every status
    client_order_id: str | None = None
    decision_id: str | None = None  # the execution_log row's event_key
    intent: Intent = "entry"  # which order of the position lifecycle
    side: Side = "buy"
    exit_reason: ExitReason | None = None  # exits only


def execution_id(ticker: str, horizon: str, rank_time: datetime) -> str:
    """ZERO's deterministic id: the same ranking published twice gives the same id."""
    return f"{ticker}:{horizon}:{as_utc(rank_time):%Y-%m-%dT%H:%M:%S}"


ENTRY_PREFIX, PROTECT_PREFIX, EXIT_PREFIX = "zx-", "zp-", "zs-"
GATEWAY_PREFIXES = (ENTRY_PREFIX, PROTECT_PREFIX, EXIT_PREFIX)


def _body(exec_id: str) -> str:
    """What follows the prefix: the execution_id when it fits Alpaca's 128 characters, else its hash."""
    return exec_id if len(exec_id) <= 125 else hashlib.sha256(exec_id.encode()).hexdigest()


def client_order_id(exec_id: str) -> str:
    """Alpaca's idempotency key for the entry order, derived from the execution_id.

    Readable when it fits Alpaca's 128 characters; a retried or redelivered submit
    sends the same value, so Alpaca answers 422 instead of placing a second order.
    Only entries start with `zx-`: the daily cap counts the broker's `zx-` orders.
    """
    return ENTRY_PREFIX + _body(exec_id)


def protect_client_order_id(exec_id: str) -> str:
    """The protect OCO's key: `zp-` and the entry's body (one protect per execution)."""
    return PROTECT_PREFIX + _body(exec_id)


def exit_client_order_id(exec_id: str) -> str:
    """The horizon sell's key: `zs-` and the entry's body (at most one horizon sell per execution)."""
    return EXIT_PREFIX + _body(exec_id)

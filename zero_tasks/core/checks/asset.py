"""Tradable US equities only, as the broker says: the asset's class, tradability and status.

The contract's ticker pattern lets through symbols that are not US equities at Alpaca (a
crypto pair such as BTCUSD, an unknown or delisted symbol); sent as orders, they come back
as 4xx, which would count toward the circuit breaker. So before an order the broker's own
word on the asset is checked: `class == us_equity`, `tradable`, `status == active`. An
asset the broker does not know, or an answer that cannot be read, is not tradable.

Pure: the broker adapter reads the asset (alpaca_adapter), Redis keeps the verdict for the
trading day (redis_state), this module judges.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from zero_tasks.core.decision import Code, Verdict, deny


@dataclass(frozen=True)
class AssetVerdict:
    """What the broker said about one symbol: tradable as a US equity, or why not."""

    symbol: str
    tradable: bool
    detail: str  # "us_equity, tradable, active" or why not

    def to_json(self) -> str:
        return json.dumps({"symbol": self.symbol, "tradable": self.tradable, "detail": self.detail})

    @classmethod
    def from_json(cls, raw: str | bytes) -> AssetVerdict | None:
        """A kept verdict, or None when it is not one (asked again)."""
        try:
            value = json.loads(raw)
            verdict = cls(str(value["symbol"]), value["tradable"], str(value["detail"]))
        except (ValueError, KeyError, TypeError):
            return None
        return verdict if isinstance(verdict.tradable, bool) else None


def asset_verdict(symbol: str, asset_class: str, tradable: bool, status: str) -> AssetVerdict:
    """The broker's asset, judged: all three must hold."""
    problems = [text for bad, text in ((asset_class != "us_equity", f"class {asset_class}"),
                                       (tradable is not True, "not tradable"),
                                       (status != "active", f"status {status}")) if bad]
    return AssetVerdict(symbol, not problems, ", ".join(problems) or "us_equity, tradable, active")


def unknown_asset(symbol: str, detail: str) -> AssetVerdict:
    return AssetVerdict(symbol, False, detail)


def check_asset(ticker: str, verdict: AssetVerdict | None) -> Verdict | None:
    """SKIPPED `invalid payload: <ticker> is not a tradable US equity (...)`, or None."""
    if verdict is None:
        return deny(Code.INVALID, f"{ticker} is not a tradable US equity (the broker's answer is not known)")
    if not verdict.tradable:
        return deny(Code.INVALID, f"{ticker} is not a tradable US equity ({verdict.detail})")
    return None

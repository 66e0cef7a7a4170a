"""Assets as Alpaca lists them: US equities from a shipped file, crypto pairs, option contracts.

The equities are ``data/assets.csv`` (the S&P 500 and the most traded ETFs; its header names
the source). Crypto pairs answer in both spellings (``BTC/USD`` and ``BTCUSD``, the one asset
``BTC/USD``); an option contract is any OCC symbol (``AAPL250117C00150000``) whose underlying
is listed. ``synthetic`` answers any other plain US-equity symbol (upper-case letters, an
optional ``.X`` class) as an active, tradable equity with a level derived from its name: a
test convenience for the e2e suite's made-up tickers, off by default (Alpaca answers such a
symbol 422 "could not find asset"). Pure lookups; the broker state holds the lock.
"""

from __future__ import annotations

import csv
import functools
import re
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from .prices import name_level

DATA_FILE = Path(__file__).with_name("data") / "assets.csv"
EQUITY_PATTERN = re.compile(r"^[A-Z]{1,5}(\.[A-Z])?$")
OCC_PATTERN = re.compile(r"^(?P<root>[A-Z]{1,6})(?P<expiry>\d{6})(?P<right>[CP])(?P<strike>\d{8})$")
CRYPTO_PAIRS: dict[str, Decimal] = {
    "BTC/USD": Decimal("65000"), "ETH/USD": Decimal("3200"), "SOL/USD": Decimal("150"),
    "LTC/USD": Decimal("80"), "DOGE/USD": Decimal("0.15"), "AVAX/USD": Decimal("30"),
    "LINK/USD": Decimal("15"), "BCH/USD": Decimal("400"), "UNI/USD": Decimal("8"),
    "BTC/USDT": Decimal("65000"), "ETH/USDT": Decimal("3200"), "ETH/BTC": Decimal("0.05"),
}
ASSET_STATUSES = frozenset({"active", "inactive"})
ASSET_CLASSES = frozenset({"us_equity", "us_option", "crypto"})


def asset_id_for(symbol: str) -> str:
    """Stable per-symbol asset UUID so orders, positions and assets agree on asset_id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-paper-sim/asset/{symbol}"))


@dataclass(frozen=True)
class Asset:
    """One tradable instrument and the rules Alpaca applies to its orders."""

    symbol: str
    name: str
    asset_class: str = "us_equity"
    exchange: str = "NYSE"
    price: Decimal = Decimal("100")
    status: str = "active"
    tradable: bool = True
    marginable: bool = True
    shortable: bool = True
    easy_to_borrow: bool = True
    fractionable: bool = True

    @property
    def id(self) -> str:
        return asset_id_for(self.symbol)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "class": self.asset_class, "exchange": self.exchange, "symbol": self.symbol,
            "name": self.name, "status": self.status, "tradable": self.tradable, "marginable": self.marginable,
            "shortable": self.shortable, "easy_to_borrow": self.easy_to_borrow, "fractionable": self.fractionable,
            "maintenance_margin_requirement": 30 if self.asset_class == "us_equity" else 100,
            "margin_requirement_long": "30" if self.asset_class == "us_equity" else "100",
            "margin_requirement_short": "100", "attributes": [],
        }
        if self.asset_class == "crypto":
            body.update(min_order_size="0.000001", min_trade_increment="0.000000001", price_increment="0.01")
        return body


def _flag(text: str) -> bool:
    return text.strip().lower() == "true"


def load_equities(path: Path = DATA_FILE) -> dict[str, Asset]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    found: dict[str, Asset] = {}
    for row in csv.DictReader(lines):
        found[row["symbol"]] = Asset(
            symbol=row["symbol"], name=row["name"], exchange=row["exchange"], price=Decimal(row["price"]),
            shortable=_flag(row["shortable"]), easy_to_borrow=_flag(row["easy_to_borrow"]),
            fractionable=_flag(row["fractionable"]),
        )
    return found


@functools.cache
def shipped_equities() -> dict[str, Asset]:
    """The shipped file, read once per process (every reset shares it; nobody mutates it)."""
    return load_equities()


def crypto_assets() -> dict[str, Asset]:
    return {
        pair: Asset(symbol=pair, name=f"{pair.split('/')[0]} / {pair.split('/')[1]}", asset_class="crypto",
                    exchange="CRYPTO", price=price, marginable=False, shortable=False, easy_to_borrow=False)
        for pair, price in CRYPTO_PAIRS.items()
    }


class AssetBook:
    """The listed assets plus those tests added; `find` resolves every spelling Alpaca accepts."""

    def __init__(self, synthetic: bool = False) -> None:
        self.synthetic = synthetic
        self._assets: dict[str, Asset] = {**shipped_equities(), **crypto_assets()}
        self._by_id = {a.id: a for a in self._assets.values()}

    def add(self, asset: Asset) -> Asset:
        self._assets[asset.symbol] = asset
        self._by_id[asset.id] = asset
        return asset

    def find(self, symbol_or_id: str) -> Asset | None:
        key = symbol_or_id.strip()
        found = self._by_id.get(key.lower())
        if found is not None:
            return found
        symbol = key.upper()
        found = self._assets.get(symbol)
        if found is not None:
            return found
        if "/" not in symbol and symbol.endswith(("USD", "USDT", "BTC")):  # BTCUSD -> BTC/USD
            for quote in ("USDT", "USD", "BTC"):
                if symbol.endswith(quote) and f"{symbol[:-len(quote)]}/{quote}" in self._assets:
                    return self._assets[f"{symbol[:-len(quote)]}/{quote}"]
        option = OCC_PATTERN.match(symbol)
        if option is not None:
            underlying = self.find(option["root"])
            if underlying is not None and underlying.asset_class == "us_equity":
                return Asset(symbol=symbol, name=f"{option['root']} option {option['expiry']} {option['right']}",
                             asset_class="us_option", exchange=underlying.exchange, price=Decimal("2.50"),
                             marginable=False, shortable=False, easy_to_borrow=False, fractionable=False)
        if self.synthetic and EQUITY_PATTERN.match(symbol):
            return Asset(symbol=symbol, name=f"{symbol} (synthetic)", exchange="NASDAQ", price=name_level(symbol))
        return None

    def listed(self, status: str | None, asset_class: str | None, exchange: str | None) -> list[Asset]:
        return [a for a in self._assets.values()
                if (status is None or a.status == status)
                and (asset_class is None or a.asset_class == asset_class)
                and (exchange is None or a.exchange == exchange)]


def asset_from_admin(body: dict[str, Any]) -> Asset:
    """An asset a test adds (POST /_sim/assets); unknown keys refused by the caller."""
    symbol = str(body.get("symbol") or "").strip().upper()
    if not symbol:
        raise ValueError("symbol is required")
    asset_class = body.get("class", body.get("asset_class", "us_equity"))
    if asset_class not in ASSET_CLASSES:
        raise ValueError(f"class must be one of {sorted(ASSET_CLASSES)}")
    base = Asset(symbol=symbol, name=str(body.get("name") or symbol), asset_class=asset_class)
    changes: dict[str, Any] = {}
    for key in ("exchange", "status"):
        if key in body:
            changes[key] = str(body[key])
    for key in ("tradable", "marginable", "shortable", "easy_to_borrow", "fractionable"):
        if key in body:
            if not isinstance(body[key], bool):
                raise ValueError(f"{key} must be true or false")
            changes[key] = body[key]
    if "price" in body:
        changes["price"] = Decimal(str(body["price"]))
    if changes.get("status", "active") not in ASSET_STATUSES:
        raise ValueError("status must be active or inactive")
    return replace(base, **changes)

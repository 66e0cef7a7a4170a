"""The ATR's 5-minute bars, from Alpaca's market data through alpaca-py's
StockHistoricalDataClient: the same paper keys, a request timeout and no blind retry
(alpaca_compat.configure), and one host only: the loopback simulator when ALPACA_BASE_URL
is one, else Alpaca's market-data host (settings.market_data_url), nothing else.

The IEX feed is the one a paper account's free plan reads.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.models import BarSet
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from zero_tasks.adapters import alpaca_compat
from zero_tasks.adapters.alpaca_adapter import BrokerRejected, _classified, url_symbol
from zero_tasks.core.lifecycle.atr import BAR_MINUTES, PERIOD, Bar, atr, lookback
from zero_tasks.settings import Settings, market_data_url


def make_data_client(settings: Settings) -> StockHistoricalDataClient:
    url = market_data_url(settings.alpaca_base_url)
    client = StockHistoricalDataClient(settings.alpaca_api_key.get_secret_value(),
                                       settings.alpaca_secret_key.get_secret_value(), url_override=url)
    return alpaca_compat.configure(client, settings.broker_timeout_s, url, settings.alpaca_ca_file)


def five_minute_bars(client: StockHistoricalDataClient, ticker: str, as_of: datetime) -> list[Bar]:
    """The 5-minute bars ZERO's ATR looks at, ending at `as_of` (the ranking's time)."""
    url_symbol(ticker)  # a US equity symbol, or ValueError: nothing else goes into a request
    request = StockBarsRequest(symbol_or_symbols=ticker, timeframe=TimeFrame(BAR_MINUTES, TimeFrameUnit.Minute),
                               start=as_of - lookback(PERIOD), end=as_of + timedelta(minutes=BAR_MINUTES),
                               limit=200, feed=DataFeed.IEX)
    answer = _classified(lambda: client.get_stock_bars(request))
    if not isinstance(answer, BarSet):
        raise ValueError("a raw answer where a BarSet was expected")
    return [Bar(b.timestamp, float(b.high), float(b.low), float(b.close)) for b in answer.data.get(ticker, [])]


def atr_at(client: StockHistoricalDataClient, ticker: str, as_of: datetime) -> float | str:
    """ATR(14) at `as_of`, or why there is none (too few bars, or the data host refused the
    request). Raises BrokerTransient when the host gave no answer (network, timeout, 5xx,
    429): the caller asks again later."""
    try:
        return atr(five_minute_bars(client, ticker, as_of), as_of)
    except (BrokerRejected, ValueError) as exc:
        return f"market data refused ({type(exc).__name__}: {str(exc)[:160]})"

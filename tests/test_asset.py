"""Row 1's asset rule (core/checks/asset.py): only a symbol the broker calls a tradable,
active US equity may be ordered; anything the broker does not know, or a kept verdict that
cannot be read, is not tradable. Pure: no broker, no Redis."""

from __future__ import annotations

import json

import pytest

from zero_tasks.core.checks.asset import AssetVerdict, asset_verdict, check_asset, unknown_asset
from zero_tasks.core.decision import Code, Status


@pytest.mark.parametrize(("asset_class", "tradable", "status", "ok", "detail"), [
    ("us_equity", True, "active", True, "us_equity, tradable, active"),
    ("crypto", True, "active", False, "class crypto"),
    ("us_equity", False, "active", False, "not tradable"),
    ("us_equity", True, "inactive", False, "status inactive"),
    ("crypto", False, "inactive", False, "class crypto, not tradable, status inactive"),
    ("us_equity", "true", "active", False, "not tradable"),  # only the boolean True is tradable
])
def test_an_asset_is_tradable_only_as_an_active_tradable_us_equity_and_says_every_reason_it_is_not(
        asset_class: str, tradable: bool, status: str, ok: bool, detail: str) -> None:
    assert asset_verdict("SPY", asset_class, tradable, status) == AssetVerdict("SPY", ok, detail)


def test_an_asset_the_broker_does_not_know_is_not_tradable_and_keeps_why() -> None:
    assert unknown_asset("BTCUSD", "asset not found (404)") == AssetVerdict("BTCUSD", False, "asset not found (404)")


@pytest.mark.parametrize("verdict", [AssetVerdict("SPY", True, "us_equity, tradable, active"),
                                     AssetVerdict("BTCUSD", False, "class crypto")])
def test_a_kept_verdict_reads_back_as_written(verdict: AssetVerdict) -> None:
    assert json.loads(verdict.to_json()) == {"symbol": verdict.symbol, "tradable": verdict.tradable,
                                             "detail": verdict.detail}
    assert AssetVerdict.from_json(verdict.to_json()) == verdict
    assert AssetVerdict.from_json(verdict.to_json().encode()) == verdict


@pytest.mark.parametrize("raw", [
    "not json",
    "[]",
    "null",
    '{"tradable": true, "detail": "x"}',
    '{"symbol": "SPY", "detail": "x"}',
    '{"symbol": "SPY", "tradable": true}',
    '{"symbol": "SPY", "tradable": "true", "detail": "x"}',
    '{"symbol": "SPY", "tradable": 1, "detail": "x"}',
])
def test_a_kept_verdict_that_is_not_one_is_none_so_the_broker_is_asked_again(raw: str) -> None:
    assert AssetVerdict.from_json(raw) is None


def test_a_kept_verdict_gives_its_fields_as_text() -> None:
    assert AssetVerdict.from_json('{"symbol": 5, "tradable": false, "detail": 7}') == AssetVerdict("5", False, "7")


@pytest.mark.parametrize(("verdict", "why"), [
    (None, "invalid payload: SPY is not a tradable US equity (the broker's answer is not known)"),
    (AssetVerdict("SPY", False, "status inactive"), "invalid payload: SPY is not a tradable US equity "
                                                    "(status inactive)"),
    (AssetVerdict("SPY", True, "us_equity, tradable, active"), None),
])
def test_an_order_for_an_asset_not_known_tradable_is_skipped_as_invalid(verdict: AssetVerdict | None,
                                                                         why: str | None) -> None:
    result = check_asset("SPY", verdict)
    assert (result.reason if result else None) == why
    if result is not None:
        assert result.code is Code.INVALID
        assert result.status is Status.SKIPPED

"""Rows 7 and 8 and the daily cap as a pure verdict over what the admission script found."""

from __future__ import annotations

import pytest

from zero_tasks.core.checks.admission import Admission, Claim, check_admission
from zero_tasks.core.decision import Code, Status


def verdict(admission: Admission):
    return check_admission(admission, "SPY:H30:2026-11-30T15:00:00", "SPY", 10, "2026-11-30")


def test_row7_an_execution_id_another_message_holds_is_a_duplicate() -> None:
    found = verdict(Admission(Claim.TAKEN, "duplicate"))
    assert found and found.code is Code.DUPLICATE and found.status is Status.SKIPPED
    assert found.reason == "duplicate: SPY:H30:2026-11-30T15:00:00 already claimed"


def test_row8_a_ticker_in_its_cooldown_is_skipped_with_the_last_order_time() -> None:
    found = verdict(Admission(Claim.CLAIMED, "cooldown", "2026-11-30T14:40:00+00:00"))
    assert found and found.code is Code.COOLDOWN and found.status is Status.SKIPPED
    assert found.reason == "cooldown: SPY last order at 2026-11-30T14:40:00+00:00"


def test_daily_cap_spent_blocks_with_the_session_day() -> None:
    found = verdict(Admission(Claim.CLAIMED, "daily cap"))
    assert found and found.code is Code.DAILY_CAP and found.status is Status.BLOCKED
    assert found.detail == "10 orders already on trading day 2026-11-30"


@pytest.mark.parametrize("claim", [Claim.CLAIMED, Claim.REENTERED])
def test_admitted_claim_has_no_objection(claim: Claim) -> None:
    assert verdict(Admission(claim, None, prepaid=3)) is None

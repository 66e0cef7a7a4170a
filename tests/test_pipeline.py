"""The decision table is declared once (zero_tasks/core/pipeline.py) and the README says the same."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from zero_tasks.core.checks import admission, exposure
from zero_tasks.core.pipeline import AT_SUBMIT, EXIT_GATE, ROWS, VETO, Facts, Phase
from zero_tasks.core.snapshot import Limits, Snapshot

README = Path(__file__).resolve().parent.parent / "README.md"
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
LIMITS = Limits(min_probability=0.9, market_state_max_age_s=None, signal_max_age_s=120.0)


def readme_decisions() -> list[tuple[str, str, list[str]]]:
    """(number, status, the reason prefixes in backticks) of each row of README's table."""
    text = README.read_text()
    table = text.split("## Decisions", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("#", "---"):
            continue
        rows.append((cells[0], cells[2], re.findall(r"`([^`]*)`", cells[3])))
    return rows


def test_the_readme_table_lists_the_declared_rows_in_order_with_their_status_and_reason() -> None:
    declared = [(row.number, row.status.value if row.status else "that row's",
                 [code.value for code in row.codes] or [f"<its code>: {AT_SUBMIT}: ..."]) for row in ROWS]
    assert readme_decisions() == declared


def test_rows_1_to_6_are_pure_7_to_8b_a_claim_9_to_12_the_broker() -> None:
    assert [row.number for row in ROWS if row.phase is Phase.PURE] == ["1", "2", "2a", "3", "4", "4a", "5", "6"]
    assert [row.number for row in ROWS if row.phase is Phase.CLAIM] == ["7", "8", "8a", "8b"]
    assert [row.number for row in ROWS if row.phase is Phase.BROKER] == ["9", "9a", "10", "11", "12"]


def test_the_veto_runs_rows_2_to_6_from_the_declaration_each_with_its_check_in_core_checks() -> None:
    assert [row.number for row in VETO] == ["2", "2a", "3", "4", "4a", "5", "6"]
    assert all(row.check is not None and row.check.__module__.startswith("zero_tasks.core.checks.") for row in VETO)


def test_the_claim_rows_are_judged_by_the_admission_and_row_9_by_the_exposure() -> None:
    by_number = {row.number: row for row in ROWS}
    assert {by_number[n].check for n in ("7", "8", "8a", "8b")} == {admission.check_admission}
    assert by_number["9"].check is exposure.check_exposure


def test_exit_orders_pass_the_rows_marked_for_exits_the_kill_switch_and_the_market_state_as_the_readme_says() -> None:
    numbers = [row.number for row in EXIT_GATE]
    assert numbers == ["2", "3"]
    exits = README.read_text().split("## Exits and outcomes", 1)[1].split("\n## ", 1)[0]
    assert f"passes rows {' and '.join(numbers)} of the decision table" in " ".join(exits.split())


def test_the_rows_that_judge_the_signal_cannot_be_asked_of_an_exit_which_has_none() -> None:
    facts = Facts(None, Snapshot("true", None, None), NOW, LIMITS)
    entry_only = [row for row in VETO if row.number in ("4", "4a", "5", "6")]
    for row in entry_only:
        with pytest.raises(ValueError, match="entry-only row"):
            row.judge(facts)
    assert not set(EXIT_GATE) & set(entry_only)

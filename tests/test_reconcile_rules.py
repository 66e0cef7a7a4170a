"""Reconcile's comparison (zero_tasks/core/reconcile.py) as a table: audit rows and broker
orders in, every field of every finding out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from zero_tasks.core.reconcile import (
    MISSING_ORDER,
    STATUS_DRIFT,
    UNKNOWN_ORDER,
    AuditedOrder,
    BrokerOrder,
    Finding,
    Report,
    compare,
)

AT = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def audited(n: int, status: str | None = None) -> AuditedOrder:
    return AuditedOrder(f"ev{n}", f"T{n}:H30:x", f"T{n}", f"zx-{n}", f"ord{n}", status, AT + timedelta(minutes=n))


def at_broker(n: int, status: str = "filled", cid: str | None = None) -> BrokerOrder:
    return BrokerOrder(f"ord{n}", cid or f"zx-{n}", f"T{n}", status, AT + timedelta(seconds=n))


def test_matching_filled_orders_are_no_finding_and_their_statuses_are_reported() -> None:
    report = compare([audited(1), audited(2)], [at_broker(1), at_broker(2, "new")])
    assert report == Report(audited=2, at_broker=2, findings=[], statuses={"ev1": "filled", "ev2": "new"})


def test_an_order_no_row_knows_is_an_unknown_order_with_every_field() -> None:
    report = compare([], [at_broker(7, "accepted")])
    assert report == Report(0, 1, [Finding(UNKNOWN_ORDER, "zx-7", "T7", "reconcile:zx-7",
                                           "T7 order ord7 (accepted) is not in execution_log",
                                           AT + timedelta(seconds=7))], {})


def test_a_submitted_row_the_broker_does_not_know_is_a_missing_order() -> None:
    report = compare([audited(3)], [])
    assert report == Report(1, 0, [Finding(MISSING_ORDER, "zx-3", "T3", "T3:H30:x",
                                           "SUBMITTED ord3 is not at the broker", AT + timedelta(minutes=3))], {})


def test_every_bad_ending_is_a_status_drift_and_its_status_still_reported() -> None:
    endings = ["canceled", "rejected", "expired", "suspended", "stopped", "done_for_day"]
    rows = [audited(n) for n in range(len(endings))]
    report = compare(rows, [at_broker(n, ending) for n, ending in enumerate(endings)])
    assert report.findings == [
        Finding(STATUS_DRIFT, f"zx-{n}", f"T{n}", f"T{n}:H30:x", f"SUBMITTED order ord{n} ended {ending}",
                AT + timedelta(minutes=n))
        for n, ending in enumerate(endings)]
    assert report.statuses == {f"ev{n}": ending for n, ending in enumerate(endings)}


def test_unknown_orders_come_first_then_the_rows_in_their_order() -> None:
    report = compare([audited(1), audited(2)], [at_broker(9, cid="zx-other"), at_broker(2, "canceled")])
    assert [(f.kind, f.client_order_id) for f in report.findings] == [
        (UNKNOWN_ORDER, "zx-other"), (MISSING_ORDER, "zx-1"), (STATUS_DRIFT, "zx-2")]
    assert (report.audited, report.at_broker) == (2, 2)


def test_a_finding_keeps_one_key_and_reads_as_a_dict() -> None:
    finding = Finding(STATUS_DRIFT, "zx-1", "T1", "T1:H30:x", "ended canceled", AT)
    assert finding.key == "reconcile:status_drift:zx-1"
    assert finding.as_dict() == {"kind": "status drift", "client_order_id": "zx-1", "ticker": "T1",
                                 "execution_id": "T1:H30:x", "detail": "ended canceled",
                                 "at": "2026-11-24T15:00:00+00:00"}

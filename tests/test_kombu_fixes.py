"""The kombu crash fix: only the lost-connection AttributeError is absorbed, and only on the pinned kombu.

The crash itself is made for real by the Redis-restart fault test (tests/test_faults_e2e.py):
a worker holding unacked messages survives Redis going away. Here, the fix's edges."""

from __future__ import annotations

import logging

import pytest

from zero_tasks.adapters import kombu_fixes


def test_a_kombu_other_than_the_pinned_one_refuses_to_start() -> None:
    with pytest.raises(SystemExit, match=r"kombu 5\.8\.0 is installed, the gateway needs exactly"):
        kombu_fixes.require_pinned("5.8.0")


def test_the_installed_kombu_is_the_pinned_one() -> None:
    kombu_fixes.require_pinned()


class QoSWithConnection:
    """What kombu's Redis QoS.restore_unacked reaches first: its channel's connection, which
    here fails as `exc` (a connection gone: kombu looks up the hostname of None)."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.channel = self

    def conn_or_acquire(self, client: object = None) -> object:
        raise self.exc


GONE = AttributeError("'NoneType' object has no attribute 'hostname'")


def restore(qos: QoSWithConnection) -> object:
    """kombu's own entry point, with the gateway's fix applied (as the app does)."""
    from kombu.transport import redis as kombu_redis

    kombu_fixes.apply()
    return kombu_redis.QoS.restore_unacked(qos)  # type: ignore[arg-type]


def test_restoring_through_a_connection_that_is_gone_is_a_warning_not_a_crash(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=kombu_fixes.__name__):
        assert restore(QoSWithConnection(GONE)) == []
    assert "return after the visibility timeout" in caplog.text


def test_any_other_attribute_error_while_restoring_still_raises() -> None:
    with pytest.raises(AttributeError, match="something_new"):
        restore(QoSWithConnection(AttributeError("'QoS' object has no attribute 'something_new'")))


def test_the_fix_is_in_place_once_the_app_loads() -> None:
    from kombu.transport import redis as kombu_redis

    from zero_tasks import app  # noqa: F401 - loading the app applies the fix

    assert kombu_redis.QoS.restore_unacked(QoSWithConnection(GONE)) == []  # type: ignore[arg-type]

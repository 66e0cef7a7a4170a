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


def _qos_raising(exc: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    def restore(self: object, client: object = None) -> object:
        raise exc

    monkeypatch.setattr(kombu_fixes, "_original_restore_unacked", restore)


def test_restoring_through_a_connection_that_is_gone_is_a_warning_not_a_crash(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    _qos_raising(AttributeError("'NoneType' object has no attribute 'hostname'"), monkeypatch)
    with caplog.at_level(logging.WARNING, logger=kombu_fixes.__name__):
        assert kombu_fixes._restore_unacked(object()) == []
    assert "return after the visibility timeout" in caplog.text


def test_any_other_attribute_error_while_restoring_still_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    _qos_raising(AttributeError("'QoS' object has no attribute 'something_new'"), monkeypatch)
    with pytest.raises(AttributeError, match="something_new"):
        kombu_fixes._restore_unacked(object())


def test_the_fix_is_in_place_once_the_app_loads() -> None:
    from kombu.transport import redis as kombu_redis

    from zero_tasks import app  # noqa: F401 - loading the app applies the fix

    assert kombu_redis.QoS.restore_unacked is kombu_fixes._restore_unacked

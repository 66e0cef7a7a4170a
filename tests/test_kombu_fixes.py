"""The kombu crash fix: only the lost-connection AttributeError is absorbed, and only on the pinned kombu.

A worker holding unacked messages survives Redis going away in the Redis-restart fault test
(tests/test_faults_e2e.py). The acknowledgement crash needs a task to finish in the instant the
connection breaks (seen once in CI); here each crash is made on a real kombu channel in the
state Celery leaves it: closed with its connection, on a real Redis."""

from __future__ import annotations

import logging

import pytest
from kombu import Connection
from kombu.transport import redis as kombu_redis

from tests.support.procs import PrivateRedis
from zero_tasks.adapters import kombu_fixes


def test_a_kombu_other_than_the_pinned_one_refuses_to_start() -> None:
    with pytest.raises(SystemExit, match=r"kombu 5\.8\.0 is installed, the gateway needs exactly"):
        kombu_fixes.require_pinned("5.8.0")


def test_the_installed_kombu_is_the_pinned_one() -> None:
    kombu_fixes.require_pinned()


class QoSWithConnection:
    """What kombu's Redis QoS.restore_unacked reaches first: its channel's connection, which
    here fails as `exc`."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.channel = self

    def conn_or_acquire(self, client: object = None) -> object:
        raise self.exc


def test_any_other_attribute_error_while_restoring_still_raises() -> None:
    kombu_fixes.apply()
    with pytest.raises(AttributeError, match="something_new"):
        kombu_redis.QoS.restore_unacked(  # type: ignore[arg-type]
            QoSWithConnection(AttributeError("'QoS' object has no attribute 'something_new'")))


@pytest.fixture
def closed_channel(private_redis: PrivateRedis) -> kombu_redis.Channel:
    """A real channel of kombu's Redis transport, closed with its connection while it held
    nothing unacknowledged: what a task's deferred acknowledgement meets after a reconnect."""
    connection = Connection(f"redis://127.0.0.1:{private_redis.port}/0")
    channel = connection.channel()
    connection.close()
    assert channel.connection is None
    return channel


def test_without_the_fix_an_acknowledgement_on_a_closed_channel_crashes(
        closed_channel: kombu_redis.Channel) -> None:
    """The crash the fix is for, still there in the pinned kombu (Celery ends the worker on it)."""
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'client'"):
        kombu_fixes.ORIGINAL["ack"](closed_channel.qos, "a-finished-task")


@pytest.mark.parametrize("method, args, returned", [
    ("restore_unacked", (), ()), ("ack", ("a-finished-task",), None),
    ("reject", ("a-finished-task", False), None), ("reject", ("a-finished-task", True), None)])
def test_restoring_acknowledging_or_rejecting_on_a_channel_closed_with_its_connection_is_a_warning_not_a_crash(
        closed_channel: kombu_redis.Channel, method: str, args: tuple[object, ...], returned: object,
        caplog: pytest.LogCaptureFixture) -> None:
    kombu_fixes.apply()
    with caplog.at_level(logging.WARNING, logger=kombu_fixes.__name__):
        assert getattr(closed_channel.qos, method)(*args) == returned
    assert "return after the visibility timeout" in caplog.text


def test_the_fix_is_in_place_once_the_app_loads() -> None:
    from zero_tasks import app  # noqa: F401 - loading the app applies the fix

    assert all(getattr(kombu_redis.QoS, name) is method for name, method in kombu_fixes.FIXED.items())

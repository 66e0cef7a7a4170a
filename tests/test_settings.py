"""The settings object: paper only, a safe base URL, limits that only tighten."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zero_tasks.adapters.mirror_broker import stream_url
from zero_tasks.settings import ConfigError, Settings, check_base_url, check_stream_url, load_settings

README = Path(__file__).resolve().parent.parent / "README.md"

SAFE = {"alpaca_paper": "true", "alpaca_api_key": "k", "alpaca_secret_key": "s"}


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8100", "http://localhost:8100", "http://[::1]:8100", "http://127.0.0.2:9",
    "https://paper-api.alpaca.markets", "https://paper-api.alpaca.markets/",
])
def test_base_url_accepts_loopback_and_alpaca_paper(url: str) -> None:
    assert check_base_url(url) == url.rstrip("/")


@pytest.mark.parametrize("url", [
    "https://api.alpaca.markets", "http://paper-api.alpaca.markets", "https://paper-api.alpaca.markets.evil.io",
    "https://evil.io/paper-api.alpaca.markets", "http://192.168.1.10:8100", "http://0.0.0.0:8100",
    "http://127.0.0.1.nip.io", "ftp://127.0.0.1", "http://u:p@127.0.0.1", "http://127.0.0.1/v2", "",
    "http://127.0.0.1?x=1",
])
def test_base_url_refuses_anything_else(url: str) -> None:
    with pytest.raises(ValueError, match=r"ALPACA_BASE_URL|is only reached over https"):
        check_base_url(url)


@pytest.mark.parametrize(("base", "expected"), [
    (None, "wss://paper-api.alpaca.markets/stream"),
    ("https://paper-api.alpaca.markets", "wss://paper-api.alpaca.markets/stream"),
    ("http://127.0.0.1:8100", "ws://127.0.0.1:8100/stream"),
    ("https://localhost:8443", "wss://localhost:8443/stream"),
])
def test_the_mirrors_stream_is_the_paper_hosts_own(base: str | None, expected: str) -> None:
    assert stream_url(base) == expected


@pytest.mark.parametrize("url", ["ws://127.0.0.1:8101/stream", "wss://[::1]:8101/stream",
                                 "wss://paper-api.alpaca.markets/stream"])
def test_stream_url_accepts_loopback_and_alpacas_paper_stream(url: str) -> None:
    assert check_stream_url(url) == url


@pytest.mark.parametrize("url", [
    "wss://api.alpaca.markets/stream", "ws://paper-api.alpaca.markets/stream",
    "wss://paper-api.alpaca.markets/v2/stream", "wss://paper-api.alpaca.markets.evil.io/stream",
    "wss://stream.data.alpaca.markets/v2/iex", "ws://192.168.1.10:8101/stream", "http://127.0.0.1:8101/stream",
    "ws://u:p@127.0.0.1/stream", "",
])
def test_stream_url_refuses_anything_else(url: str) -> None:
    with pytest.raises(ValueError, match=r"ALPACA_STREAM_URL|paper stream is"):
        check_stream_url(url)
    if url:  # an empty ALPACA_STREAM_URL is unset: the base URL's host
        with pytest.raises(ConfigError):
            load_settings(**SAFE, alpaca_stream_url=url)


@pytest.mark.parametrize("paper", ["", "false", "TRUE", "True", " true", "true ", "1", "yes"])
def test_settings_refuse_unless_paper_exactly_true(paper: str) -> None:
    with pytest.raises(ConfigError, match="ALPACA_PAPER must be exactly 'true'"):
        load_settings(**(SAFE | {"alpaca_paper": paper}))


@pytest.mark.parametrize("field, value, ok", [
    ("min_probability", 0.95, True), ("min_probability", 0.89, False), ("min_probability", 1.01, False),
    ("cooldown_minutes", 90, True), ("cooldown_minutes", 59, False),
    ("market_state_max_age_s", 60, True), ("market_state_max_age_s", 7200, True),
    ("market_state_max_age_s", 0, False), ("market_state_max_age_s", -5, False),
    ("signal_max_age_s", 30, True), ("signal_max_age_s", 121, False), ("signal_max_age_s", 0, False),
])
def test_limits_can_be_tightened_never_loosened(field: str, value: float, ok: bool) -> None:
    if ok:
        assert getattr(load_settings(**(SAFE | {field: value})), field) == value
    else:
        with pytest.raises(ConfigError, match=field.upper()):
            load_settings(**(SAFE | {field: value}))


def test_error_message_never_contains_secrets() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(**(SAFE | {"alpaca_secret_key": "hunter2", "alpaca_paper": "false",
                                 "database_url": "postgresql://u:pw@h/db"}))
    assert "hunter2" not in str(info.value) and "pw@" not in str(info.value)


def test_postgresql_url_means_psycopg2() -> None:
    settings = load_settings(**(SAFE | {"database_url": "postgresql://u@h:5432/db"}))
    assert settings.sqlalchemy_url == "postgresql+psycopg2://u@h:5432/db"


def test_redis_defaults_follow_the_seed() -> None:
    settings = load_settings(**SAFE)
    assert (settings.redis_host, settings.redis_port, settings.execution_api_port) == ("redis", 6379, 8003)
    assert settings.broker_url == "redis://redis:6379/0"


@pytest.mark.parametrize("password", ["p@ss/w:rd%41", "a b#c?d&e", "%40", "plain-password"])
def test_redis_password_is_url_encoded_into_the_redis_and_broker_urls(password: str) -> None:
    from redis.connection import parse_url

    settings = load_settings(**(SAFE | {"redis_password": password, "redis_host": "h", "redis_port": 7}))
    for url in (settings.redis_url, settings.broker_url):
        parsed = parse_url(url)
        assert (parsed["password"], parsed["host"], parsed["port"], parsed["db"]) == (password, "h", 7, 0)


def test_no_redis_password_means_no_auth_in_the_url() -> None:
    assert load_settings(**(SAFE | {"redis_password": ""})).redis_url == "redis://redis:6379/0"


def test_market_state_max_age_is_off_unless_set() -> None:
    """ZERO writes the market state only when it changes: no age bound by default."""
    assert load_settings(**SAFE).market_state_max_age_s is None
    assert load_settings(**(SAFE | {"market_state_max_age_s": ""})).market_state_max_age_s is None


# --- ALPACA_CA_FILE: a loopback HTTPS simulator's test CA, nothing else -------------------

CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("url", ["https://127.0.0.1:8100", "https://localhost:8100", "https://[::1]:8100"])
def test_a_ca_file_is_taken_for_a_loopback_https_base_url(url: str, tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(CA_PEM)
    assert load_settings(**(SAFE | {"alpaca_base_url": url, "alpaca_ca_file": str(ca)})).alpaca_ca_file == str(ca)


@pytest.mark.parametrize("url", [None, "http://127.0.0.1:8100", "https://paper-api.alpaca.markets"],
                         ids=["paper-default", "loopback-http", "paper-https"])
def test_a_ca_file_refuses_to_start_unless_the_base_url_is_loopback_https(url: str | None, tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(CA_PEM)
    with pytest.raises(ConfigError, match="ALPACA_CA_FILE is only for a loopback https ALPACA_BASE_URL"):
        load_settings(**(SAFE | {"alpaca_base_url": url, "alpaca_ca_file": str(ca)}))


@pytest.mark.parametrize("content", [None, b"not a certificate", CA_PEM + b"-----BEGIN PRIVATE KEY-----\n"],
                         ids=["missing", "not-pem", "with-a-key"])
def test_a_ca_file_that_is_not_a_readable_ca_certificate_refuses_to_start(content: bytes | None, tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    if content is not None:
        ca.write_bytes(content)
    with pytest.raises(ConfigError, match="ALPACA_CA_FILE"):
        load_settings(**(SAFE | {"alpaca_base_url": "https://127.0.0.1:8100", "alpaca_ca_file": str(ca)}))


def test_an_empty_ca_file_is_unset_not_an_unverified_connection() -> None:
    assert load_settings(**(SAFE | {"alpaca_ca_file": " "})).alpaca_ca_file is None


@pytest.mark.parametrize("value, ok", [(0, True), (0.4, True), (30, True), (-1, False), (601, False)])
def test_broker_keep_warm_is_off_at_zero_and_bounded(value: float, ok: bool) -> None:
    assert load_settings(**SAFE).broker_keep_warm_s == 30.0
    if ok:
        assert load_settings(**(SAFE | {"broker_keep_warm_s": value})).broker_keep_warm_s == value
    else:
        with pytest.raises(ConfigError, match="BROKER_KEEP_WARM_S"):
            load_settings(**(SAFE | {"broker_keep_warm_s": value}))


@pytest.mark.parametrize("watchdog_s, time_limit_s, ok", [(90, 60, True), (61, 60, True), (60, 60, False),
                                                          (10, 20, False)])
def test_the_worker_watchdog_outlasts_the_task_time_limit(watchdog_s: int, time_limit_s: int, ok: bool) -> None:
    """A solo-pool worker answers its watchdog only between tasks."""
    values = SAFE | {"worker_watchdog_s": watchdog_s, "task_time_limit_s": time_limit_s,
                     "visibility_timeout_s": 200, "handover_rescue_after_s": 1200}
    if ok:
        assert load_settings(**values).worker_watchdog_s == watchdog_s
    else:
        with pytest.raises(ConfigError, match="WORKER_WATCHDOG_S must exceed TASK_TIME_LIMIT_S"):
            load_settings(**values)


def test_every_setting_is_in_the_readmes_configuration_table() -> None:
    """A user learns a setting from the README's table: one the code reads and the table
    does not name is a knob nobody can find."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    named = {name for line in section.splitlines() if line.startswith("| `")
             for name in re.findall(r"`([A-Z0-9_]+)`", line.split("|")[1])}
    assert {field.upper() for field in Settings.model_fields} - named == set()

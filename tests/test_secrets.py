"""Secrets never leave: keys checked at start, every configured secret scrubbed by value
from reasons, events, /health, metric labels and log lines (zero_tasks/secrets.py)."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import redis
import requests

from alpaca_paper_sim import SimServer, open_market
from bridge.health import render as render_health
from bridge.metrics import ROLE, Snapshot
from bridge.metrics import render as render_metrics
from tests.support.gateway import isolated_gateway, ranking
from tests.support.procs import PYTHON, Proc, base_env, free_port, wait_for, worker_proc
from zero_tasks import secrets
from zero_tasks.adapters import metrics
from zero_tasks.core.decision import Status
from zero_tasks.core.record import DecisionRecord
from zero_tasks.logs import JsonFormatter, SecretFilter, TextFormatter
from zero_tasks.secrets import MASK, Scrubber, secrets_of
from zero_tasks.settings import ConfigError, load_settings

SAFE = {"alpaca_paper": "true", "alpaca_api_key": "PKTEST0123456789", "alpaca_secret_key": "sk-Secret_0123456789abcdef"}
ODD = 'p@ss/w:rd%"\\é ü'  # a password may hold anything: every spelling of it must go


# --- keys checked at start ---------------------------------------------------------------

@pytest.mark.parametrize("field", ["alpaca_api_key", "alpaca_secret_key"])
@pytest.mark.parametrize("bad, said", [
    ("sk-Copied0123456789\n", "a line break at its end"), ("sk-Copied0123456789\r\n", "a line break"),
    ("sk-Copied 0123456789", "whitespace at position 10"), ("sk-Copied0123456789\t", "whitespace at its end"),
    ("sk-Copied\x010123456789", "a control character"), ("sk-Copiéd0123456789", "a non-ASCII character"),
    ("sk-Copied:0123456789", "a punctuation character"), (" sk-Copied0123456789", "whitespace at position 1"),
])
def test_a_key_outside_alpacas_charset_refuses_to_start_without_showing_it(field: str, bad: str, said: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(**(SAFE | {field: bad}))
    message = str(info.value)
    assert field.upper() in message and said in message
    assert "Copied" not in message and "0123456789" not in message


@pytest.mark.parametrize("key", ["PKTEST0123456789", "test-key-id", "test-secret-value", "a_b-C9"])
def test_a_key_of_letters_digits_dashes_and_underscores_is_accepted(key: str) -> None:
    settings = load_settings(**(SAFE | {"alpaca_secret_key": key, "alpaca_api_key": key}))
    assert settings.alpaca_secret_key.get_secret_value() == key


@pytest.mark.parametrize("argv", [[PYTHON, "-m", "bridge"], None], ids=["bridge", "worker"])
def test_the_processes_refuse_a_copy_pasted_newline_secret_with_exit_2(argv: list[str] | None, tmp_path: Path) -> None:
    secret = "sk-Newline0123456789abcdef"
    env = base_env(free_port(), "http://127.0.0.1:9", f"sqlite:///{tmp_path / 'a.db'}", free_port(),
                   ALPACA_SECRET_KEY=secret + "\n")
    proc = Proc("newline-bridge", argv, env, tmp_path) if argv else worker_proc("newline-worker", env, tmp_path)
    proc.start()
    assert proc.popen is not None
    assert proc.popen.wait(timeout=60) == 2
    out = proc.output()
    assert "ALPACA_SECRET_KEY" in out and "line break" in out
    assert secret not in out and "Newline0123" not in out


# --- the scrubber: every spelling ----------------------------------------------------------

def lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


SPELLINGS = {
    "raw": lambda s: s,
    "json": json.dumps,
    "json ascii off": lambda s: json.dumps(s, ensure_ascii=False),
    "json twice": lambda s: json.dumps(json.dumps(s)),
    "json in a dict": lambda s: json.dumps({"detail": f"echo {s} end"}),
    "repr": repr,
    "bytes repr": lambda s: repr(s.encode()),
    "url, nothing safe": lambda s: quote(s, safe=""),
    "url, / safe": quote,
    "url, plus": quote_plus,
    "url, lower-case hex": lambda s: lower_hex(quote(s, safe="")),
    "in a redis url": lambda s: f"redis://:{quote(s, safe='')}@redis:6379/0",
}


@pytest.mark.parametrize("spelling", list(SPELLINGS))
@pytest.mark.parametrize("secret", [ODD, "sk-Secret_0123456789abcdef"])
def test_a_configured_secret_is_scrubbed_in_every_spelling(spelling: str, secret: str) -> None:
    spelled = SPELLINGS[spelling](secret)
    text = f"broker said: {spelled}; retrying"
    out = Scrubber([secret]).scrub(text)
    assert MASK in out
    for other in SPELLINGS.values():
        core = other(secret).strip("\"'")
        assert core not in out
    assert out.startswith("broker said: ") and out.endswith("; retrying")


@pytest.mark.parametrize("text, kept", [
    ("headers {'APCA-API-SECRET-KEY': 'unknown-value-1'}", "headers {'APCA-API-SECRET-KEY': '***'}"),
    ('{"apca-api-secret-key": "unknown-value-1"}', '{"apca-api-secret-key": "***"}'),
    ('{\\"Apca-Api-Key-Id\\": \\"unknown-value-1\\"}', '{\\"Apca-Api-Key-Id\\": \\"***\\"}'),
    ("APCA-API-KEY-ID: unknown-value-1\r\nAccept: */*", "APCA-API-KEY-ID: ***\r\nAccept: */*"),
    ("apca-api-key-id=unknown-value-1&x=1", "apca-api-key-id=***&x=1"),
    ("[('APCA-API-SECRET-KEY', 'unknown-value-1')]", "[('APCA-API-SECRET-KEY', '***')]"),
    ("b'aPcA-aPi-SeCrEt-KeY: unknown-value-1\\r\\n'", "b'aPcA-aPi-SeCrEt-KeY: ***\\r\\n'"),
    ("authorization: Bearer unknown-value-1", "authorization: Bearer ***"),
    ("AUTHORIZATION: Basic dW5rbm93bjp2YWx1ZQ==", "AUTHORIZATION: Basic ***"),
    ("amqp://guest:unknown-value-1@rabbit:5672//", "amqp://guest:***@rabbit:5672//"),
])
def test_a_header_value_or_url_password_goes_in_any_letter_case_known_or_not(text: str, kept: str) -> None:
    assert Scrubber().scrub(text) == kept


def test_only_a_whole_secret_is_masked_so_no_partial_guess_is_told_apart() -> None:
    """A part of a secret is left as it is, at the end of a text or anywhere: were it masked,
    a text of one's own repeated by the gateway would tell a right guess from a wrong one."""
    secret = "sk-Secret_0123456789abcdef"
    scrubber = Scrubber([secret])
    for length in range(1, len(secret)):
        for text in (f"echoed {secret[:length]}", f"echoed {secret[:length]} and more",
                     f"echoed {secret[:length]}X"):
            assert scrubber.scrub(text) == text
    assert scrubber.scrub(f"echoed {secret}") == f"echoed {MASK}"


def test_a_text_is_scrubbed_before_it_is_cut(installed: None) -> None:
    prefix = "HTTP 502: upstream echoed "
    for length in range(len(prefix) + 1, len(prefix) + len(SECRET) + 4):
        out = secrets.cut(f"{prefix}{SECRET} and more", length)
        assert SECRET[:4] not in out and out == f"{prefix}{MASK} and more"[:length], out


def test_text_without_a_secret_is_unchanged() -> None:
    text = 'error: broker unavailable after 3 attempts: HTTP 503: {"message": "service unavailable"}'
    assert Scrubber(["sk-Secret_0123456789abcdef", ODD]).scrub(text) == text


def test_every_configured_secret_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(**(SAFE | {
        "redis_password": "redis-pw-1", "database_url": "postgresql://zero:db%40pw-1@db:5432/zero",
        "celery_broker_url": "redis://:broker-pw-1@h1:6379/0;redis://:broker-pw-2@h2:6379/0",
        "task_signing_key": "signing-key-0123456789abcdef0123456789"}))
    known = secrets_of(settings, {"FLOWER_BASIC_AUTH": "zero:flower-pw-1,ops:flower:pw-2"})
    for value in ("PKTEST0123456789", "sk-Secret_0123456789abcdef", "redis-pw-1", "db%40pw-1", "db@pw-1",
                  "broker-pw-1", "broker-pw-2", "signing-key-0123456789abcdef0123456789", "flower-pw-1", "flower:pw-2",
                  base64.b64encode(b"zero:flower-pw-1").decode()):
        assert value in known, value


def test_loading_the_settings_installs_their_secrets() -> None:
    load_settings(**(SAFE | {"redis_password": ODD}))
    assert secrets.scrub(f"x {ODD} y") == f"x {MASK} y"


# --- the edges -------------------------------------------------------------------------------

SECRET = "sk-Edge_0123456789abcdef"


@pytest.fixture
def installed() -> None:
    load_settings(**(SAFE | {"alpaca_secret_key": SECRET, "redis_password": ODD}))


def record(reason: str, why: list[str]) -> DecisionRecord:
    now = datetime.now(UTC)
    return DecisionRecord(event_key="m-1", time=now, decided_at=now, execution_id="SPY:H30:2026-11-24T14:30:00",
                          ticker="SPY", horizon="H30", probability=0.95, opportunity_score=95.0, status=Status.ERROR,
                          reason=reason, why=why, market_state_snapshot=None, submitted_at=now)


def test_the_decision_record_reason_and_why_are_scrubbed(installed: None) -> None:
    reason = f"error: broker unavailable: HTTP 502: {json.dumps({'apca-api-secret-key': SECRET})} pw {ODD}"
    rec = record(reason, [reason, "breakout above VWAP"])
    for text in (rec.reason, *rec.why, rec.to_trade_update(), rec.to_json(), json.dumps(rec.to_row(), default=str)):
        assert SECRET not in text and ODD not in text and json.dumps(ODD)[1:-1] not in text
    assert rec.why[1] == "breakout above VWAP" and rec.reason.startswith("error: broker unavailable: HTTP 502")


def test_health_never_shows_a_secret(installed: None) -> None:
    body = {"status": "degraded", "checks": {"circuit_breaker": {"ok": False, "detail": f"OPEN: HTTP 502 {SECRET}"},
                                             "broker": {"ok": False, "detail": f"unreachable: {ODD}"}}}
    text = render_health(body).decode()
    assert SECRET not in text and json.dumps(ODD)[1:-1] not in text
    assert json.loads(text)["checks"]["circuit_breaker"]["detail"] == f"OPEN: HTTP 502 {MASK}"


def test_metric_labels_never_show_a_secret(installed: None) -> None:
    assert metrics.reason_code(f"{SECRET} leaked: detail") == f"{MASK} leaked"
    stored = {metrics.DECISIONS: {f"ERROR|{SECRET}": "1"}, metrics.BROKER_LATENCY: {f"{SECRET}|count": "1"},
              ROLE: {"exporter": "1"}}  # the bridge that serves the gateway-wide series
    text = render_metrics(Snapshot(stored, {"checks": {}}, {})).decode()
    assert SECRET not in text and 'reason="***"' in text


def log_through(handler: logging.Handler, *args: Any) -> str:
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    handler.addFilter(SecretFilter())
    logger = logging.getLogger("test_secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError(f"Invalid header value b'{SECRET}\\n' for APCA-API-SECRET-KEY")
        except ValueError:
            logger.exception(*args)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter("%(levelname)s %(message)s")],
                         ids=["json", "text"])
def test_every_log_line_is_scrubbed_message_arguments_and_traceback(
        installed: None, formatter: logging.Formatter) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    out = log_through(handler, "broker said %s with %r", f"echo {SECRET}", {"password": ODD})
    assert out and "broker said" in out and "ValueError" in out
    assert SECRET not in out and ODD not in out and json.dumps(ODD)[1:-1] not in out and repr(ODD)[1:-1] not in out


def test_the_filter_alone_scrubs_a_record_for_any_formatter(installed: None) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))  # a formatter that does not scrub
    out = log_through(handler, "broker said %s", SECRET)
    assert "broker said ***" in out and SECRET not in out


# --- end to end: a broker whose error quotes the keys -----------------------------------------

LEAKY_KEY = "PKLEAK0123456789ABCD"
LEAKY_SECRET = "sk-Leak_0123456789abcdefXYZ"


def test_a_broker_error_quoting_the_keys_never_shows_them_anywhere(log_dir: Path, tmp_path: Path) -> None:
    """The simulator answers the order with a 502 whose body quotes the key headers (and the
    secret bare). The decision is ERROR and the breaker opens on that reason; neither the
    event, the audit row, /health, /metrics, the alert channel nor any process log shows a key."""
    with SimServer(state=open_market(), key_id=LEAKY_KEY, secret_key=LEAKY_SECRET) as sim, \
            isolated_gateway(log_dir, sim.url, tmp_path, ALPACA_API_KEY=LEAKY_KEY, ALPACA_SECRET_KEY=LEAKY_SECRET,
                             BREAKER_FAILURES="1") as gw:
        gw.sim("POST", "/_sim/fault", {"mode": "echo_headers", "count": -1, "method": "POST", "path": "/v2/orders"})
        alerts = gw.r.pubsub(ignore_subscribe_messages=True)
        alerts.subscribe("chan:execution_alert")
        gw.green()
        [event] = gw.decide(ranking(), timeout=60)
        [row] = gw.wait_rows(1)
        _status, body = wait_for(lambda: _health_with_open_breaker(gw.api_port), 20, "breaker open in /health")
        metrics_text = requests.get(f"http://127.0.0.1:{gw.api_port}/metrics", timeout=10).text
        alert_texts = _drain(alerts)
        order_posts = gw.order_posts()
    assert event["status"] == "ERROR" and "HTTP 502" in event["why"][0] and MASK in event["why"][0], event
    assert order_posts >= 1
    logs = "\n".join(p.output() for p in [*gw.bridges, *gw.workers])
    assert "HTTP 502" in logs
    shown = {"event": json.dumps(event), "row": json.dumps(row, default=str), "health": json.dumps(body),
             "metrics": metrics_text, "alerts": "\n".join(alert_texts), "logs": logs}
    for where, text in shown.items():
        assert LEAKY_SECRET not in text and LEAKY_KEY not in text, where
        assert LEAKY_SECRET[:12] not in text, where


def _health_with_open_breaker(port: int) -> tuple[int, dict[str, Any]] | None:
    response = requests.get(f"http://127.0.0.1:{port}/health", timeout=10)
    body = response.json()
    return (response.status_code, body) if not body["checks"]["circuit_breaker"]["ok"] else None


def _drain(pubsub: redis.client.PubSub) -> list[str]:
    texts = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        texts.append(message["data"].decode() if isinstance(message["data"], bytes) else str(message["data"]))
    pubsub.close()
    return texts


def test_a_test_that_installs_secrets_leaves_the_scrubber_it_found() -> None:
    """conftest's process_wide_state_restored: load_settings installs a scrubber for the whole
    process; the next test must find the one there was before."""
    before = secrets.active()
    load_settings(**(SAFE | {"redis_password": "redis-pw-restored"}))
    assert secrets.active() is not before
    assert secrets.scrub("redis-pw-restored") == MASK


def test_the_scrubber_found_by_the_previous_test_was_put_back() -> None:
    assert secrets.scrub("redis-pw-restored") == "redis-pw-restored"

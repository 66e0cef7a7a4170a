"""One validated settings object, read once from the environment.

Hard limits of the gateway (1 share, 1 position per ticker, 60-minute cooldown,
probability >= 0.90, a GREEN market state written during the session now open, signals
no older than 120 s) can be tightened here, never loosened: a loosening value refuses to
start.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from functools import lru_cache
from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from zero_tasks import secrets

ALPACA_PAPER_HOST = "paper-api.alpaca.markets"

# The seed's hard limits. Configuration may only move a value towards safety.
HARD_MIN_PROBABILITY = 0.90
HARD_COOLDOWN_MINUTES = 60
HARD_SIGNAL_MAX_AGE_S = 120.0
ORDER_QTY = 1  # one share, always: there is nothing smaller to tighten to.
HARD_MAX_ORDERS_PER_DAY = 10
MIN_SIGNING_KEY_LENGTH = 32
HARD_BROKER_REQUESTS_PER_MIN = 120  # Alpaca allows 200/min; keep well under it


class ConfigError(SystemExit):
    """Raised at start-up when the configuration is unsafe; exits with status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def check_base_url(url: str) -> str:
    """Accept only a loopback simulator or Alpaca's paper host: never the live API."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"ALPACA_BASE_URL must be an http(s) URL, got scheme {parts.scheme!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("ALPACA_BASE_URL must not carry credentials, a query or a fragment")
    if parts.path not in ("", "/"):
        raise ValueError("ALPACA_BASE_URL must be a bare host (alpaca-py appends /v2)")
    if host == ALPACA_PAPER_HOST:
        if parts.scheme != "https":
            raise ValueError(f"{ALPACA_PAPER_HOST} is only reached over https")
        return url.strip().rstrip("/")
    if host == "localhost" or _is_loopback_ip(host):
        return url.strip().rstrip("/")
    raise ValueError(
        f"ALPACA_BASE_URL host {host!r} is neither loopback nor {ALPACA_PAPER_HOST}: "
        "this gateway only ever talks to a local simulator or Alpaca paper"
    )


ALPACA_DATA_URL = "https://data.alpaca.markets"  # Alpaca's market-data host: the only other one


def market_data_url(base_url: str | None) -> str:
    """Where the ATR's bars are read: the loopback simulator that serves the trading API
    when ALPACA_BASE_URL is one (it serves the market data too), else Alpaca's market-data
    host. Nothing else, ever: `base_url` has passed `check_base_url`."""
    if base_url:
        host = (urlsplit(base_url).hostname or "").lower()
        if host == "localhost" or _is_loopback_ip(host):
            return base_url
    return ALPACA_DATA_URL


def check_stream_url(url: str) -> str:
    """The trade_updates stream: a loopback simulator's (ws or wss) or Alpaca's paper stream
    (wss://paper-api.alpaca.markets/stream) only: never the live stream."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("ws", "wss") or not host:
        raise ValueError(f"ALPACA_STREAM_URL must be a ws(s) URL, got scheme {parts.scheme!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("ALPACA_STREAM_URL must not carry credentials, a query or a fragment")
    if host == ALPACA_PAPER_HOST:
        if parts.scheme != "wss" or parts.path != "/stream" or parts.port not in (None, 443):
            raise ValueError(f"Alpaca's paper stream is wss://{ALPACA_PAPER_HOST}/stream")
        return url.strip()
    if host == "localhost" or _is_loopback_ip(host):
        return url.strip()
    raise ValueError(
        f"ALPACA_STREAM_URL host {host!r} is neither loopback nor {ALPACA_PAPER_HOST}: "
        "this gateway only ever listens to a local simulator or Alpaca paper"
    )


# Alpaca key ids and secrets are ASCII letters and digits; '-' and '_' are allowed too.
# Anything else (a copy-pasted newline, a space, a control or non-ASCII character) would
# break the HTTP header it is sent in, and the HTTP stack's error would quote the value.
_KEY_CHARS = re.compile(r"[A-Za-z0-9_-]*")


def key_problem(value: str) -> str | None:
    """What is wrong with an Alpaca key, said without showing any of it; None when fine."""
    if _KEY_CHARS.fullmatch(value):
        return None
    at, char = next((i, c) for i, c in enumerate(value) if not _KEY_CHARS.fullmatch(c))
    if char in "\r\n":
        kind = "a line break"
    elif char.isspace():
        kind = "whitespace"
    elif not char.isascii():
        kind = "a non-ASCII character"
    elif not char.isprintable():
        kind = "a control character"
    else:
        kind = "a punctuation character"
    where = "at its end (a copy-paste?)" if at == len(value) - 1 else f"at position {at + 1} of {len(value)}"
    return f"has {kind} {where}; only ASCII letters, digits, '-' and '_' are allowed (value not shown)"


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Every knob of the gateway. Environment variable = field name in upper case."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Broker (Alpaca). ALPACA_PAPER must be exactly "true"; there is no live mode.
    alpaca_paper: str = Field(default="", description="must be exactly 'true'")
    alpaca_api_key: SecretStr = SecretStr("")
    alpaca_secret_key: SecretStr = SecretStr("")
    alpaca_base_url: str | None = Field(default=None, description="simulator or paper host only")
    # The account mirror's trade_updates stream; unset: the base URL's host (ws[s]://host/stream,
    # or wss://paper-api.alpaca.markets/stream for Alpaca paper).
    alpaca_stream_url: str | None = Field(default=None, description="simulator or paper stream only")
    broker_timeout_s: float = Field(default=5.0, gt=0, le=30)
    broker_max_retries: int = Field(default=4, ge=0, le=10)
    broker_retry_backoff_max_s: int = Field(default=20, ge=1, le=120)
    # The CA a loopback HTTPS simulator's certificate is signed by (python -m alpaca_paper_sim
    # --tls --ca-out PATH): trusted instead of the system's CAs, and only for such a URL.
    alpaca_ca_file: str | None = Field(default=None, description="PEM CA file, loopback https base URL only")
    # A broker connection idle this long gets a cheap call (GET /v2/clock, from the broker
    # budget) so the server does not close it and the next order pays no new TCP and TLS
    # handshake. 30 s is half the 60 s idle timeout of the commonest load balancers and
    # servers (AWS ALB, many HTTP servers); at most 2 calls a minute per connection, two
    # connections per pool process. 0 = off.
    broker_keep_warm_s: float = Field(default=30.0, ge=0, le=600)

    # Celery delivery: an unacked task (its worker died) comes back after the visibility
    # timeout on Redis; it must outlast the longest legitimate run plus a retry countdown.
    task_time_limit_s: int = Field(default=60, ge=2, le=600)
    visibility_timeout_s: int = Field(default=90, ge=5, le=3600)
    # RabbitMQ: the AMQP heartbeat. A worker host cut off while it holds a task gives it back
    # once the broker has missed its heartbeats (two to three of these): with Celery's 120 s
    # (the broker's 60 s negotiated) that took 180 s, past a ranking's 120 s age, so the task
    # came back only to be SKIPPED. Not used on the Redis broker.
    broker_heartbeat_s: int = Field(default=15, ge=5, le=120)
    # A worker that takes no work exits so its supervisor starts a fresh one (worker/watchdog.py):
    # its consumer silent this long while the broker answers (it reconnects within about 35 s
    # after an outage), or its shutdown still running this long after the task time limit.
    worker_watchdog_s: int = Field(default=90, ge=5, le=3600)
    # A message on the queue this long without a decision is queued again by a bridge
    # (bridge/handover.py): it must outlast the visibility timeout and the longest retry chain.
    handover_rescue_after_s: int = Field(default=600, ge=5, le=86400)
    # Seals every task the bridge and the worker queue (task_auth.py): a task without a
    # valid seal is refused, whoever wrote it onto the queue. Bridges and workers only.
    task_signing_key: SecretStr = SecretStr("")

    # Redis: the contract's keys and channels, and the default Celery broker.
    redis_host: str = "redis"
    redis_port: int = 6379
    redis_db: int = 0
    redis_password: SecretStr | None = None
    celery_broker_url: SecretStr | None = None

    # Audit store.
    database_url: SecretStr = SecretStr("sqlite:///var/execution_log.db")

    # Bridge HTTP (/health, /metrics).
    execution_api_host: str = "127.0.0.1"
    execution_api_port: int = 8003

    # Decision limits: tighten only.
    min_probability: float = HARD_MIN_PROBABILITY
    cooldown_minutes: int = HARD_COOLDOWN_MINUTES
    # Off by default: ZERO's regime service writes the key only when the state changes. Set
    # it for a regime service that refreshes the key's timestamp at a known cadence.
    market_state_max_age_s: float | None = None
    signal_max_age_s: float = HARD_SIGNAL_MAX_AGE_S
    max_payload_bytes: int = Field(default=1024 * 1024, ge=1024, le=1024 * 1024)

    reconcile_every_s: int = Field(default=300, ge=10, le=86400, description="Celery beat reconcile period")

    # Risk controls beyond the seed: tighten only as well.
    max_orders_per_day: int = Field(default=HARD_MAX_ORDERS_PER_DAY, ge=1, le=HARD_MAX_ORDERS_PER_DAY,
                                    description="SUBMITTED orders per New York trading day, all workers")
    broker_requests_per_min: int = Field(default=HARD_BROKER_REQUESTS_PER_MIN, ge=1,
                                         le=HARD_BROKER_REQUESTS_PER_MIN,
                                         description="order-path broker calls (lookups included) per minute")
    rate_limit_max_wait_s: int = Field(default=30, ge=0, le=60, description="wait for the rate limit, then BLOCKED")
    breaker_failures: int = Field(default=3, ge=1, le=10, description="consecutive broker failures that open it")
    breaker_window_s: int = Field(default=600, ge=60, le=86400, description="failures count within this window")
    breaker_cooloff_s: int = Field(default=120, ge=10, le=86400, description="open at least this long")
    # Broker calls per minute that entries may not take: exits (protect, cancel, sell and
    # their lookups) go ahead of entries and always find this much of the budget left.
    exit_broker_reserve: int = Field(default=20, ge=0, le=60, description="calls/min kept for exits")

    # Whose clock judges signal age, market-state age and the session (adapters/redis_clock.py):
    # the Redis host's (one clock for every host), or each process's own wall clock (one host, or
    # hosts kept in sync by NTP; the tests that move every process's clock with libfaketime use it,
    # since redis-server does not run under libfaketime).
    gateway_clock: Literal["redis", "local"] = Field(
        default="redis", description="redis: Redis TIME for every process; local: each process's own clock")

    # The position lifecycle (CONTRACT.md "Exits and outcomes", docs/how-it-works.md).
    exit_policy: Literal["zero", "horizon", "hold"] = Field(
        default="zero", description="zero: protect OCO + horizon exit; horizon: time exit only; hold: never sell")
    # A horizon exit due within this long of a session's close goes out this long before
    # it: a market sell must reach a session that still takes it.
    exit_close_buffer_s: int = Field(default=300, ge=60, le=1800, description="horizon exit at latest close - this")
    lifecycle_tick_s: float = Field(default=2.0, ge=0.5, le=60, description="beat period of the lifecycle schedule")
    # How often an execution whose protect or sell is working is looked at (REST reads);
    # the account mirror's nudge makes it sooner.
    # A look costs 3 broker calls while a protect works (clock, position, protect): 6 a minute per
    # open position at the default.
    lifecycle_look_every_s: int = Field(default=30, ge=2, le=600, description="look at a working exit this often")

    # The account mirror (zero_tasks/mirror): row 9 reads it only while its consumer has
    # confirmed it in sync within MIRROR_MAX_AGE_S (the stream answered a ping); otherwise
    # row 9 asks the broker. A consumer leads for MIRROR_LEASE_S after its last renewal.
    mirror_max_age_s: float = Field(default=3.0, gt=0, le=30,
                                    description="row 9 trusts a mirror confirmed so recently")
    mirror_lease_s: float = Field(default=5.0, ge=1, le=60, description="a silent leader is replaced after this long")
    # Off: row 9 always asks the broker (the mirror still keeps order states). The mirror lives
    # in Redis: whoever can write there can make it say a ticker is flat; the broker cannot be
    # told so (docs/mirror.md, "Trust").
    mirror_row9: bool = Field(default=True, description="row 9 may answer from the account mirror")

    @field_validator("alpaca_paper")
    @classmethod
    def _paper_only(cls, value: str) -> str:
        if value != "true":
            raise ValueError(
                "ALPACA_PAPER must be exactly 'true' (this gateway trades paper only)"
            )
        return value

    @field_validator("alpaca_api_key", "alpaca_secret_key")
    @classmethod
    def _key_charset(cls, value: SecretStr) -> SecretStr:
        problem = key_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("alpaca_stream_url")
    @classmethod
    def _stream_url_is_paper(cls, value: str | None) -> str | None:
        return check_stream_url(value) if value else None

    @field_validator("alpaca_base_url")
    @classmethod
    def _base_url_is_paper(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        return check_base_url(value)

    @field_validator("min_probability")
    @classmethod
    def _probability_tighten_only(cls, value: float) -> float:
        if not HARD_MIN_PROBABILITY <= value <= 1.0:
            raise ValueError(f"MIN_PROBABILITY may only be raised from {HARD_MIN_PROBABILITY} up to 1.0")
        return value

    @field_validator("cooldown_minutes")
    @classmethod
    def _cooldown_tighten_only(cls, value: int) -> int:
        if value < HARD_COOLDOWN_MINUTES:
            raise ValueError(f"COOLDOWN_MINUTES may only be raised from {HARD_COOLDOWN_MINUTES}")
        return value

    @field_validator("market_state_max_age_s", mode="before")
    @classmethod
    def _market_age_optional(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and value.strip() in ("", "off")):
            return None
        return value

    @field_validator("market_state_max_age_s")
    @classmethod
    def _market_age_positive(cls, value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise ValueError("MARKET_STATE_MAX_AGE_S must be a positive number of seconds, or empty (off)")
        return value

    @field_validator("signal_max_age_s")
    @classmethod
    def _signal_age_tighten_only(cls, value: float) -> float:
        if not 0 < value <= HARD_SIGNAL_MAX_AGE_S:
            raise ValueError(f"SIGNAL_MAX_AGE_S may only be lowered from {HARD_SIGNAL_MAX_AGE_S}")
        return value

    @field_validator("alpaca_ca_file")
    @classmethod
    def _ca_file_unset_when_empty(cls, value: str | None) -> str | None:
        return None if value is None or value.strip() == "" else value  # never verify="" (no verification)

    @model_validator(mode="after")
    def _ca_file_for_a_loopback_https_simulator_only(self) -> Settings:
        if self.alpaca_ca_file is None:
            return self
        parts = urlsplit(self.alpaca_base_url or "")
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" or not (host == "localhost" or _is_loopback_ip(host)):
            raise ValueError(
                "ALPACA_CA_FILE is only for a loopback https ALPACA_BASE_URL (the simulator's test CA); "
                "Alpaca's paper host is verified against the system's CAs")
        try:
            with open(self.alpaca_ca_file, "rb") as fh:
                pem = fh.read(1 << 20)
        except OSError as exc:
            raise ValueError(f"ALPACA_CA_FILE cannot be read ({type(exc).__name__}: {exc.strerror})") from None
        if b"-----BEGIN CERTIFICATE-----" not in pem or b"PRIVATE KEY" in pem:
            raise ValueError("ALPACA_CA_FILE must be a PEM CA certificate (and no private key)")
        return self

    @model_validator(mode="after")
    def _redelivery_after_time_limit(self) -> Settings:
        if self.visibility_timeout_s <= self.task_time_limit_s + self.broker_retry_backoff_max_s:
            raise ValueError(
                "VISIBILITY_TIMEOUT_S must exceed TASK_TIME_LIMIT_S + BROKER_RETRY_BACKOFF_MAX_S, "
                "or a task still running (or waiting to retry) would be delivered twice")
        if self.worker_watchdog_s <= self.task_time_limit_s:
            raise ValueError(
                "WORKER_WATCHDOG_S must exceed TASK_TIME_LIMIT_S: a worker answers its watchdog between "
                "tasks only when it runs them in its main process (--pool solo)")
        chain_s = (self.visibility_timeout_s + self.broker_max_retries * self.broker_retry_backoff_max_s
                   + self.rate_limit_max_wait_s)
        if self.handover_rescue_after_s <= chain_s:
            raise ValueError(
                f"HANDOVER_RESCUE_AFTER_S must exceed VISIBILITY_TIMEOUT_S + BROKER_MAX_RETRIES x "
                f"BROKER_RETRY_BACKOFF_MAX_S + RATE_LIMIT_MAX_WAIT_S ({chain_s} s): a message still on its way "
                "would be queued again for nothing")
        return self

    @property
    def redis_url(self) -> str:
        """REDIS_PASSWORD URL-encoded: `@`, `/`, `:` or `%` in it must not change the URL."""
        password = self.redis_password.get_secret_value() if self.redis_password else ""
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"

    @property
    def broker_url(self) -> str:
        if self.celery_broker_url and self.celery_broker_url.get_secret_value():
            return self.celery_broker_url.get_secret_value()
        return self.redis_url

    @property
    def sqlalchemy_url(self) -> str:
        """`postgresql://` means psycopg2 here: SQLAlchemy 2.1 would pick psycopg 3."""
        url = self.database_url.get_secret_value()
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg2://" + url[len(prefix):]
        return url

    @property
    def cooldown_seconds(self) -> int:
        return self.cooldown_minutes * 60

    def require_signing_key(self) -> None:
        """Bridges and workers seal and open tasks (task_auth.py); the operator's CLI does not."""
        if len(self.task_signing_key.get_secret_value()) < MIN_SIGNING_KEY_LENGTH:
            raise ConfigError(
                f"refusing to start: TASK_SIGNING_KEY must be set to a random secret of at least "
                f"{MIN_SIGNING_KEY_LENGTH} characters, the same for every bridge and worker "
                "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )

    def require_keys(self) -> None:
        """Both processes need keys; the simulator accepts any non-empty pair."""
        if not self.alpaca_api_key.get_secret_value() or not self.alpaca_secret_key.get_secret_value():
            raise ConfigError(
                "refusing to start: ALPACA_API_KEY and ALPACA_SECRET_KEY must be set "
                "(any non-empty value works against the local simulator)"
            )


def load_settings(**overrides: object) -> Settings:
    """Read and validate, turning a validation error into a clear, secret-free exit."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_input=False, include_url=False):
            field = ".".join(str(p) for p in err["loc"]).upper()
            lines.append(f"  {field}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("refusing to start, unsafe configuration:\n" + "\n".join(lines)) from None
    settings.require_keys()
    secrets.install(settings)  # from now on every scrub knows these values
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def settings_or_exit(require_signing: bool = True) -> Settings:
    """The start-up guard of both processes: unsafe configuration is a clear exit 2.
    `require_signing=False` only for Flower, which never seals nor opens a task and is not
    given the key (least privilege); a seal never opens with a short key (task_auth)."""
    try:
        settings = get_settings()
        if require_signing:
            settings.require_signing_key()
        return settings
    except ConfigError as exc:
        print(exc.message, file=sys.stderr, flush=True)
        raise SystemExit(2) from None

"""Per-invocation resources of the CLI: settings, Redis, the audit engine, and redaction.

Settings are loaded on first use inside each invocation (never the process-wide cached
getter), so the same paper-only validation as the gateway runs every time and a test
that changes the environment between two invocations sees its change.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

import click
import redis
from redis import RedisError  # annotations in Ops, whose redis() method hides the module there
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from zero_tasks import secrets as secret_values
from zero_tasks.adapters.audit import make_engine
from zero_tasks.core.inert import inert
from zero_tasks.settings import ALPACA_PAPER_HOST, ConfigError, Settings, load_settings

REDIS_TIMEOUT_S = 5.0
REDIS_CONNECT_TIMEOUT_S = 3.0


DEVSTACK_ENV = "var/devstack.env"


def env_file() -> str | None:
    """ZERO_ENV_FILE, else the file `make run` writes; real environment variables win."""
    path = os.environ.get("ZERO_ENV_FILE") or DEVSTACK_ENV
    return path if os.path.exists(path) else None


class OpsError(click.ClickException):
    """Configuration or infrastructure problem (bad settings, Redis or database down): exit 2."""

    exit_code = 2


class OpsFailure(click.ClickException):
    """The verb ran but did not get what it needed (nobody listening, no decision): exit 1."""

    exit_code = 1


class Ops:
    """Lazily built resources of one CLI invocation; `--help` needs none of them."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._engine: Engine | None = None

    @property
    def settings(self) -> Settings:
        """Validated now, from the current environment: unsafe configuration is exit 2."""
        if self._settings is None:
            try:
                self._settings = load_settings(_env_file=env_file())
            except ConfigError as exc:
                raise OpsError(exc.message) from None
        return self._settings

    def redis(self, decode: bool = True) -> redis.Redis:
        """A client for the contract's keys; pinged so an unreachable Redis fails here, clearly."""
        client = redis.Redis.from_url(
            self.settings.redis_url, decode_responses=decode, encoding_errors="replace",
            socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S)
        client.ping()
        return client

    def engine(self) -> Engine:
        """The audit engine, as the gateway builds it (psycopg2 for postgresql://)."""
        if self._engine is None:
            self._engine = make_engine(self.settings.sqlalchemy_url)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    # labels: what may be shown ------------------------------------------------------
    def redis_label(self) -> str:
        return f"{self.settings.redis_host}:{self.settings.redis_port}"

    def database_label(self) -> str:
        return database_label(self.settings)

    def broker_label(self) -> str:
        return broker_label(self.settings)

    # errors -------------------------------------------------------------------------
    def redis_error(self, exc: RedisError) -> OpsError:
        verb = "unreachable" if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)) else "failed"
        return OpsError(f"Redis at {self.redis_label()} {verb}: {self.scrub(str(exc) or type(exc).__name__)}")

    def database_error(self, exc: Exception) -> OpsError:
        detail = self.scrub(describe_db_error(exc))
        if "no such table" in detail or "does not exist" in detail:
            detail += " (run `alembic upgrade head` with this DATABASE_URL)"
        return OpsError(f"database {self.database_label()} failed: {detail}")

    def scrub(self, text: str) -> str:
        """Belt and braces: no configured secret survives in any message we print, and a
        driver's or a server's words in it are shown inert (zero_tasks.core.inert)."""
        return inert(scrub(text, self._settings))


def database_label(settings: Settings) -> str:
    """The database in use, without credentials (as bridge.app.database_label)."""
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:{url.database}"
    return f"{url.get_backend_name()}://{url.host}:{url.port or 5432}/{url.database}"


def broker_label(settings: Settings) -> str:
    """Which broker the gateway talks to: the local simulator or Alpaca paper (never live)."""
    url = settings.alpaca_base_url or f"https://{ALPACA_PAPER_HOST}"
    host = (urlsplit(url).hostname or "").lower()
    kind = "Alpaca paper" if host == ALPACA_PAPER_HOST else "simulator"
    if kind == "simulator" and host != "localhost" and not _loopback(host):
        kind = "unknown"  # cannot happen: settings accept only loopback or the paper host
    return f"{kind} {url}"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def describe_db_error(exc: Exception) -> str:
    """The driver's first line, not SQLAlchemy's statement dump and background link."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig or exc).__name__}: {text[0] if text else ''}"[:300]


def scrub(text: str, settings: Settings | None) -> str:
    """Every configured secret out of `text` (zero_tasks.secrets: by value, every spelling)."""
    if settings is None:
        return secret_values.scrub(text)
    return secret_values.Scrubber(secret_values.secrets_of(settings)).scrub(text)

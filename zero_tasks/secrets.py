"""Every configured secret, and the one function that keeps them out of text that leaves.

A broker's error body, an HTTP library's ValueError or a driver's message may quote a
credential: the gateway cannot know every such path, so the text is cleaned where it
leaves (decision reasons and `why`, events, /health, metric labels, log lines). Secrets
are removed BY VALUE, in each spelling a message may carry them (raw, JSON-escaped once
or twice, Python repr, URL-encoded, base64 of a basic-auth pair), and whatever follows an
Alpaca key header or an Authorization header is removed too, in any letter case, even
when the value is not one we know. The variants are compiled into one pattern once, when
the settings are loaded (`install`), so a scrub is one regex pass.

A secret shorter than MIN_SCRUB_LEN is not removed by value (it would cut ordinary words
out of every line); only the header and URL-password patterns protect it.

Only WHOLE values are removed. A text that holds part of a secret comes out unchanged:
were a partial match masked (say, a line ending in the first characters of a key), anyone
who can make the gateway repeat a text of theirs (a `why` line of a ranking) could guess
a secret one character at a time by watching which guesses come back masked. So text is
never cut before it is scrubbed: `cut` scrubs, then cuts, and every cut of outside text
goes through it.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

if TYPE_CHECKING:
    from zero_tasks.settings import Settings

MASK = "***"
MIN_SCRUB_LEN = 4

# A header name, its separator as any repr/JSON/form spelling writes it, then its value.
_HEADER = re.compile(
    r"""(?i)(apca-api-secret-key|apca-api-key-id|(?:proxy-)?authorization)"""
    r"""((?:\\{0,3}["'])?\s*[:=,]\s*(?:b?\\{0,3}["'])?)"""
    r"""((?:(?:bearer|basic|token)\s+)?)[^\s"'\\,;}\]&]+""")
# A password inside any URL (scheme://user:password@host), configured or not.
_URL_PASSWORD = re.compile(r"(://[^:/@\s\"']*:)[^@\s\"']+@")


def _header_mask(match: re.Match[str]) -> str:
    return match.group(1) + match.group(2) + match.group(3) + MASK


def variants(secret: str) -> set[str]:
    """The spellings under which `secret` can appear in a message."""
    once = json.dumps(secret)[1:-1]
    found = {secret, once, json.dumps(secret, ensure_ascii=False)[1:-1], json.dumps(once)[1:-1],
             repr(secret)[1:-1], repr(secret.encode("utf-8"))[2:-1]}
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret, safe="")):
        found |= {encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)}
    return {v for v in found if len(v) >= MIN_SCRUB_LEN}


class Scrubber:
    """Removes a fixed set of secret values (and header/URL credentials) from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        raw = sorted({s for s in secrets if s and len(s) >= MIN_SCRUB_LEN}, key=len, reverse=True)
        spelled = sorted({v for s in raw for v in variants(s)}, key=len, reverse=True)
        self._values = re.compile("|".join(map(re.escape, spelled))) if spelled else None
        self.count = len(raw)

    def scrub(self, text: str) -> str:
        if not text:
            return text
        text = _HEADER.sub(_header_mask, text)
        text = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + "@", text)
        if self._values is not None:
            text = self._values.sub(MASK, text)
        return text

    def scrub_any(self, value: Any) -> Any:
        """The same, through the strings of a JSON-like value (keys included)."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self.scrub_any(v) for v in value]
        if isinstance(value, dict):
            return {self.scrub_any(k): self.scrub_any(v) for k, v in value.items()}
        return value


def url_passwords(url: str) -> list[str]:
    """The password of each URL in a (possibly `;`-separated failover) broker URL, as
    written and decoded."""
    found: list[str] = []
    for part in url.split(";"):
        try:
            password = urlsplit(part.strip()).password  # as written: urlsplit does not decode
        except ValueError:
            continue
        if password:
            found += [password, unquote(password)]
    return found


def flower_secrets(value: str | None) -> list[str]:
    """FLOWER_BASIC_AUTH `user:password[,user:password]`: each password, and the base64
    of each pair (what an Authorization: Basic header carries)."""
    found: list[str] = []
    for entry in (value or "").split(","):
        user, sep, password = entry.strip().partition(":")
        if sep and password:
            found += [password, base64.b64encode(f"{user}:{password}".encode()).decode()]
    return found


def secrets_of(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every credential the gateway is configured with."""
    environ = os.environ if environ is None else environ
    values = [settings.alpaca_api_key.get_secret_value(), settings.alpaca_secret_key.get_secret_value()]
    if settings.redis_password is not None:
        values.append(settings.redis_password.get_secret_value())
    if settings.celery_broker_url is not None:
        values += url_passwords(settings.celery_broker_url.get_secret_value())
    values += url_passwords(settings.database_url.get_secret_value())
    signing = getattr(settings, "task_signing_key", None)
    if signing is not None:
        values.append(signing.get_secret_value() if hasattr(signing, "get_secret_value") else str(signing))
    values += flower_secrets(environ.get("FLOWER_BASIC_AUTH"))
    return [v for v in values if v]


_active = Scrubber()
_signing_key = ""


def install(settings: Settings, environ: Mapping[str, str] | None = None) -> Scrubber:
    """Make the settings' secrets the ones `scrub` removes, and their TASK_SIGNING_KEY the
    one `signing_key` gives (done by load_settings)."""
    global _active, _signing_key  # noqa: PLW0603 - one per process, replaced when load_settings installs the settings
    _active = Scrubber(secrets_of(settings, environ))
    signing = getattr(settings, "task_signing_key", None)
    _signing_key = signing.get_secret_value() if signing is not None else ""
    return _active


def active() -> Scrubber:
    """The scrubber `scrub` applies now (what a test keeps to put back after installing its own)."""
    return _active


def use(scrubber: Scrubber) -> None:
    """Make `scrubber` the one `scrub` applies: a test puts back the one `active` gave it."""
    global _active  # noqa: PLW0603 - the same one-per-process scrubber `install` replaces
    _active = scrubber


def signing_key() -> str:
    """The installed settings' TASK_SIGNING_KEY ('' before install, or where none is set):
    what seals and opens the kept trading session (redis_state)."""
    return _signing_key


def scrub(text: str) -> str:
    """The installed scrubber on one text (header and URL patterns even before install)."""
    return _active.scrub(text)


def scrub_any(value: Any) -> Any:
    return _active.scrub_any(value)


def cut(text: str, length: int) -> str:
    """At most `length` characters of `text`, scrubbed BEFORE the cut: a secret cut in two
    would no longer be a whole value, and only whole values are removed."""
    return _active.scrub(text)[:length]

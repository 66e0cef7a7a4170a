"""HTTPS for the simulator: a throw-away test CA, a server certificate, TLS 1.3 only.

Alpaca is reached over HTTPS, so a gateway pays a TCP and a TLS handshake whenever its
keep-alive connection is gone; over the simulator's plain HTTP that cost is invisible.
`make_test_tls()` makes a fresh CA and a certificate for the loopback names, signed by it,
with the `openssl` command line (the simulator stays standard library only; OpenSSL is
there wherever Python's `ssl` is). The CA's private key never leaves a temporary
directory that is removed before the function returns, so nothing can be signed with it
afterwards; the server's key lives only in the SSL context. What a client must trust is
`ca_pem` (`write_ca(path)`), and nothing else is trusted by it.
"""

from __future__ import annotations

import ipaddress
import secrets
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")
_DAYS = "2"  # a test CA outlives no test run


class TLSSetupError(RuntimeError):
    """The test certificates could not be made (no `openssl`, or it failed)."""


@dataclass(frozen=True)
class TestTLS:
    """The server side of the simulator's HTTPS and the CA certificate clients trust."""

    __test__ = False  # not a pytest test class, whatever its name

    ca_pem: bytes
    context: ssl.SSLContext

    def write_ca(self, path: str | Path) -> Path:
        """Write the CA certificate (public; no key) where a client's CA setting points."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.ca_pem)
        return target


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise TLSSetupError("the simulator's HTTPS needs the `openssl` command (apt-get install openssl)")
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise TLSSetupError(f"openssl {args[0]} failed: {done.stderr.strip()[:500]}")


def _subject_alt_names(names: Sequence[str]) -> str:
    entries = []
    for name in names:
        try:
            ipaddress.ip_address(name)
            entries.append("IP:" + name)
        except ValueError:
            entries.append("DNS:" + name)
    return ",".join(entries)


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """TLS 1.3 only, as a current HTTPS endpoint negotiates with a current client; an
    EOF without close_notify reads as a closed connection (requests closes that way)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    context.load_cert_chain(cert_file, key_file)
    return context


def make_test_tls(names: Sequence[str] = LOOPBACK_NAMES) -> TestTLS:
    """A fresh CA and a server certificate for `names` (default: the loopback names)."""
    with tempfile.TemporaryDirectory(prefix="alpaca-sim-tls-") as tmp:
        work = Path(tmp)
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", _DAYS, "-sha256",
                 "-subj", "/CN=alpaca_paper_sim test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=work)
        _openssl("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr",
                 "-subj", "/CN=alpaca_paper_sim", cwd=work)
        (work / "server.ext").write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
            f"subjectAltName={_subject_alt_names(names)}\n")
        serial = hex(secrets.randbits(63) | 1)
        _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", serial,
                 "-days", _DAYS, "-sha256", "-extfile", "server.ext", "-out", "server.pem", cwd=work)
        context = server_context(work / "server.pem", work / "server.key")
        return TestTLS(ca_pem=(work / "ca.pem").read_bytes(), context=context)

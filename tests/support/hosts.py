"""Several hosts on one machine: Linux network namespaces on a bridge, made by the test.

Each role of the gateway (Redis, PostgreSQL, the broker simulator, two worker hosts, two
bridge hosts) gets a network namespace of its own with one address on a private test
subnet (SUBNET, 10.231.<HOSTS_NET>.0/24; HOSTS_NET is 17 unless the environment says),
joined to the root namespace by a veth pair on a bridge device. A process is started
inside its namespace (`ip netns exec`) and is given the topology's addresses only, so
everything it contacts is one of these hosts. The test process (root namespace) reaches
every host through the bridge address ROOT_ADDR.

Faults are made with the kernel, not with mocks:
- `cut(host)`: the host's link taken down (it reaches nothing, nothing reaches it);
  `mend(host)` brings it back.
- `block(host, other)`: `host` cannot reach `other` (a blackhole route for `other`'s
  address inside `host`'s namespace: its packets to `other` are dropped, as a firewall
  that drops would); `unblock` removes the route.
- a skewed clock: `faketime(offset)` is the environment that runs a process under
  libfaketime (Debian's `libfaketime`).

Everything made here carries PREFIX (zh<HOSTS_NET>) in its name; `remove_leftovers()`
deletes whatever a crashed run of the same HOSTS_NET left behind (it runs before a topology
is made and after it is removed). Two runs with different HOSTS_NET do not meet: that is
how `make test-hosts` runs its two halves side by side (scripts/test_hosts.py).
Needs root and `ip` (iproute2); .ci/run runs `make test-hosts` as root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .procs import Proc, wait_for

NET = int(os.environ.get("HOSTS_NET", "17"))
if not 10 <= NET <= 99:  # two digits: no run's PREFIX is the start of another's
    raise ValueError(f"HOSTS_NET={NET}: a number from 10 to 99")
PREFIX = f"zh{NET}"  # every namespace and link made here: zh<NET>-<host>, zh<NET>v<host>, zh<NET>br
SUBNET = f"10.231.{NET}"
ROOT_ADDR = f"{SUBNET}.1"  # the bridge device: the test process, the RabbitMQ proxy
BRIDGE_DEV = f"{PREFIX}br"
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@dataclass(frozen=True)
class Host:
    name: str  # short: it names the namespace and the veth (interface names are <= 15 bytes)
    octet: int

    @property
    def addr(self) -> str:
        return f"{SUBNET}.{self.octet}"

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def veth(self) -> str:
        """The root namespace's end of the host's link (taken down to cut the host off)."""
        return f"{PREFIX}v{self.name}"


REDIS = Host("redis", 10)
DB = Host("db", 11)
BROKER = Host("broker", 12)
WORKER_A = Host("wa", 21)
WORKER_B = Host("wb", 22)
BRIDGE_A = Host("ba", 31)
BRIDGE_B = Host("bb", 32)
HOSTS = (REDIS, DB, BROKER, WORKER_A, WORKER_B, BRIDGE_A, BRIDGE_B)


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=30)


def can_make_hosts() -> str | None:
    """Why this machine cannot make the topology, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    return None


def _kill_namespace_processes(netns: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, timeout=30).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def remove_leftovers() -> None:
    """Every namespace and link of a run that did not clean up (a crashed test, a SIGKILL)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(f"{PREFIX}-"):
            _kill_namespace_processes(name)
            ip("netns", "delete", name, check=False)
    for data_dir in Path(tempfile.gettempdir()).glob(f"{PREFIX}-pg-*"):  # hosts_gateway.HostPostgres
        shutil.rmtree(data_dir, ignore_errors=True)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=30).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(PREFIX):
            ip("link", "delete", name, check=False)


class Topology:
    """The namespaces, their links and the bridge; faults on them."""

    def __init__(self, hosts: tuple[Host, ...] = HOSTS) -> None:
        self.hosts = hosts

    def up(self) -> Topology:
        remove_leftovers()
        ip("link", "add", BRIDGE_DEV, "type", "bridge")
        ip("addr", "add", f"{ROOT_ADDR}/24", "dev", BRIDGE_DEV)
        ip("link", "set", BRIDGE_DEV, "up")
        for host in self.hosts:
            peer = f"{PREFIX}p{host.name}"
            ip("netns", "add", host.netns)
            ip("link", "set", "lo", "up", netns=host.netns)
            ip("link", "add", host.veth, "type", "veth", "peer", "name", peer)
            ip("link", "set", peer, "netns", host.netns)
            ip("link", "set", host.veth, "master", BRIDGE_DEV)
            ip("link", "set", host.veth, "up")
            ip("addr", "add", f"{host.addr}/24", "dev", peer, netns=host.netns)
            ip("link", "set", peer, "up", netns=host.netns)
        return self

    def down(self) -> None:
        remove_leftovers()

    def argv(self, host: Host, argv: list[str]) -> list[str]:
        """`argv` run inside the host's namespace (`ip netns exec` execs it: same pid)."""
        return ["ip", "netns", "exec", host.netns, *argv]

    def proc(self, host: Host, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Proc:
        return Proc(name, self.argv(host, argv), env, log_dir)

    # faults -------------------------------------------------------------------------
    def cut(self, host: Host) -> None:
        ip("link", "set", host.veth, "down")

    def mend(self, host: Host) -> None:
        ip("link", "set", host.veth, "up")

    def block(self, host: Host, other: Host | str) -> None:
        addr = other.addr if isinstance(other, Host) else other
        ip("route", "add", "blackhole", f"{addr}/32", netns=host.netns)

    def unblock(self, host: Host, other: Host | str) -> None:
        addr = other.addr if isinstance(other, Host) else other
        ip("route", "del", "blackhole", f"{addr}/32", netns=host.netns, check=False)


def faketime(offset_s: int) -> dict[str, str]:
    """The environment of a process whose clock is `offset_s` seconds off (libfaketime).
    Monotonic clocks are left true: only the wall clock is wrong, as on a host whose NTP
    is broken."""
    if not Path(LIBFAKETIME).exists():
        raise RuntimeError(f"{LIBFAKETIME} missing (apt-get install -y faketime; .ci/run installs it)")
    return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": f"{offset_s:+d}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_NO_CACHE": "1", "DONT_FAKE_MONOTONIC": "1"}


def wait_port(addr: str, port: int, timeout: float, what: str) -> None:
    def answers() -> bool:
        with socket.create_connection((addr, port), timeout=1):
            return True
    wait_for(answers, timeout, what, interval=0.2)

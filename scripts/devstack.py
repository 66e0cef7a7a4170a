"""`make run`: the whole gateway on one machine, on embedded defaults.

Starts (as child processes) the Alpaca paper simulator when no Alpaca keys are set, a
private redis-server when none answers at REDIS_HOST:REDIS_PORT, one Celery worker, the
bridge, the account-mirror consumer and Flower (basic auth, loopback). Prints where everything
is; a worker its watchdog ended is started again, any other exit stops all, as Ctrl-C does.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var"
BIN = Path(sys.executable).parent
WATCHDOG_EXIT = os.EX_SOFTWARE  # a worker that took no more work (zero_tasks/worker/watchdog.py: EXIT_CODE)


def ensure_redis(env: dict[str, str], children: list[subprocess.Popen]) -> None:
    """A Redis with a password, always. REDIS_PASSWORD set: the Redis at REDIS_HOST:REDIS_PORT
    if it requires that password. Otherwise (unset: a password is generated) a private
    redis-server with --requirepass, on REDIS_PORT or, when another Redis holds that port
    (one without a password accepts any AUTH, so it is never used), on a free one."""
    host, port = env["REDIS_HOST"], int(env["REDIS_PORT"])
    given = env.get("REDIS_PASSWORD") or ""
    password = given or secrets.token_urlsafe(18)
    answer = _ping(host, port, password)
    if answer == "ok" and given:
        print(f"  redis      {host}:{port} (already running, password from REDIS_PASSWORD)")
        return
    if given and answer not in ("down", "open"):
        sys.exit(f"The Redis at {host}:{port} refuses REDIS_PASSWORD ({answer}). Set the right one, or unset it "
                 "and `make run` starts a private redis-server with a generated password.")
    binary = shutil.which("redis-server")
    if binary is None or host not in ("127.0.0.1", "localhost"):
        sys.exit(f"No Redis answers at {host}:{port}. Start one (Debian: `apt-get install redis-server`, "
                 "then `redis-server --daemonize yes`) or set REDIS_HOST/REDIS_PORT, and run `make run` again.")
    if answer != "down":  # another Redis (no password, or another one) has the port
        port = _free_port()
        env["REDIS_PORT"] = str(port)
    env["REDIS_PASSWORD"] = password
    # The configuration on stdin (`redis-server -`): the password is not on a command line `ps` shows.
    with open(VAR / "redis.log", "ab") as log:
        server = subprocess.Popen([binary, "-"], stdin=subprocess.PIPE, stdout=log, stderr=log)
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    assert server.stdin is not None
    server.stdin.write((f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\ndir "{VAR}"\n'
                        f'requirepass "{quoted}"\n').encode())
    server.stdin.close()
    children.append(server)
    for _ in range(50):
        if _ping(host, port, password) == "ok":
            print(f"  redis      {host}:{port} (private redis-server started, pid {server.pid}, password {password})")
            return
        time.sleep(0.1)
    sys.exit("redis-server did not start; see var/redis.log")


def _ping(host: str, port: int, password: str) -> str:
    """'ok' (it requires this password), 'open' (it requires none), 'down' (nothing
    listens), or why the Redis there refused us."""
    try:
        redis.Redis(host=host, port=port, socket_connect_timeout=1).ping()
        return "open"
    except redis.AuthenticationError:
        pass  # a password is required: is it ours?
    except redis.ConnectionError:
        return "down"
    except redis.RedisError as exc:
        return type(exc).__name__
    try:
        redis.Redis(host=host, port=port, password=password, socket_connect_timeout=1).ping()
        return "ok"
    except redis.AuthenticationError as exc:
        return f"authentication: {type(exc).__name__}"
    except redis.ConnectionError:
        return "down"
    except redis.RedisError as exc:
        return type(exc).__name__


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def migrate(env: dict[str, str]) -> None:
    """The audit schema to head before any process starts, as compose's migrate service does."""
    result = subprocess.run([str(BIN / "alembic"), "-c", str(ROOT / "alembic.ini"), "upgrade", "head"], cwd=ROOT,
                            env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"`alembic upgrade head` failed on {env['DATABASE_URL'].split('://')[0]}:\n{result.stderr[-2000:]}")
    print("  schema     execution_log migrated to head (alembic upgrade head)")


def start(name: str, argv: list[str], env: dict[str, str], children: list[subprocess.Popen]) -> None:
    with open(VAR / f"{name}.log", "ab") as log:  # the child keeps its own copy of the descriptor
        children.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    LAUNCHES[children[-1].pid] = (name, argv, env)


# pid -> how it was started: a worker its watchdog ended is started again (supervise)
LAUNCHES: dict[int, tuple[str, list[str], dict[str, str]]] = {}


def main() -> None:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    VAR.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("ALPACA_PAPER", "true")
    env.setdefault("REDIS_HOST", "127.0.0.1")
    env.setdefault("REDIS_PORT", "6379")
    env.setdefault("DATABASE_URL", f"sqlite:///{VAR / 'execution_log.db'}")
    env.setdefault("EXECUTION_API_PORT", "8003")
    env.setdefault("TASK_SIGNING_KEY", secrets.token_urlsafe(32))  # bridge, workers and mirror of this run
    env["PYTHONPATH"] = str(ROOT)
    children: list[subprocess.Popen] = []
    print("ZERO execution gateway (paper only)")
    try:
        if not env.get("ALPACA_API_KEY"):
            sim_port = int(env.get("SIM_PORT", "8100"))
            stream_port = int(env.get("SIM_STREAM_PORT", str(sim_port + 1)))  # its trade_updates stream
            env.update(ALPACA_API_KEY="simulator", ALPACA_SECRET_KEY="simulator",
                       ALPACA_BASE_URL=f"http://127.0.0.1:{sim_port}",
                       ALPACA_STREAM_URL=f"ws://127.0.0.1:{stream_port}/stream")
            start("simulator", [sys.executable, "-m", "alpaca_paper_sim", "--port", str(sim_port), "--always-open",
                                "--stream-port", str(stream_port),
                                "--key-id", "simulator", "--secret-key", "simulator"], without_secrets(env), children)
            print(f"  broker     Alpaca paper simulator on http://127.0.0.1:{sim_port} (no ALPACA_API_KEY set; "
                  "always open, so the demo trades at any hour: real Alpaca trades 09:30-16:00 New York, Mon-Fri)")
        else:
            print(f"  broker     Alpaca paper at {env.get('ALPACA_BASE_URL') or 'https://paper-api.alpaca.markets'}")
        ensure_redis(env, children)
        migrate(env)
        flower_auth = env.get("FLOWER_BASIC_AUTH") or f"zero:{secrets.token_urlsafe(12)}"
        flower_port = env.get("FLOWER_PORT", "5555")
        # -B: Celery beat in this one worker, for the periodic zero.reconcile and the lifecycle tick.
        start("worker", [str(BIN / "celery"), "-A", "zero_tasks", "worker", "-B",
                         "-s", str(VAR / "celerybeat-schedule"), "-c", "2", "-n", "worker@%h",
                         "-Q", "zero_execution,zero_audit", "-l", "INFO"], env, children)
        start("bridge", [sys.executable, "-m", "bridge"], env, children)
        # The account mirror (row 9 without a broker round trip, order states from the stream);
        # while it is not in sync (no stream yet, say) row 9 asks the broker as before.
        start("mirror", [sys.executable, "-m", "zero_tasks.mirror"], env, children)
        # Through the guard: no Flower without a usable password, and watching only (see its docstring).
        start("flower", [sys.executable, "-m", "zero_ops.flower_guard"],
              {**flower_environment(env), "FLOWER_BASIC_AUTH": flower_auth, "FLOWER_PORT": flower_port,
               "FLOWER_ADDRESS": "127.0.0.1"},
              children)
        write_ops_env(env)
        health_url = f"http://127.0.0.1:{env['EXECUTION_API_PORT']}/health"
        body = wait_healthy(health_url, children)
        print(f"  audit      {body.get('database')}")
        print(f"  health     {health_url}  -> {body.get('status')}")
        print(f"  metrics    http://127.0.0.1:{env['EXECUTION_API_PORT']}/metrics")
        print(f"  flower     http://127.0.0.1:{flower_port}  (user {flower_auth.split(':')[0]}, "
              f"password {flower_auth.split(':', 1)[1]})")
        print(f"  logs       {VAR}/*.log")
        print("\nTry it (another terminal, in this folder; zero-ops reads var/devstack.env):")
        print("  .venv/bin/zero-ops market GREEN       # the regime service's job, for a demo")
        print("  .venv/bin/zero-ops publish-sample     # BLOCKED: execution disabled (the default)")
        print("  .venv/bin/zero-ops enable             # the kill switch, after a confirmation")
        print("  .venv/bin/zero-ops publish-sample     # SUBMITTED: 1 share SPY buy market day")
        print("  .venv/bin/zero-ops status             # kill switch, market, cooldowns, workers, last decisions")
        print("  .venv/bin/zero-ops tail               # follow decisions;  zero-ops log --since 15m")
        print("  .venv/bin/zero-ops disable")
        print("\nCtrl-C stops everything.")
        supervise(children)
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


# Least privilege: a process gets only the secrets its job needs. The simulator needs none
# (its own key pair is on its command line); Flower needs the Redis password to watch the
# queue, but neither the signing key (it must not be able to seal a task) nor the Alpaca
# keys (it never calls the broker; the settings Celery loads want a non-empty value).
GATEWAY_SECRETS = ("TASK_SIGNING_KEY", "ALPACA_API_KEY", "ALPACA_SECRET_KEY")
NO_ALPACA_KEY = "flower-holds-no-alpaca-key"


def without_secrets(env: dict[str, str]) -> dict[str, str]:
    """The environment of a process that needs no credential at all."""
    dropped = (*GATEWAY_SECRETS, "REDIS_PASSWORD", "CELERY_BROKER_URL", "DATABASE_URL", "FLOWER_BASIC_AUTH")
    return {name: value for name, value in env.items() if name not in dropped}


def flower_environment(env: dict[str, str]) -> dict[str, str]:
    """Flower's: the Redis it watches, no signing key, placeholder Alpaca keys."""
    kept = {name: value for name, value in env.items() if name not in GATEWAY_SECRETS}
    return {**kept, "ALPACA_API_KEY": NO_ALPACA_KEY, "ALPACA_SECRET_KEY": NO_ALPACA_KEY}


# TASK_SIGNING_KEY: zero-ops checks the seal of the kept trading session with it (status).
OPS_VARS = ("ALPACA_PAPER", "ALPACA_BASE_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_PASSWORD", "DATABASE_URL",
            "EXECUTION_API_PORT", "TASK_SIGNING_KEY")


def write_ops_env(env: dict[str, str]) -> None:
    """What `zero-ops` needs to reach this stack. Simulator keys only: real keys stay in the shell."""
    lines = [f"{name}={_dotenv(env[name])}" for name in OPS_VARS if env.get(name)]
    if env.get("ALPACA_API_KEY") == "simulator":
        lines += ["ALPACA_API_KEY=simulator", "ALPACA_SECRET_KEY=simulator"]
    path = VAR / "devstack.env"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def _dotenv(value: str) -> str:
    """A value as the env-file reader takes it back unchanged (a Redis password may hold anything)."""
    if re.fullmatch(r"[\w@%+=:,./-]*", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wait_healthy(url: str, children: list[subprocess.Popen]) -> dict:
    for _ in range(300):
        dead = [c for c in children if c.poll() is not None]
        if dead:
            sys.exit(f"a process exited at start-up (exit {dead[0].returncode}); see {VAR}/*.log")
        try:
            body = requests.get(url, timeout=2).json()
            if body.get("checks", {}).get("workers", {}).get("ok"):
                return body
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.2)
    sys.exit(f"the gateway did not become healthy; see {VAR}/*.log")


def supervise(children: list[subprocess.Popen]) -> None:
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            for child in list(children):
                if child.poll() is None:
                    continue
                name, argv, env = LAUNCHES[child.pid]
                if child.returncode == WATCHDOG_EXIT:
                    print(f"{name}: its watchdog ended it (it took no more work, see {VAR}/{name}.log); "
                          "starting it again", file=sys.stderr)
                    children.remove(child)
                    start(name, argv, env, children)
                    continue
                print(f"process {name} exited ({child.returncode}); stopping. See {VAR}/*.log", file=sys.stderr)
                return
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping...")


if __name__ == "__main__":
    main()

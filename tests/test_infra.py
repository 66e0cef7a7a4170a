"""infra/ checked without Docker: the compose file, .env.example, the Dockerfile, Grafana.

There is no Docker engine on the development machines, so:

* infra/docker-compose.yml is validated against the Compose Specification JSON schema
  (vendored as infra/compose-spec.json, see infra/README.md), raw and after the
  interpolation compose does with the values of .env.example (`${VAR:-default}`,
  `${VAR:?message}`, `$$` implemented here, minimally), and the properties that matter to
  us are asserted (ports on loopback, the /health healthcheck, Flower through the guard, ...);
* the commands of the gateway's services are run here, with the compose environment, against
  a private Redis (worker with beat, bridge, then the healthcheck command itself);
* infra/Dockerfile's WORKDIR/ENV/COPY/RUN lines are executed as a plain script in a temporary
  directory with a fresh venv instead of the base image's Python;
* the Grafana dashboard's SQL is checked against execution_log's columns and run, for real, on
  PostgreSQL in a private schema (never public.execution_log), with Grafana's macros expanded
  the way Grafana expands them, with and without TimescaleDB.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from sqlalchemy import Engine, text

from tests.support.gateway import PG_URL, sqlalchemy_url
from tests.support.procs import CELERY, PYTHON, PrivateRedis, Proc, free_port
from zero_tasks.adapters.audit import (
    OrderFate,
    ensure_schema,
    execution_log,
    insert_rows,
    make_engine,
    update_order_status,
)
from zero_tasks.core.decision import Status
from zero_tasks.core.record import DecisionRecord
from zero_tasks.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
COMPOSE_FILE = INFRA / "docker-compose.yml"
DOCKERFILE = INFRA / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
GRAFANA = INFRA / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "execution_log.json"
DATASOURCE = GRAFANA / "provisioning" / "datasources" / "timescaledb.yml"
DASHBOARD_PROVIDER = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
PROMETHEUS_DATASOURCE = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROMETHEUS_CONFIG = INFRA / "prometheus" / "prometheus.yml"

SERVICES = {"redis", "timescaledb", "migrate", "zero-execution", "zero-worker", "zero-mirror", "flower", "prometheus",
            "grafana"}
GATEWAY_SERVICES = ("zero-execution", "zero-worker", "zero-mirror", "flower")  # built from infra/Dockerfile
# Exact versions: no `latest`, no bare major (a new major or minor must be a reviewed change).
PINNED_IMAGE = re.compile(r"^[a-z0-9./-]+:v?\d+\.\d+\.\d+(-[a-z0-9]+)?$")
# What .env.example leaves empty on purpose: the operator must fill them in.
MUST_FILL = {"ALPACA_API_KEY", "ALPACA_SECRET_KEY", "FLOWER_BASIC_AUTH", "GF_SECURITY_ADMIN_PASSWORD",
             "TASK_SIGNING_KEY", "REDIS_PASSWORD"}
FILLED = {"ALPACA_API_KEY": "test-key-id", "ALPACA_SECRET_KEY": "test-secret-value",
          "REDIS_PASSWORD": "infra-redis-p@ss/w:rd%",
          "TASK_SIGNING_KEY": "infra-test-task-signing-key-0123456789",
          "FLOWER_BASIC_AUTH": "zero:Long-enough-1", "GF_SECURITY_ADMIN_PASSWORD": "grafana-admin-1"}


# --- compose interpolation, minimal -------------------------------------------------------

class MissingVariable(Exception):
    pass


_DOLLAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


def interpolate(value: Any, env: dict[str, str], missing: list[str]) -> Any:
    """Compose's interpolation of values (not keys): $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d},
    ${VAR:?msg}, ${VAR?msg}, ${VAR:+alt}, ${VAR+alt}. Unset plain variables become ''."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, missing) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("named"):
            return env.get(match.group("named"), "")
        parsed = _BRACED.fullmatch(match.group("braced"))
        if parsed is None:
            raise ValueError(f"invalid interpolation format: {match.group(0)!r}")
        name, op, arg = parsed.group("name"), parsed.group("op"), parsed.group("arg")
        current = env.get(name)
        if op is None:
            return current or ""
        if op == ":-":
            return current if current else arg
        if op == "-":
            return current if current is not None else arg
        if op in (":?", "?"):
            if (op == ":?" and not current) or current is None:
                missing.append(name)
                return ""
            return current
        if op == ":+":
            return arg if current else ""
        return arg if current is not None else ""

    return _DOLLAR.sub(one, value)


def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())  # SafeLoader resolves anchors and `<<` merges


def load_compose(env: dict[str, str]) -> dict[str, Any]:
    missing: list[str] = []
    model = interpolate(raw_compose(), env, missing)
    if missing:
        raise MissingVariable(sorted(set(missing)))
    return model


def env_example() -> dict[str, str]:
    values = {}
    for raw_line in ENV_EXAMPLE.read_text().splitlines():
        line = raw_line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example line without '=': {line!r}"
            assert key not in values, f"{key} twice in .env.example"
            values[key.strip()] = value.strip()
    return values


def filled_env() -> dict[str, str]:
    """.env.example with the values the operator must fill in, filled in."""
    return {**env_example(), **FILLED}


def compose_schema_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((INFRA / "compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(model: dict[str, Any]) -> list[str]:
    errors = compose_schema_validator().iter_errors(model)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


# --- (a) the compose file -----------------------------------------------------------------

def test_compose_file_is_valid_against_the_compose_specification() -> None:
    assert schema_errors(raw_compose()) == []
    assert schema_errors(load_compose(filled_env())) == []


def test_compose_schema_catches_mistakes() -> None:
    """The schema really checks something: a typo'd key and a bad depends_on are errors."""
    model = load_compose(filled_env())
    model["services"]["zero-execution"]["helthcheck"] = model["services"]["zero-execution"].pop("healthcheck")
    model["services"]["flower"]["depends_on"] = {"redis": {"condition": "healthy"}}
    errors = schema_errors(model)
    assert any("helthcheck" in e for e in errors), errors
    assert any("depends_on" in e for e in errors), errors


def test_compose_refuses_without_required_values() -> None:
    with pytest.raises(MissingVariable) as raised:
        load_compose(env_example())
    assert raised.value.args[0] == sorted(MUST_FILL)
    without_paper = {k: v for k, v in filled_env().items() if k != "ALPACA_PAPER"}
    with pytest.raises(MissingVariable) as raised:
        load_compose(without_paper)
    assert raised.value.args[0] == ["ALPACA_PAPER"]


def test_compose_what_matters() -> None:
    raw = raw_compose()
    model = load_compose(filled_env())
    services = model["services"]
    assert set(services) >= SERVICES

    # Paper only: ALPACA_PAPER is required (`:?`), for every gateway process.
    for name in GATEWAY_SERVICES:
        assert raw["services"][name]["environment"]["ALPACA_PAPER"].startswith("${ALPACA_PAPER:?")
        assert services[name]["environment"]["ALPACA_PAPER"] == "true"
        build = services[name]["build"]
        assert (INFRA / build["context"]).resolve() == ROOT
        assert (INFRA / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE

    # Nothing is published beyond the host's loopback.
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"

    # Redis keeps claims, cooldowns and queued tasks across a restart.
    assert " ".join(services["redis"]["command"]).find("--appendonly yes") >= 0
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    # ... with a password, the one every gateway service uses (and redis-cli, for the healthcheck).
    assert services["redis"]["command"][-2:] == ["--requirepass", FILLED["REDIS_PASSWORD"]]
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == FILLED["REDIS_PASSWORD"]
    assert all(services[name]["environment"]["REDIS_PASSWORD"] == FILLED["REDIS_PASSWORD"] for name in GATEWAY_SERVICES)

    # The bridge, with a healthcheck on /health, on 8003.
    bridge = services["zero-execution"]
    assert bridge["command"] == ["python", "-m", "bridge"]
    assert bridge["ports"] == ["127.0.0.1:8003:8003"]
    check = bridge["healthcheck"]["test"]
    assert check[0] == "CMD" and "/health" in " ".join(check)
    assert bridge["depends_on"]["redis"]["condition"] == "service_healthy"

    # The worker also runs beat (-B): one replica only.
    worker = services["zero-worker"]
    assert worker["command"][:4] == ["celery", "-A", "zero_tasks", "worker"] and "-B" in worker["command"]
    assert worker.get("deploy", {}).get("replicas", 1) == 1 and "scale" not in worker
    assert "zero_execution,zero_audit" in worker["command"]

    # The account mirror: its own process; several may run (one leads by a fenced lease).
    assert services["zero-mirror"]["command"] == ["python", "-m", "zero_tasks.mirror"]

    # Flower: through the guard, password required, 0.0.0.0 in the container, loopback on the host.
    flower = services["flower"]
    assert flower["command"] == ["python", "-m", "zero_ops.flower_guard"]
    assert raw["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert flower["environment"]["FLOWER_ADDRESS"] == "0.0.0.0"
    assert flower["ports"] == [f"127.0.0.1:5555:{flower['environment']['FLOWER_PORT']}"]
    assert "flower" not in " ".join(str(c) for s in services.values() for c in s.get("command", [])
                                    if s is not flower).lower(), "Flower started without the guard"

    # Grafana: admin password required, provisioning from infra/grafana/, loopback on 3000.
    grafana = services["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    assert raw["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith(
        "${GF_SECURITY_ADMIN_PASSWORD:?")
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]
    mounts = {}
    for volume in grafana["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            assert (INFRA / source).is_dir(), f"{source} does not exist under infra/"
            mounts[target] = (INFRA / source).resolve()
    assert mounts["/etc/grafana/provisioning"] == (GRAFANA / "provisioning").resolve()
    provider = yaml.safe_load(DASHBOARD_PROVIDER.read_text())["providers"][0]
    assert mounts[provider["options"]["path"]] == DASHBOARD.parent.resolve()
    # The datasource reads these from Grafana's environment.
    datasource_values = json.dumps(yaml.safe_load(DATASOURCE.read_text()))  # comments left out
    assert re.findall(r"\$\{(\w+)\}", datasource_values)
    for var in re.findall(r"\$\{(\w+)\}", datasource_values):
        assert var in grafana["environment"], f"{var} used by the datasource but not given to grafana"


def test_compose_forwards_every_setting_with_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each gateway service gets every Settings variable; compose's defaults are Settings' own."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    only_required = {"ALPACA_PAPER": "true", "POSTGRES_PASSWORD": "zero", **FILLED}
    model = load_compose(only_required)
    fields = set(Settings.model_fields)
    for service in GATEWAY_SERVICES:
        env = model["services"][service]["environment"]
        assert {f.upper() for f in fields} <= set(env), f"{service} misses settings"
        from_compose = Settings(**{k.lower(): v for k, v in env.items() if k.lower() in fields})
        defaults = Settings(alpaca_paper="true")
        differ = {f for f in fields if plain(getattr(from_compose, f)) != plain(getattr(defaults, f))}
        signed = {"task_signing_key"} if service != "flower" else set()  # Flower gets none (least privilege)
        assert differ == {"alpaca_api_key", "alpaca_secret_key", "database_url", "execution_api_host",
                          "redis_password"} | signed, service
        assert from_compose.execution_api_host == "0.0.0.0"
        assert plain(from_compose.database_url).startswith("postgresql://zero:zero@timescaledb:5432/")


def plain(value: Any) -> Any:
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    return "" if value is None else value


def test_compose_gives_flower_no_signing_key_and_no_alpaca_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Least privilege (issue 25, finding 9): Flower watches the queue through Redis; it needs
    neither TASK_SIGNING_KEY (it must not be able to seal a task) nor the Alpaca keys."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    model = load_compose({"ALPACA_PAPER": "true", "POSTGRES_PASSWORD": "zero", **FILLED})
    flower = model["services"]["flower"]["environment"]
    assert flower["TASK_SIGNING_KEY"] == ""
    assert flower["ALPACA_API_KEY"] != FILLED["ALPACA_API_KEY"]
    assert flower["ALPACA_SECRET_KEY"] != FILLED["ALPACA_SECRET_KEY"]
    shown = json.dumps(flower)
    assert FILLED["TASK_SIGNING_KEY"] not in shown and FILLED["ALPACA_SECRET_KEY"] not in shown
    for service in ("zero-execution", "zero-worker", "zero-mirror"):  # the mirror seals its sync record
        assert model["services"][service]["environment"]["TASK_SIGNING_KEY"] == FILLED["TASK_SIGNING_KEY"]


# --- (b) .env.example ---------------------------------------------------------------------

def test_env_example_lists_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    example = env_example()
    wanted = {name.upper() for name in Settings.model_fields} | {
        "FLOWER_BASIC_AUTH", "POSTGRES_PASSWORD", "GF_SECURITY_ADMIN_PASSWORD"}
    assert sorted(wanted - set(example)) == []
    assert example["ALPACA_PAPER"] == "true"
    # Every variable the compose file reads is in .env.example too.
    used = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    assert sorted(used - set(example)) == []
    # And the example, filled in, is a valid configuration.
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    fields = set(Settings.model_fields)
    settings = Settings(**{k.lower(): v for k, v in filled_env().items() if k.lower() in fields})
    assert settings.alpaca_paper == "true" and settings.alpaca_base_url is None


# --- the services' commands, run here ------------------------------------------------------

def local_argv(command: list[str], tmp: Path) -> list[str]:
    """A compose command for this machine: the venv's python/celery, the beat file in tmp."""
    venv = {"python": PYTHON, "celery": CELERY, "alembic": str(Path(CELERY).with_name("alembic"))}
    argv = [venv.get(command[0], command[0]), *command[1:]]
    if "-s" in argv:
        argv[argv.index("-s") + 1] = str(tmp / "celerybeat-schedule")
    return argv


@pytest.mark.e2e
def test_compose_commands_run_here(tmp_path: Path, sim: Any) -> None:
    """migrate's command first, then zero-worker's command (worker + beat) with its
    healthcheck and zero-execution's command with its healthcheck, with the compose
    environment, against a private Redis, SQLite and the simulator."""
    model = load_compose(filled_env())
    redis_server = PrivateRedis(tmp_path, password=FILLED["REDIS_PASSWORD"]).start()
    api_port = free_port()
    here = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port), "ALPACA_BASE_URL": sim.url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}", "EXECUTION_API_PORT": str(api_port),
            "EXECUTION_API_HOST": "127.0.0.1",  # compose's 0.0.0.0 is for inside a container
            "RECONCILE_EVERY_S": "10", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}

    def env_of(service: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "REDIS_", "CELERY_", "FLOWER_"))}
        env.update({k: str(v) for k, v in model["services"][service]["environment"].items()})
        env.update(here)
        return env

    services = model["services"]
    migrate = subprocess.run(local_argv(services["migrate"]["command"], tmp_path), cwd=ROOT, env=env_of("migrate"),
                             capture_output=True, text=True, timeout=120, check=False)
    assert migrate.returncode == 0, migrate.stderr[-2000:]  # else the processes refuse the schema
    worker = Proc("compose-worker", local_argv(services["zero-worker"]["command"], tmp_path),
                  env_of("zero-worker"), tmp_path)
    bridge = Proc("compose-bridge", local_argv(services["zero-execution"]["command"], tmp_path),
                  env_of("zero-execution"), tmp_path)
    check = services["zero-execution"]["healthcheck"]
    assert check["test"][0] == "CMD"
    check_argv = local_argv(check["test"][1:], tmp_path)
    try:
        worker.start()
        bridge.start()
        deadline = time.monotonic() + 60
        while True:  # like Docker: run the healthcheck until it passes (bounded)
            assert bridge.alive(), bridge.output()[-3000:]
            result = subprocess.run(check_argv, env=env_of("zero-execution"), capture_output=True, timeout=30)
            if result.returncode == 0:
                break
            assert time.monotonic() < deadline, f"healthcheck never passed: {result.stderr[-2000:]!r}"
            time.sleep(0.5)
        # The worker's healthcheck, in a shell as Docker runs CMD-SHELL, with the container's
        # HOSTNAME (Celery's default node name is celery@<hostname>).
        worker_check = services["zero-worker"]["healthcheck"]["test"]
        assert worker_check[0] == "CMD-SHELL"
        shell_env = {**env_of("zero-worker"), "HOSTNAME": socket.gethostname(),
                     "PATH": f"{Path(CELERY).parent}:{os.environ.get('PATH', '')}"}
        deadline = time.monotonic() + 60
        while True:
            assert worker.alive(), worker.output()[-3000:]
            result = subprocess.run(["sh", "-c", worker_check[1]], cwd=ROOT, env=shell_env, capture_output=True,
                                    text=True, timeout=60, check=False)
            if result.returncode == 0:
                break
            assert time.monotonic() < deadline, f"worker healthcheck never passed: {result.stdout[-2000:]}"
            time.sleep(1)
        assert "pong" in result.stdout
        # Beat runs inside the worker and its schedule reaches the worker: zero.reconcile runs.
        deadline = time.monotonic() + 60
        while "zero.reconcile" not in worker.output() or "beat: Starting" not in worker.output():
            assert worker.alive(), worker.output()[-3000:]
            assert time.monotonic() < deadline, f"no beat / reconcile in the worker log: {worker.output()[-3000:]}"
            time.sleep(0.5)
        bridge.stop()
        result = subprocess.run(check_argv, env=env_of("zero-execution"), capture_output=True, timeout=30)
        assert result.returncode != 0, "healthcheck passes with the bridge stopped"
        worker.stop()
        result = subprocess.run(["sh", "-c", worker_check[1]], cwd=ROOT, env=shell_env, capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode != 0, "worker healthcheck passes with the worker stopped"
    finally:
        bridge.stop()
        worker.stop()
        redis_server.stop()
    for proc in (worker, bridge):
        assert "test-secret-value" not in proc.output()


# --- (c) the Dockerfile as a script -------------------------------------------------------

def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    instructions, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continuation"
    return instructions


def parse_env_instruction(rest: str) -> dict[str, str]:
    parts = shlex.split(rest)
    if len(parts) >= 2 and "=" not in parts[0]:  # legacy `ENV KEY value`
        return {parts[0]: " ".join(parts[1:])}
    return dict(part.split("=", 1) for part in parts)


# RUN commands that only make sense inside an image (a system user): not run here.
IMAGE_ONLY = ("useradd ", "groupadd ")
# The test lets pip use its cache and this machine's find-links; everything else as written.
NOT_HERE_ENV = {"PIP_NO_CACHE_DIR"}


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(1200)
def test_dockerfile_steps_run_as_a_script(tmp_path: Path) -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    kinds = [k for k, _ in instructions]
    assert kinds[0] == "FROM" and instructions[0][1].startswith("python:3.11")
    assert dict(instructions).get("USER") not in (None, "root", "0"), "the image must not run as root"
    assert json.loads(dict(instructions)["CMD"]) == ["python", "-m", "bridge"]

    root = tmp_path / "image"  # the image's filesystem: WORKDIR /app is root/app
    venv = tmp_path / "venv"
    subprocess.run([shutil.which("python3") or sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith(("ALPACA_", "REDIS_"))}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}", VIRTUAL_ENV=str(venv))
    workdir = root
    ran = []
    for kind, rest in instructions:
        if kind == "WORKDIR":
            workdir = root / rest.lstrip("/") if rest.startswith("/") else workdir / rest
            workdir.mkdir(parents=True, exist_ok=True)
        elif kind == "ENV":
            env.update({k: v for k, v in parse_env_instruction(rest).items() if k not in NOT_HERE_ENV})
        elif kind == "COPY":
            assert not rest.startswith("--"), f"COPY flags are not handled here: {rest}"
            *sources, dest = shlex.split(rest)
            target = root / dest.lstrip("/") if dest.startswith("/") else workdir / dest
            for source in sources:
                src = ROOT / source
                assert src.exists(), f"COPY {source}: not in the repository"
                if src.is_dir():
                    shutil.copytree(src, target, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
                else:
                    into = target if (dest.endswith("/") or dest in (".", "./") or len(sources) > 1) else None
                    (into or target.parent).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, into / src.name if into else target)
        elif kind == "RUN":
            if rest.startswith(IMAGE_ONLY):
                continue
            result = subprocess.run(["bash", "-euc", rest], cwd=workdir, env=env, capture_output=True, text=True,
                                    timeout=900)
            assert result.returncode == 0, f"RUN {rest} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            ran.append(rest)
    assert any("--require-hashes -r requirements/runtime.lock" in r for r in ran), ran

    app = workdir
    run_env = {**env, "ALPACA_PAPER": "true", "ALPACA_API_KEY": "dummy-key", "ALPACA_SECRET_KEY": "dummy-secret",
               "TASK_SIGNING_KEY": "infra-test-task-signing-key-0123456789",
               "REDIS_HOST": "127.0.0.1", "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}"}
    python = str(venv / "bin" / "python")

    def run(argv: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=cwd, env={**run_env, **extra}, capture_output=True, text=True, timeout=120)

    # What the services import, from the image's WORKDIR; the code is the copied one, not this checkout.
    result = run([python, "-c", "import zero_tasks.worker.tasks, bridge.app, zero_ops.cli, zero_tasks; "
                                "print(zero_tasks.__file__)"], app)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(app)), result.stdout
    # Installed: importable from anywhere, migrations included, `zero-ops` on PATH.
    result = run([python, "-c", "from zero_tasks.adapters.audit import ensure_schema, make_engine; "
                                f"ensure_schema(make_engine('sqlite:///{tmp_path / 'migrated.db'}'))"], tmp_path)
    assert result.returncode == 0, result.stderr
    result = run([str(venv / "bin" / "zero-ops"), "--help"], tmp_path)
    assert result.returncode == 0 and "paper" in result.stdout, result.stderr
    # Every command of the compose services that use this image exists in it.
    for service in GATEWAY_SERVICES:
        command = load_compose(filled_env())["services"][service]["command"]
        assert (venv / "bin" / command[0]).exists(), f"{service}: {command[0]} not installed"
    # Paper only, in the image too; Flower only with a password.
    result = run([python, "-m", "bridge"], app, ALPACA_PAPER="false")
    assert result.returncode != 0
    assert "ALPACA_PAPER" in result.stderr + result.stdout
    assert "dummy-secret" not in result.stderr + result.stdout
    result = run([python, "-m", "zero_ops.flower_guard"], app)
    assert result.returncode == 2 and "FLOWER_BASIC_AUTH" in result.stderr


# --- Grafana --------------------------------------------------------------------------------

def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def sql_panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["datasource"]["type"] != "prometheus"]


def prometheus_panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["datasource"]["type"] == "prometheus"]


def panel_sql() -> list[tuple[str, str, str]]:
    return [(panel["title"], target["format"], target["rawSql"])
            for panel in sql_panels() for target in panel["targets"]]


def test_grafana_provisioning_and_dashboard_are_well_formed() -> None:
    datasources = yaml.safe_load(DATASOURCE.read_text())
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "grafana-postgresql-datasource"
    assert source["url"] == "timescaledb:5432"
    assert source["secureJsonData"]["password"] == "${POSTGRES_PASSWORD}"
    assert source["jsonData"]["database"] == "${POSTGRES_DB}" and source["user"] == "${POSTGRES_USER}"
    providers = yaml.safe_load(DASHBOARD_PROVIDER.read_text())
    assert providers["apiVersion"] == 1 and providers["providers"][0]["type"] == "file"

    board = dashboard()
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert board["uid"] and board["title"]
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "hwxy") and grid["x"] + grid["w"] <= 24, panel["title"]
        xs, ys = range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
        area = {(x, y) for x in xs for y in ys}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
    for panel in sql_panels():
        assert panel["datasource"]["uid"] == source["uid"]
        assert panel["targets"]
        for target in panel["targets"]:
            assert target["format"] in ("time_series", "table")
            assert target["rawQuery"] is True and target["rawSql"].strip()
            assert target["datasource"]["uid"] == source["uid"]
            if target["format"] == "time_series":
                assert "$__timeGroupAlias(time" in target["rawSql"], panel["title"]
    titles = " | ".join(p["title"] for p in sql_panels()).lower()
    for wanted in ("status", "ticker", "blocked", "latency", "order status"):
        assert wanted in titles


def test_compose_images_are_pinned_to_exact_versions() -> None:
    model = load_compose(filled_env())
    images = {name: service["image"] for name, service in model["services"].items() if "build" not in service}
    assert {"redis", "timescaledb", "prometheus", "grafana"} <= set(images)
    for name, image in images.items():
        assert PINNED_IMAGE.match(image), f"{name}: {image} is not an exact version"
    assert images["timescaledb"].startswith("timescale/timescaledb:") and images["timescaledb"].endswith("-pg15")
    assert re.match(r"^redis:7\.\d+\.\d+-alpine$", images["redis"])


def test_compose_worker_has_a_healthcheck_and_a_stop_grace_beyond_the_task_time_limit() -> None:
    model = load_compose(filled_env())
    worker = model["services"]["zero-worker"]
    check = worker["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL" and "inspect ping -d celery@$HOSTNAME" in check[1]
    grace = re.fullmatch(r"(\d+)s", worker["stop_grace_period"])
    assert grace, worker["stop_grace_period"]
    time_limit = int(worker["environment"]["TASK_TIME_LIMIT_S"])
    assert time_limit == Settings.model_fields["task_time_limit_s"].default
    assert int(grace.group(1)) >= time_limit + 20


def test_compose_migrates_before_the_bridge_and_the_worker() -> None:
    services = load_compose(filled_env())["services"]
    assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert services["migrate"]["restart"] == "no"
    for name in ("zero-execution", "zero-worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


def test_prometheus_scrapes_every_bridge_and_grafana_shows_it_beside_the_sql_panels() -> None:
    services = load_compose(filled_env())["services"]
    prometheus = services["prometheus"]
    mounts = {v.split(":")[1]: (INFRA / v.split(":")[0]).resolve() for v in prometheus["volumes"]
              if v.startswith(".")}
    assert mounts["/etc/prometheus/prometheus.yml"] == PROMETHEUS_CONFIG.resolve()
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert prometheus["ports"] == ["127.0.0.1:9090:9090"]
    (job,) = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (dns,) = job["dns_sd_configs"]  # every replica of the bridge service, by its DNS name
    assert dns["names"] == ["zero-execution"] and dns["type"] == "A"
    assert str(dns["port"]) == services["zero-execution"]["environment"]["EXECUTION_API_PORT"]

    (source,) = yaml.safe_load(PROMETHEUS_DATASOURCE.read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert services["grafana"]["depends_on"]["prometheus"]
    panels = prometheus_panels()
    assert panels and sql_panels()
    from tests.test_metrics import documented_metrics  # the names /metrics serves, checked there

    served = documented_metrics()
    for panel in panels:
        assert panel["datasource"]["uid"] == source["uid"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"]
            names = set(re.findall(r"\b(zero_[a-z_]+?)(?:_bucket|_count|_sum)?\b", target["expr"]))
            assert names and names <= served, (panel["title"], names - served)


SQL_WORDS = {
    "select", "from", "where", "and", "or", "not", "in", "is", "null", "as", "group", "by", "order", "desc", "asc",
    "limit", "within", "count", "coalesce", "split_part", "percentile_cont", "max", "min", "sum", "avg",
}


def test_dashboard_sql_uses_only_execution_log_columns() -> None:
    columns = {c.name for c in execution_log.columns}
    for title, _, sql in panel_sql():
        assert re.findall(r"(?i)\bfrom\s+(\w+)", sql) == ["execution_log"], title
        assert not re.search(r"(?i)\bjoin\b|;", sql), title
        bare = re.sub(r"'[^']*'", "''", sql)  # string literals
        bare = re.sub(r"\$__\w+", " ", bare)  # Grafana macro names (their arguments stay)
        aliases = {a.lower() for a in re.findall(r"(?i)\bas\s+(\w+)", bare)}
        words = {w.lower() for w in re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", bare)}
        unknown = words - SQL_WORDS - aliases - columns - {"execution_log"}
        assert not unknown, f"{title}: not a column of execution_log: {sorted(unknown)}"
        assert words & columns, title


# Grafana's expansion of its PostgreSQL macros (pkg/tsdb/grafana-postgresql-datasource/macros.go).
def expand_macros(sql: str, start: datetime, end: datetime, interval_s: int, timescaledb: bool) -> str:
    sql = sql.replace("$__interval_ms", str(interval_s * 1000)).replace("$__interval", f"{interval_s}s")

    def group(column: str) -> str:
        if timescaledb:
            return f"time_bucket('{interval_s:.3f}s', {column})"
        return f"floor(extract(epoch from {column})/{interval_s})*{interval_s}"

    def macro(match: re.Match[str]) -> str:
        name, args = match.group(1), [a.strip() for a in match.group(2).split(",")]
        if name == "timeFilter":
            return f"{args[0]} BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'"
        if name == "timeGroup":
            return group(args[0])
        if name == "timeGroupAlias":
            return group(args[0]) + ' AS "time"'
        if name == "timeFrom":
            return f"'{start.isoformat()}'"
        if name == "timeTo":
            return f"'{end.isoformat()}'"
        raise AssertionError(f"macro $__{name} not expanded by this test")

    sql = re.sub(r"\$__(\w+)\(([^()]*)\)", macro, sql)
    assert "$" not in sql, sql
    return sql


@pytest.fixture
def grafana_pg() -> Iterator[Engine]:
    """execution_log in a private schema of the test database (never public.execution_log)."""
    schema = f"grafana_test_{os.getpid()}"
    base = os.environ.get("TEST_POSTGRES_URL", PG_URL)
    admin = make_engine(sqlalchemy_url(base))
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
        # TimescaleDB's time_bucket for the timescaledb expansion of $__timeGroup (plain PostgreSQL here).
        conn.execute(text(f"CREATE FUNCTION {schema}.time_bucket(bucket interval, ts timestamptz) "
                          "RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$ SELECT to_timestamp(floor("
                          "extract(epoch from ts) / extract(epoch from bucket)) * extract(epoch from bucket)) $$"))
    engine = make_engine(sqlalchemy_url(base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{schema}"))
    try:
        ensure_schema(engine)
        with admin.connect() as conn:
            where = conn.execute(text("SELECT table_schema FROM information_schema.tables "
                                      f"WHERE table_name = 'execution_log' AND table_schema = '{schema}'")).scalar()
        assert where == schema
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def decision(n: int, at: datetime, status: Status, reason: str, ticker: str = "SPY",
             latency_ms: float = 40.0, order: bool = False) -> DecisionRecord:
    return DecisionRecord(
        event_key=f"grafana-test-{n}", time=at, decided_at=at + timedelta(milliseconds=latency_ms),
        execution_id=f"{ticker}:H30:{at:%Y-%m-%dT%H:%M:%S}", ticker=ticker, horizon="H30", probability=0.95,
        opportunity_score=95, status=status, reason=reason, why=[reason],
        market_state_snapshot={"state": "GREEN"}, alpaca_order_id=f"order-{n}" if order else None,
        client_order_id=f"zx-{n}" if order else None, submitted_at=at if order else None, payload={"ticker": ticker})


@pytest.mark.postgres
@pytest.mark.parametrize("timescaledb", [False, True], ids=["postgresql", "timescaledb-expansion"])
def test_dashboard_sql_runs_on_postgresql(grafana_pg: Engine, timescaledb: bool) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [
        decision(1, now - timedelta(minutes=30), Status.SUBMITTED, "submitted: 1 share SPY buy market day",
                 latency_ms=120.0, order=True),
        decision(2, now - timedelta(minutes=20), Status.SUBMITTED, "submitted: 1 share QQQ buy market day",
                 ticker="QQQ", latency_ms=80.0, order=True),
        decision(3, now - timedelta(minutes=19), Status.SUBMITTED, "submitted: 1 share SPY buy market day",
                 latency_ms=100.0, order=True),
        decision(4, now - timedelta(minutes=10), Status.BLOCKED, "market state: stale: GREEN is 412s old (max 300s)"),
        decision(5, now - timedelta(minutes=9), Status.BLOCKED, "market state: RED"),
        decision(6, now - timedelta(minutes=8), Status.BLOCKED, "execution disabled: key:execution_enabled is not set"),
        decision(7, now - timedelta(minutes=5), Status.SKIPPED, "duplicate: SPY:H30 already claimed"),
        decision(8, now - timedelta(minutes=4), Status.SKIPPED, "cooldown: SPY ordered 12 min ago"),
        decision(9, now - timedelta(minutes=3), Status.ERROR, "error: broker unreachable after 4 retries"),
        decision(10, now - timedelta(days=3), Status.SUBMITTED, "submitted: old, outside the range", ticker="IWM"),
    ]
    for row in rows:
        assert insert_rows(grafana_pg, [row.to_row()]) == 1
    assert update_order_status(grafana_pg, "grafana-test-1", OrderFate("filled"), now - timedelta(minutes=29))
    assert update_order_status(grafana_pg, "grafana-test-2", OrderFate("canceled"), now - timedelta(minutes=15))

    results = {}
    for title, fmt, sql in panel_sql():
        expanded = expand_macros(sql, now - timedelta(hours=6), now + timedelta(minutes=1), 60, timescaledb)
        with grafana_pg.connect() as conn:
            result = conn.execute(text(expanded))
            names = list(result.keys())
            data = [dict(zip(names, r, strict=True)) for r in result]
        if fmt == "time_series":
            assert names[0] == "time", title
        results[title] = data

    def find(word: str) -> list[dict[str, Any]]:
        (title,) = [t for t in results if word in t.lower()]
        return results[title]

    per_status: dict[str, int] = {}
    for row in find("per status"):
        per_status[row["metric"]] = per_status.get(row["metric"], 0) + row["decisions"]
    assert per_status == {"SUBMITTED": 3, "BLOCKED": 3, "SKIPPED": 2, "ERROR": 1}
    assert {r["ticker"]: r["orders"] for r in find("per ticker")} == {"SPY": 2, "QQQ": 1}
    reasons = {(r["status"], r["reason_code"]): r["decisions"] for r in find("blocked")}
    assert reasons == {("BLOCKED", "market state"): 2, ("BLOCKED", "execution disabled"): 1,
                       ("SKIPPED", "duplicate"): 1, ("SKIPPED", "cooldown"): 1}
    latency = find("latency")
    assert latency and all(r["p50"] <= r["p99"] for r in latency)
    assert max(r["p99"] for r in latency) == pytest.approx(120.0, abs=1)
    follow_up = {r["order_status"]: r["orders"] for r in find("order status")}
    assert follow_up == {"filled": 1, "canceled": 1, "no follow-up yet": 1}
    latest = find("latest")
    assert len(latest) == 9 and latest[0]["status"] == "ERROR"

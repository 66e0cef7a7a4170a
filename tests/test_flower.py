"""Flower is for watching, and only with a password: zero_ops/flower_guard.py, flower_proxy.py.

The refusals run the guard as the compose file and `make run` do (`python -m
zero_ops.flower_guard`) and need no Flower. The e2e tests start one real guarded Flower
against a private redis-server and a real Celery worker (consuming zero_audit only, so a
task that reached zero_execution would stay there to be counted), from a working directory
holding a hostile flowerconfig.py, and go through the public port endpoint by endpoint.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import socket
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from flower import urls as flower_urls

from tests.support.procs import CELERY, PYTHON, ROOT, PrivateRedis, Proc, base_env, free_port, wait_for
from zero_ops import flower_guard
from zero_ops.flower_guard import CONFIG_FILE, Refused, check_basic_auth, flower_argv, flower_env, plan
from zero_ops.flower_proxy import WATCH_PATHS, Forward, Refuse, credential_digests, credentials_match, route
from zero_tasks.adapters.audit import ensure_schema, make_engine

GUARD = [PYTHON, "-m", "zero_ops.flower_guard"]
GOOD_AUTH = "zero:Long-enough-1"
WORKER = f"watched@{socket.gethostname()}"
TASK_ID = str(uuid.uuid4())
FORGED = {"args": [], "kwargs": {"ticker": "IWM", "execution_id": "forged", "prepaid": True}}

# Every acting endpoint of Flower 2.2 (flower/urls.py), as a user would call it.
CONTROL = [
    pytest.param("/api/worker/shutdown/{worker}", None, id="worker-shutdown"),
    pytest.param("/api/worker/pool/restart/{worker}", None, id="pool-restart"),
    pytest.param("/api/worker/pool/grow/{worker}?n=2", None, id="pool-grow"),
    pytest.param("/api/worker/pool/shrink/{worker}?n=1", None, id="pool-shrink"),
    pytest.param("/api/worker/pool/autoscale/{worker}?min=1&max=4", None, id="pool-autoscale"),
    pytest.param("/api/worker/queue/add-consumer/{worker}?queue=zero_execution", None, id="add-consumer"),
    pytest.param("/api/worker/queue/cancel-consumer/{worker}?queue=zero_audit", None, id="cancel-consumer"),
    pytest.param("/api/task/apply/zero.place_order", FORGED, id="task-apply"),
    pytest.param("/api/task/async-apply/zero.place_order", FORGED, id="task-async-apply"),
    pytest.param("/api/task/send-task/zero.place_order", FORGED, id="task-send-task"),
    pytest.param("/api/task/abort/{task_id}", None, id="task-abort"),
    pytest.param("/api/task/timeout/zero.place_order?workername={worker}&hard=1&soft=1", None, id="task-timeout"),
    pytest.param("/api/task/rate-limit/zero.place_order?workername={worker}&ratelimit=1/m", None,
                 id="task-rate-limit"),
    pytest.param("/api/task/revoke/{task_id}?terminate=true&signal=SIGKILL", None, id="task-revoke-terminate"),
]
# Flower's routes that are neither watching nor acting on Celery: never passed on either.
NOT_PASSED_ON = {r"/login/?", r"/logout", r".*"}
# path, Flower's own status for it here (no result backend; TASK_ID is unknown to Flower)
WATCHING = [
    pytest.param("/", 200, id="main"),
    pytest.param("/workers", 200, id="workers"),
    pytest.param("/worker/{worker}", 200, id="worker"),
    pytest.param("/tasks", 200, id="tasks"),
    pytest.param("/tasks/datatable?draw=1&start=0&length=10&order[0][column]=0&columns[0][data]=name", 200,
                 id="tasks-datatable"),
    pytest.param("/task/{task_id}", 404, id="task"),
    pytest.param("/broker", 200, id="broker"),
    pytest.param("/api/workers", 200, id="api-workers"),
    pytest.param("/api/workers?refresh=1", 200, id="api-workers-refresh"),
    pytest.param("/api/tasks", 200, id="api-tasks"),
    pytest.param("/api/task/types", 200, id="api-task-types"),
    pytest.param("/api/queues/length", 200, id="api-queues-length"),
    pytest.param("/api/task/info/{task_id}", 404, id="api-task-info"),
    pytest.param("/api/task/result/{task_id}", 503, id="api-task-result"),
    pytest.param("/metrics", 200, id="metrics"),
    pytest.param("/healthcheck", 200, id="healthcheck"),
    pytest.param("/static/css/flower.css", 200, id="static"),
]
HOSTILE_FLOWERCONFIG = """\
import pathlib
pathlib.Path(__file__).with_name("flowerconfig-was-read").write_text("yes")
basic_auth = []
read_only = False
"""


def guard_env(value: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    env["PYTHONPATH"] = str(ROOT)
    if value is not None:
        env["FLOWER_BASIC_AUTH"] = value
    env.update(extra)
    return env


def expand(path: str) -> str:
    return path.format(worker=WORKER, task_id=TASK_ID)


# --- refused at start: no Flower runs -----------------------------------------------------

REFUSED = [
    pytest.param(None, "is not set", None, id="unset"),
    pytest.param("", "is empty", None, id="empty"),
    pytest.param("   ", "is empty", None, id="blank"),
    pytest.param("operator:", "empty password", None, id="no-password"),
    pytest.param(":Secret-Pass-1", "empty user", "Secret-Pass-1", id="no-user"),
    pytest.param("operator", "no ':'", None, id="no-colon"),
    pytest.param("operator:Sh0rt-7", "shorter than 8", "Sh0rt-7", id="short"),
    pytest.param("alice:Long-enough-1,bob:tiny", "entry 2", "tiny", id="second-entry-short"),
    pytest.param("alice:Long-enough-1,", "entry 2", "Long-enough-1", id="trailing-comma"),
]


@pytest.mark.parametrize("value, why, password", REFUSED)
def test_guard_refuses_to_start_without_a_usable_password(value: str | None, why: str, password: str | None) -> None:
    result = subprocess.run(GUARD, env=guard_env(value), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    assert "refusing to start Flower" in result.stderr
    assert "FLOWER_BASIC_AUTH" in result.stderr
    assert why in result.stderr
    assert result.stdout == ""
    if password:
        assert password not in result.stderr
        assert password not in result.stdout


BYPASS_ARGS = [
    pytest.param(["-basic_auth=intruder:Bypass-pass-1"], id="one-dash-underscore"),
    pytest.param(["---basic-auth=intruder:Bypass-pass-1"], id="three-dashes"),
    pytest.param(["--basic_auth=intruder:Bypass-pass-1"], id="underscore"),
    pytest.param(["--basic-auth=intruder:Bypass-pass-1"], id="dash"),
    pytest.param(["--basic_auth", "intruder:Bypass-pass-1"], id="separate-value"),
    pytest.param(["--conf=/tmp/Bypass-flowerconfig.py"], id="conf"),
    pytest.param(["--auth=.*@Bypass.example"], id="auth"),
    pytest.param(["--auth_provider=flower.views.auth.GithubLoginHandler"], id="auth-provider"),
    pytest.param(["--unix-socket=/tmp/Bypass.sock"], id="unix-socket-dash"),
    pytest.param(["--unix_socket=/tmp/Bypass.sock"], id="unix-socket"),
    pytest.param(["--address=0.0.0.0"], id="address"),
    pytest.param(["--port=15555"], id="port"),
    pytest.param(["--read_only=False"], id="read-only-off"),
    pytest.param(["--url_prefix=Bypass"], id="url-prefix"),
    pytest.param(["--xheaders=True"], id="xheaders"),
    pytest.param(["--cookie_secret=Bypass-cookie"], id="cookie-secret"),
    pytest.param(["--purge-offline-workers=60"], id="allowed-option-other-spelling"),
    pytest.param(["--purge_offline_workers=Bypass"], id="allowed-option-bad-value"),
    pytest.param(["--max_tasks=60", "--conf=/tmp/Bypass.py"], id="good-then-bad"),
    pytest.param(["intruder:Bypass-pass-1"], id="positional"),
]


@pytest.mark.parametrize("extra", BYPASS_ARGS)
def test_guard_refuses_every_option_outside_its_allow_list(extra: list[str]) -> None:
    result = subprocess.run([*GUARD, *extra], env=guard_env(GOOD_AUTH), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    assert "refusing to start Flower" in result.stderr
    assert "not an option the guard passes on" in result.stderr or "needs" in result.stderr
    assert "Bypass" not in result.stderr + result.stdout  # no option's value is ever printed
    assert "Long-enough-1" not in result.stderr + result.stdout


BYPASS_ENV = [
    pytest.param("FLOWER_AUTH", ".*@Bypass.example", id="auth"),
    pytest.param("FLOWER_CONF", "/tmp/Bypass.py", id="conf"),
    pytest.param("FLOWER_UNIX_SOCKET", "/tmp/Bypass.sock", id="unix-socket"),
    pytest.param("FLOWER_READ_ONLY", "false", id="read-only-off"),
    pytest.param("FLOWER_UNAUTHENTICATED_API", "true", id="unauthenticated-api"),
    pytest.param("FLOWER_URL_PREFIX", "Bypass", id="url-prefix"),
    pytest.param("FLOWER_AUTH_PROVIDER", "flower.views.auth.GithubLoginHandler", id="auth-provider"),
]


@pytest.mark.parametrize("name, value", BYPASS_ENV)
def test_guard_refuses_any_other_flower_variable(name: str, value: str) -> None:
    """Flower reads every FLOWER_<option> variable as that option."""
    result = subprocess.run(GUARD, env=guard_env(GOOD_AUTH, **{name: value}), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result
    assert f"refusing to start Flower: {name} is set" in result.stderr
    assert value not in result.stderr + result.stdout
    assert "Long-enough-1" not in result.stderr + result.stdout


def test_guard_builds_the_flower_command_line() -> None:
    run_plan = plan({"FLOWER_BASIC_AUTH": GOOD_AUTH}, ["--purge_offline_workers=60", "--inspect_timeout=2500"])
    assert (run_plan.address, run_plan.port, run_plan.credentials) == ("127.0.0.1", 5555, (GOOD_AUTH,))
    argv = flower_argv("/private/flower.sock", run_plan.extra)
    assert argv == [str(Path(PYTHON).with_name("celery")), "-A", "zero_tasks", "flower", f"--conf={CONFIG_FILE}",
                    "--unix_socket=/private/flower.sock", "--read_only=True",
                    "--purge_offline_workers=60", "--inspect_timeout=2500"]
    assert not any("Long-enough-1" in arg for arg in argv)  # the password never shows in `ps`
    assert CONFIG_FILE.is_file() and CONFIG_FILE.parent == Path(flower_guard.__file__).parent
    run_plan = plan({"FLOWER_BASIC_AUTH": "a:Long-enough-1,b:pass:with:colons", "FLOWER_ADDRESS": "0.0.0.0",
                     "FLOWER_PORT": "5600"}, [])
    assert (run_plan.address, run_plan.port, run_plan.credentials) == ("0.0.0.0", 5600,
                                                                       ("a:Long-enough-1", "b:pass:with:colons"))
    assert check_basic_auth("a:Long-enough-1,b:pass:with:colons") == ["a", "b"]
    assert flower_env({"FLOWER_BASIC_AUTH": GOOD_AUTH, "FLOWER_PORT": "1", "FLOWER_ADDRESS": "x", "PATH": "/bin",
                       "TASK_SIGNING_KEY": "k" * 40, "ALPACA_API_KEY": "PKREAL", "ALPACA_SECRET_KEY": "real"}) \
        == {"FLOWER_BASIC_AUTH": GOOD_AUTH, "PATH": "/bin", "ALPACA_API_KEY": flower_guard.NO_ALPACA_KEY,
            "ALPACA_SECRET_KEY": flower_guard.NO_ALPACA_KEY}  # least privilege: no signing key, no Alpaca keys
    with pytest.raises(Refused, match="FLOWER_PORT"):
        plan({"FLOWER_BASIC_AUTH": GOOD_AUTH, "FLOWER_PORT": "http"}, [])
    assert flower_guard.EXIT_REFUSED == 2


# --- the proxy's decisions, as tables --------------------------------------------------------

def test_the_lists_cover_every_route_of_the_installed_flower() -> None:
    """Each route of the installed Flower is watching (passed on), acting (a CONTROL case) or
    neither (never passed on). A Flower upgrade that adds a route fails here until it is read."""
    routes = [handler.regex.pattern.removesuffix("$") if hasattr(handler, "regex") else handler[0]
              for handler in flower_urls.handlers]
    watching = {pattern.pattern for pattern in WATCH_PATHS}
    control_paths = [expand(param.values[0]).split("?")[0] for param in CONTROL]
    for pattern in routes:
        if pattern in NOT_PASSED_ON:
            continue
        watched = pattern.replace("(.+)", ".+").replace("(.*)", ".*") in watching
        acted_on = [path for path in control_paths if re.fullmatch(pattern, path)]
        assert watched != bool(acted_on), pattern
    assert len(routes) == len(WATCH_PATHS) + len(CONTROL) + len(NOT_PASSED_ON)


@pytest.mark.parametrize("path, _body", CONTROL)
@pytest.mark.parametrize("method", ["POST", "GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_route_refuses_every_control_endpoint_with_any_method(method: str, path: str, _body: object) -> None:
    assert isinstance(route(method, expand(path).split("?")[0]), Refuse)


@pytest.mark.parametrize("path, _status", WATCHING)
def test_route_passes_on_watching_pages_only_as_reads(path: str, _status: int) -> None:
    raw = expand(path).split("?")[0]
    assert route("GET", raw) == Forward("GET")
    assert route("HEAD", raw) == Forward("HEAD")
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        assert isinstance(route(method, raw), Refuse)
    assert route("POST", raw) == (Forward("GET", body_as_query=True) if raw == "/tasks/datatable" else
                                  Refuse("Flower is read-only here: POST is never passed on"))


@pytest.mark.parametrize("path", ["/login", "/logout", "/nowhere", "http://flower/api/workers", "//api/workers",
                                  "/api/workers/", "/api/task/send-task", "/api/worker/shutdown/"])
def test_route_refuses_paths_off_the_list(path: str) -> None:
    assert isinstance(route("GET", path), Refuse)


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@pytest.mark.parametrize("header, ok", [
    (_basic("zero:Long-enough-1"), True),
    (_basic("ops:pass:with:colons"), True),
    (_basic("zero:Long-enough-1x"), False),
    (_basic("zero:Long-enough-"), False),
    (_basic("ops:Long-enough-1"), False),
    (_basic("zero:Long-enough-1,ops:pass:with:colons"), False),
    ("basic " + _basic("zero:Long-enough-1")[6:], False),
    ("Bearer " + _basic("zero:Long-enough-1")[6:], False),
    ("Basic !!notbase64", False),
    ("Basic " + "//79", False),  # not UTF-8
    ("", False),
    (None, False),
])
def test_credentials_match_only_a_whole_configured_entry(header: str | None, ok: bool) -> None:
    assert credentials_match(header, credential_digests(["zero:Long-enough-1", "ops:pass:with:colons"])) is ok


# --- one real guarded Flower ---------------------------------------------------------------------

@dataclass
class Site:
    url: str
    auth: tuple[str, str]
    second_auth: tuple[str, str]
    guard: Proc
    worker: Proc
    redis: PrivateRedis
    cwd: Path

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return requests.get(self.url + expand(path), timeout=30, **kwargs)  # type: ignore[arg-type]


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def flower_pid(site: Site) -> int:
    (pid,) = children_of(site.guard.pid)
    return pid


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    logs = tmp_path_factory.mktemp("flower-logs")
    cwd = tmp_path_factory.mktemp("flower-cwd")
    (cwd / "flowerconfig.py").write_text(HOSTILE_FLOWERCONFIG)
    redis_server = PrivateRedis(logs).start()
    password, second_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    port = free_port()
    env = base_env(redis_server.port, "http://127.0.0.1:9", f"sqlite:///{logs / 'audit.db'}", free_port())
    ensure_schema(make_engine(env["DATABASE_URL"]))  # a worker refuses a schema that is behind
    worker = Proc("worker", [CELERY, "-A", "zero_tasks", "worker", "-c", "1", "-n", "watched@%h", "-Q", "zero_audit",
                             "--without-gossip", "--without-mingle", "-l", "INFO"], env, logs)
    guard_environment = {k: v for k, v in env.items() if not k.startswith("FLOWER_")}
    guard_environment.update(FLOWER_BASIC_AUTH=f"zero:{password},ops:{second_password}", FLOWER_PORT=str(port))
    guard = Proc("flower", [*GUARD, "--inspect_timeout=10000"], guard_environment, logs)
    result = Site(f"http://127.0.0.1:{port}", ("zero", password), ("ops", second_password), guard, worker,
                  redis_server, cwd)
    try:
        worker.start()
        with open(guard.log_path, "ab") as log:  # the child has its own copy of the descriptor
            guard.popen = subprocess.Popen(guard.argv, cwd=cwd, env=guard.env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)

        def worker_seen() -> bool:
            assert guard.alive(), guard.output()[-2000:]
            workers = result.get("/api/workers?refresh=1", auth=result.auth).json()
            return "stats" in workers.get(WORKER, {})
        wait_for(worker_seen, 90, "the guarded Flower to see the worker", interval=0.5)
        yield result
    finally:
        guard.stop()
        worker.stop()
        redis_server.stop()
    assert not guard.alive()
    assert password not in guard.output() and second_password not in guard.output()


@pytest.mark.e2e
@pytest.mark.parametrize("path, body", CONTROL)
def test_every_control_endpoint_is_refused_for_an_authenticated_user(site: Site, path: str, body: object) -> None:
    response = requests.post(site.url + expand(path), json=body, auth=site.auth, timeout=30)
    assert response.status_code == 403
    assert response.text.startswith("refused: Flower is read-only here")  # the proxy's answer, not Flower's


@pytest.mark.e2e
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
@pytest.mark.parametrize("path", ["/api/task/send-task/zero.place_order", "/api/worker/shutdown/{worker}",
                                  "/login", "/logout"])
def test_control_paths_are_refused_with_every_other_method(site: Site, method: str, path: str) -> None:
    response = requests.request(method, site.url + expand(path), json=FORGED, auth=site.auth, timeout=30)
    assert response.status_code == 403


@pytest.mark.e2e
@pytest.mark.parametrize("path, status", WATCHING)
def test_watching_pages_answer_with_the_password(site: Site, path: str, status: int) -> None:
    response = site.get(path, auth=site.auth)
    assert response.status_code == status, response.text[:500]
    assert not response.text.startswith("refused")


@pytest.mark.e2e
@pytest.mark.parametrize("path, _status", WATCHING)
def test_watching_pages_answer_401_without_the_password(site: Site, path: str, _status: int) -> None:
    for auth in (None, (site.auth[0], site.auth[1] + "x"), (site.second_auth[0], site.auth[1]), (site.auth[0], "")):
        response = site.get(path, auth=auth)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="flower"'


@pytest.mark.e2e
def test_both_users_get_in_and_see_the_worker(site: Site) -> None:
    for auth in (site.auth, site.second_auth):
        workers = site.get("/api/workers", auth=auth).json()
        assert workers[WORKER]["stats"]["pool"]["max-concurrency"] == 1


@pytest.mark.e2e
def test_the_tasks_page_table_still_loads(site: Site) -> None:
    """The UI POSTs its search form; the proxy passes it on as a GET (a search, no action)."""
    form = {"draw": "7", "start": "0", "length": "10", "search[value]": "", "order[0][column]": "0",
            "order[0][dir]": "desc", "columns[0][data]": "name"}
    response = requests.post(site.url + "/tasks/datatable", data=form, auth=site.auth, timeout=30)
    assert response.status_code == 200
    assert response.json()["draw"] == 7


@pytest.mark.e2e
def test_a_task_sent_through_flower_never_reaches_the_worker_queue(site: Site) -> None:
    client = site.redis.client()
    statuses = [requests.post(site.url + path, json=FORGED, auth=site.auth, timeout=30).status_code
                for path in ("/api/task/send-task/zero.place_order", "/api/task/async-apply/zero.place_order",
                             "/api/task/apply/zero.place_order", "/api/task/send-task/zero.decide")]
    # Nothing consumes zero_execution here: a task that reached it would still be on it.
    assert client.keys("zero_execution*") == []
    assert client.llen("celery") == 0
    assert statuses == [403] * 4


@pytest.mark.e2e
def test_the_worker_is_untouched_after_every_control_request(site: Site) -> None:
    for param in CONTROL:
        path, body = param.values
        requests.post(site.url + expand(path), json=body, auth=site.auth, timeout=30)
    assert site.worker.alive()
    worker = site.get("/api/workers?refresh=1", auth=site.auth).json()[WORKER]
    assert worker["stats"]["pool"]["max-concurrency"] == 1
    assert [queue["name"] for queue in worker["active_queues"]] == ["zero_audit"]


def _post_on_unix_socket(path: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(30)
        conn.connect(path)
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.e2e
def test_flower_behind_the_guard_refuses_control_by_itself_too(site: Site) -> None:
    """The second layer: Flower on a socket in a 0700 directory, its own basic auth, read-only."""
    argv = cmdline(flower_pid(site))
    assert "flower" in argv and "--read_only=True" in argv and f"--conf={CONFIG_FILE}" in argv
    (socket_path,) = [arg.removeprefix("--unix_socket=") for arg in argv if arg.startswith("--unix_socket=")]
    assert stat.S_IMODE(os.stat(Path(socket_path).parent).st_mode) == 0o700
    body = b'{"args": []}'
    head = (f"POST /api/task/send-task/zero.place_order HTTP/1.0\r\nHost: flower\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n").encode()
    unauthenticated = _post_on_unix_socket(socket_path, head + b"\r\n" + body)
    assert unauthenticated.startswith(b"HTTP/1.1 401")
    authorization = _basic(":".join(site.auth)).encode()
    authenticated = _post_on_unix_socket(socket_path, head + b"Authorization: " + authorization + b"\r\n\r\n" + body)
    assert authenticated.startswith(b"HTTP/1.1 403") and b"Read only mode is enabled" in authenticated
    assert site.redis.client().llen("zero_execution") == 0


@pytest.mark.e2e
def test_a_flowerconfig_py_in_the_working_directory_is_never_read(site: Site) -> None:
    assert Path(f"/proc/{flower_pid(site)}/cwd").resolve() == site.cwd.resolve()
    assert (site.cwd / "flowerconfig.py").exists()
    assert not (site.cwd / "flowerconfig-was-read").exists()
    assert site.get("/api/workers").status_code == 401  # its basic_auth = [] did not take


@pytest.mark.e2e
def test_the_password_never_shows_on_a_command_line(site: Site) -> None:
    for pid in (site.guard.pid, flower_pid(site)):
        line = " ".join(cmdline(pid))
        assert site.auth[1] not in line and site.second_auth[1] not in line
    assert "--inspect_timeout=10000" in cmdline(flower_pid(site))  # the allowed option was passed on

"""The one fixture layer for relaygraph's tests.

Sections: core (isolated workspace, scripted model double), then one section per area.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from relaygraph.providers import Provider, register_provider
from relaygraph.providers.offline import OfflineChatModel
from smolagents import Model
from smolagents.models import (
    ChatMessage,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    MessageRole,
)

REPO = Path(__file__).resolve().parent.parent

# Property tests judge invariants, never speed: no per-example deadline and no "too slow" health
# check, which fail on a loaded 2-core CI machine for reasons that have nothing to do with the code.
hypothesis.settings.register_profile(
    "relaygraph", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
hypothesis.settings.load_profile("relaygraph")


# --- core fixtures ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every test gets its own data, output and checkpoint locations, and the offline model."""
    paths = {"data": tmp_path / "data", "out": tmp_path / "out", "db": tmp_path / "checkpoints.db"}
    monkeypatch.setenv("RELAYGRAPH_DATA_DIR", str(paths["data"]))
    monkeypatch.setenv("RELAYGRAPH_OUTPUT_DIR", str(paths["out"]))
    monkeypatch.setenv("RELAYGRAPH_CHECKPOINT_DB", f"sqlite:///{paths['db']}")
    monkeypatch.setenv("RELAYGRAPH_MODEL", "offline")
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RELAYGRAPH_DATASET"):
        monkeypatch.delenv(var, raising=False)
    return paths


@pytest.fixture(autouse=True)
def global_registries() -> Iterator[None]:
    """Every test leaves the process-wide registries as it found them.

    ``register_provider`` (``providers._PROVIDERS``) and ``register_tool`` (``tools.CUSTOM_TOOLS``)
    mutate module-level dicts; a test (or fixture) may register freely, and its entries are gone,
    and anything it replaced or removed is back, when it ends.
    """
    from relaygraph import providers, tools

    saved_providers, saved_tools = dict(providers._PROVIDERS), dict(tools.CUSTOM_TOOLS)
    try:
        yield
    finally:
        providers._PROVIDERS.clear()
        providers._PROVIDERS.update(saved_providers)
        tools.CUSTOM_TOOLS.clear()
        tools.CUSTOM_TOOLS.update(saved_tools)


class Script:
    """Actions a :class:`ScriptedModel` plays back, in order, across every agent of a run.

    Each action is ``("call", tool, args)``, ``("final", answer)`` or an exception instance to
    raise (a model/server error). ``seen`` keeps the messages of every call for assertions.
    """

    def __init__(self) -> None:
        self.actions: list[Any] = []
        self.seen: list[list[Any]] = []

    def play(self, *actions: Any) -> Script:
        self.actions.extend(actions)
        return self


class ScriptedModel(Model):
    """A smolagents Model double under exact test control."""

    def __init__(self, script: Script) -> None:
        super().__init__(model_id="scripted")
        self.script = script

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kw):
        self.script.seen.append(list(messages))
        if not self.script.actions:
            raise AssertionError("ScriptedModel ran out of actions")
        action = self.script.actions.pop(0)
        if isinstance(action, BaseException):
            raise action
        if action[0] == "final":
            name, args = "final_answer", {"answer": action[1]}
        else:
            name, args = action[1], action[2]
        call = ChatMessageToolCall(id=f"call_{uuid.uuid4().hex[:8]}", type="function",
                                   function=ChatMessageToolCallFunction(name=name, arguments=args))
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"Thought: scripted {name}", tool_calls=[call])


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Script:
    """Register the ``scripted`` provider for this test and return its script."""
    current = Script()
    register_provider(Provider("scripted", lambda s: ScriptedModel(current),
                               lambda s: OfflineChatModel(), lambda s: "scripted test double"))
    monkeypatch.setenv("RELAYGRAPH_MODEL", "scripted")
    return current


@pytest.fixture
def sample_path(isolated_env: dict[str, Path]) -> Path:
    from relaygraph.tools.sample import ensure_sample

    return ensure_sample(isolated_env["data"])


@pytest.fixture
def workspace(isolated_env: dict[str, Path]):
    from relaygraph.tools import Workspace

    return Workspace(isolated_env["data"], isolated_env["out"], "test-run")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_json(text: str) -> dict[str, Any]:
    return json.loads(text)


def in_ci() -> bool:
    """CI must not skip service-backed tests: there, a missing service is a failure."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_unless_ci(reason: str, ci_reason: str) -> None:
    """Skip with ``reason`` on a developer's machine; fail under CI, which must run everything."""
    if in_ci():
        pytest.fail(f"{reason}; {ci_reason}", pytrace=False)
    pytest.skip(reason)


def require_local() -> None:
    """The local-model extra is installed, or skip with the install command (fail under CI)."""
    from relaygraph.providers.local_llm import local_available

    ok, reason = local_available()
    if not ok:
        skip_unless_ci(reason, "CI must install the local extra")


@contextmanager
def running_langgraph_dev(root: Path, env: dict[str, str] | None = None,
                          config: Path = REPO / "langgraph.json") -> Iterator[str]:
    """Start ``langgraph dev`` for ``config`` (relaygraph's langgraph.json by default) on a free
    loopback port; stop it on exit.

    State goes to ``root`` (data, outputs, the checkpoint database ``root/dev.db`` and the
    server's own ``.langgraph_api`` thread registry — it runs with ``root`` as its working
    directory), so a second server started on the same ``root`` sees the first one's threads.
    ``env`` adds variables (e.g. ``OTEL_*``), as langgraph.json's ``env`` block would.
    """
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request

    exe = shutil.which("langgraph", path=str(Path(sys.executable).parent)) or shutil.which("langgraph")
    if exe is None:
        pytest.fail("langgraph CLI missing: pip install -e '.[test]' (it brings langgraph-cli[inmem])")
    port = free_port()
    env = {**os.environ, "RELAYGRAPH_DATA_DIR": str(root / "data"), "RELAYGRAPH_OUTPUT_DIR": str(root / "out"),
           "RELAYGRAPH_CHECKPOINT_DB": f"sqlite:///{root / 'dev.db'}", "RELAYGRAPH_MODEL": "offline",
           "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false", **(env or {})}
    log_path = root / f"server-{port}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([exe, "dev", "--no-browser", "--no-reload", "--port", str(port),
                             "--config", str(config)],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/ok", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"langgraph dev did not start; log:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def cli_here(args: list[str], log: Path, monkeypatch: pytest.MonkeyPatch, play: RolePlay | None = None) -> Any:
    """``relaygraph ARGS`` in this process (typer's CliRunner) with the ``crashy`` provider logging
    agent runs to ``log``, as ``crash_runner.py`` does in a child: resuming a killed run, or being
    refused next to a live one, is no process concern, and an interpreter start costs seconds.
    Its agents are the offline policy, or the scripted cast ``play`` (the ``cast`` fixture's)."""
    from crash_runner import crashy
    from relaygraph.cli.main import app
    from relaygraph.providers import register_provider
    from typer.testing import CliRunner

    register_provider(crashy(str(log), play=play))  # undone after the test (conftest.global_registries)
    monkeypatch.setenv("RELAYGRAPH_MODEL", "crashy")
    return CliRunner().invoke(app, args)


@pytest.fixture(scope="session")
def langgraph_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``langgraph dev`` server shared by the tests that only need a running one."""
    with running_langgraph_dev(tmp_path_factory.mktemp("langgraph-dev")) as url:
        yield url


@pytest.fixture
def invoke_config() -> Iterator[dict[str, Any]]:
    yield {"configurable": {"thread_id": f"t-{uuid.uuid4().hex[:8]}"}}


# --- tracing (observability/) ------------------------------------------------------------------


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Tracing on for this test, every finished span kept in memory (no span store, no OTLP).

    ``spans.get_finished_spans()`` lists them; tracing is off again afterwards.
    """
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from relaygraph.observability import tracing

    for var in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RELAYGRAPH_TRACE_STORE", "false")
    exporter = InMemorySpanExporter()
    tracing.configure(enabled=True, processors=[SimpleSpanProcessor(exporter)], force=True)
    try:
        yield exporter
    finally:
        tracing.shutdown()


@pytest.fixture
def tracing_off() -> Iterator[None]:
    """Make sure tracing is off (and stays off) for a test that starts it through other means."""
    from relaygraph.observability import tracing

    tracing.shutdown()
    try:
        yield
    finally:
        tracing.shutdown()


# --- persistence fixtures (persistence/, runtime/checkpointing.py) -------------------------
# Fresh PostgreSQL schema / MariaDB database per test, dropped afterwards. When the service
# is down these skip with the reason, except under CI=true, where they fail.

PG_ADMIN_URL = os.environ.get("RELAYGRAPH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_ADMIN_URL = os.environ.get("RELAYGRAPH_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")


def _service_unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} not reachable ({type(exc).__name__}: {str(exc).strip().splitlines()[0]})"
    skip_unless_ci(message, "CI must run the service-backed tests")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL whose search_path is a fresh, empty schema."""
    from sqlalchemy.engine import make_url

    try:
        import psycopg

        admin = psycopg.connect(make_url(PG_ADMIN_URL).set(drivername="postgresql")
                                .render_as_string(hide_password=False),
                                autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - any failure means "service unavailable"
        _service_unavailable(f"PostgreSQL at {PG_ADMIN_URL}", exc)
    schema = f"rg_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield make_url(PG_ADMIN_URL).update_query_dict(
            {"options": f"-csearch_path={schema}"}
        ).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A SQLAlchemy URL of a fresh, empty MariaDB/MySQL database."""
    from sqlalchemy.engine import make_url

    base = make_url(MYSQL_ADMIN_URL)
    try:
        import pymysql

        admin = pymysql.connect(host=base.host or "127.0.0.1", port=base.port or 3306,
                                user=base.username or "root", password=base.password or "",
                                connect_timeout=3, autocommit=True)
    except Exception as exc:  # noqa: BLE001
        _service_unavailable(f"MariaDB/MySQL at {MYSQL_ADMIN_URL}", exc)
    name = f"rg_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'checkpoints-test.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("mysql", marks=pytest.mark.mysql)])
def any_url(request: pytest.FixtureRequest) -> str:
    """The same test on every backend."""
    return request.getfixturevalue({"sqlite": "sqlite_url", "postgres": "pg_url",
                                    "mysql": "mysql_url"}[request.param])


class Outage:
    """Fault injection on one test database reached as its own user: ``kill()`` terminates that
    user's connections (``pg_terminate_backend`` / MariaDB ``KILL``); ``down()`` also refuses new
    logins (``NOLOGIN`` / ``ACCOUNT LOCK``) until it ends, so the database stays away for sure."""

    def __init__(self, backend: str, url: str, user: str, admin: Any) -> None:
        self.backend, self.url, self.user, self._admin = backend, url, user, admin
        self._lock = threading.Lock()  # one admin connection, used from killer threads too
        self.kills = 0

    def _sql(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._lock:
            if self.backend == "postgres":
                cur = self._admin.execute(sql, args or None)
                return cur.fetchall() if cur.description else []
            with self._admin.cursor() as cur:
                cur.execute(sql, args or None)
                return list(cur.fetchall())

    def kill(self) -> int:
        """Terminate every connection of the test user now; how many there were."""
        if self.backend == "postgres":
            rows = self._sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE usename = %s AND pid <> pg_backend_pid()", self.user)
        else:
            rows = []
            for (ident,) in self._sql("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s",
                                      self.user):
                try:
                    self._sql(f"KILL CONNECTION {int(ident)}")
                    rows.append((ident,))
                except Exception:  # noqa: BLE001 - it ended on its own meanwhile
                    pass
        self.kills += len(rows)
        return len(rows)

    def logins(self, allowed: bool) -> None:
        if self.backend == "postgres":
            self._sql(f'ALTER ROLE "{self.user}" {"LOGIN" if allowed else "NOLOGIN"}')
        else:
            self._sql(f"ALTER USER '{self.user}'@'%' ACCOUNT {'UNLOCK' if allowed else 'LOCK'}")

    @contextmanager
    def down(self) -> Iterator[None]:
        """The database refuses this user and has dropped its connections, until the block ends."""
        self.logins(False)
        self.kill()
        try:
            yield
        finally:
            self.logins(True)

    @contextmanager
    def killing(self, seconds: float, every_s: float = 0.05, at_least: int = 0) -> Iterator[threading.Thread]:
        """A background thread terminating the user's connections every ``every_s`` for ``seconds``
        (and on, up to 30 s, until it has terminated ``at_least`` connections: a loaded machine may
        find few connections open in the first seconds)."""
        stop = threading.Event()

        def loop() -> None:
            start, kills = time.monotonic(), 0
            while not stop.is_set():
                took = time.monotonic() - start
                if took >= 30 or (took >= seconds and kills >= at_least):
                    break
                kills += self.kill()
                stop.wait(every_s)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield thread
        finally:
            stop.set()
            thread.join(30)

    def kill_on_checkout(self, engine: Any, times: int = 1) -> None:
        """Kill the connections the next ``times`` pool checkouts hand out, after the pool's
        pre-ping: the statement that follows meets a dead connection."""
        import sqlalchemy as sa

        left = [times]

        def checkout(*_: Any) -> None:
            if left[0] > 0:
                left[0] -= 1
                self.kill()

        sa.event.listen(getattr(engine, "sync_engine", engine).pool, "checkout", checkout)


@contextmanager
def outage_database(backend: str) -> Iterator[Outage]:
    """A fresh PostgreSQL schema / MariaDB database owned by a user of its own, with an
    :class:`Outage` to terminate that user's connections or lock it out; dropped afterwards.
    Raises when the service is not reachable (``bench/outage_trials.py`` uses it too)."""
    from sqlalchemy.engine import make_url

    user = f"rg_out_{uuid.uuid4().hex[:10]}"
    if backend == "postgres":
        import psycopg

        admin = psycopg.connect(make_url(PG_ADMIN_URL).set(drivername="postgresql")
                                .render_as_string(hide_password=False), autocommit=True, connect_timeout=3)
        admin.execute(f'CREATE ROLE "{user}" LOGIN')
        admin.execute(f'CREATE SCHEMA "{user}" AUTHORIZATION "{user}"')
        url = make_url(PG_ADMIN_URL).set(username=user, password=None).update_query_dict(
            {"options": f"-csearch_path={user}"}).render_as_string(hide_password=False)
        target = Outage("postgres", url, user, admin)
        try:
            yield target
        finally:
            target.logins(True)
            target.kill()
            admin.execute(f'DROP SCHEMA "{user}" CASCADE')
            admin.execute(f'DROP ROLE "{user}"')
            admin.close()
        return
    import pymysql

    base = make_url(MYSQL_ADMIN_URL)
    admin = pymysql.connect(host=base.host or "127.0.0.1", port=base.port or 3306,
                            user=base.username or "root", password=base.password or "",
                            connect_timeout=3, autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{user}` CHARACTER SET utf8mb4")
        cur.execute(f"CREATE USER '{user}'@'%'")
        cur.execute(f"GRANT ALL ON `{user}`.* TO '{user}'@'%'")
    target = Outage("mysql", base.set(username=user, password=None, database=user)
                    .render_as_string(hide_password=False), user, admin)
    try:
        yield target
    finally:
        target.logins(True)
        target.kill()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{user}`")
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.close()


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("mysql", marks=pytest.mark.mysql)])
def outage(request: pytest.FixtureRequest) -> Iterator[Outage]:
    """:func:`outage_database` on each server backend (skips when the service is down)."""
    service = {"postgres": f"PostgreSQL at {PG_ADMIN_URL}", "mysql": f"MariaDB/MySQL at {MYSQL_ADMIN_URL}"}
    try:
        database = outage_database(request.param)
        target = database.__enter__()
    except Exception as exc:  # noqa: BLE001 - any failure means "service unavailable"
        _service_unavailable(service[request.param], exc)
    try:
        yield target
    finally:
        database.__exit__(None, None, None)


# --- workflows (graphs/parallel.py, graphs/handoff.py, graphs/hierarchical.py) ----------------


class RolePlay:
    """Per-role behaviour for :class:`RoleModel`, keyed by the agent's role (``"record scorer"``).

    ``scripts[key]``: actions like :class:`Script`'s (or callables of the agent's
    :class:`RunBrief` returning one), consumed across that agent's calls, where ``key`` is
    ``"role@k/n"`` for a branch on partition ``k/n`` (if scripted so), else the role;
    ``briefs[key]``: every brief the graph handed that agent (its context, its goal);
    ``decisions[schema]``: the structured routing decisions (``decide``: ``"Delegation"``,
    ``"QualityPlan"``, ...), each a dict of the schema's fields — or an exception, which that
    call of the chat model raises — consumed in order;
    ``failures[role]``: an exception every call of that role raises; ``delay``: seconds each
    call of the roles in ``slow`` takes, or :meth:`together` (to observe concurrency). ``calls``
    counts calls per role; ``peak`` is the most calls of ``slow`` roles that were in flight at once.

    Strict: nothing falls back to the offline policy. A call with nothing scripted for it is
    recorded in ``unscripted`` and fails, and the ``cast`` fixture fails the test if anything was
    unscripted or any script was left unplayed.
    """

    def __init__(self) -> None:
        import threading

        self.scripts: dict[str, list[Any]] = {}
        self.decisions: dict[str, list[dict[str, Any]]] = {}
        self.failures: dict[str, BaseException] = {}
        self.slow: set[str] = set()
        self.delay = 0.0
        self.barrier: Any = None
        self.calls: dict[str, int] = {}
        self.unscripted: list[str] = []
        self.briefs: dict[str, list[Any]] = {}
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def together(self, roles: set[str], parties: int, timeout: float = 60) -> None:
        """The first call of each agent run of ``roles`` waits until ``parties`` of them are in
        flight at once (or fails after ``timeout``): concurrency made observable exactly, with
        no sleep to tune. ``peak`` then counts how many were in flight together."""
        import threading

        self.slow, self.barrier = set(roles), threading.Barrier(parties, timeout=timeout)

    def next_action(self, role: str, key: str) -> Any:
        """The next scripted action of ``key`` (or of ``role``); fails when none is left."""
        with self.lock:
            for name in (key, role):
                if self.scripts.get(name):
                    return self.scripts[name].pop(0)
            self.unscripted.append(key)
            raise AssertionError(f"nothing scripted for {key!r} (cast.scripts[{role!r}])")

    def leftovers(self) -> dict[str, Any]:
        return {k: v for k, v in {**self.scripts, **self.decisions}.items() if v}


class RoleModel(Model):
    """A smolagents Model that plays each agent's part from :class:`RolePlay`, by role."""

    def __init__(self, play: RolePlay) -> None:
        super().__init__(model_id="cast")
        self.play = play
        self.brief: Any = None

    def receive_brief(self, brief: Any) -> None:
        """Like the offline policy, it learns the agent's role and context from the run brief
        (kept in ``RolePlay.briefs`` by role[@partition], for tests to check what the graph told it)."""
        from crash_runner import identify

        self.brief = brief
        with self.play.lock:
            self.play.briefs.setdefault(identify([], brief)[1], []).append(brief)

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kw):
        import time

        from crash_runner import identify

        role, key, first = identify(messages, self.brief)
        play = self.play
        with play.lock:
            play.calls[role] = play.calls.get(role, 0) + 1
            if role in play.slow:
                play.active += 1
                play.peak = max(play.peak, play.active)
        try:
            if role in play.slow and play.barrier is not None and first:
                play.barrier.wait()
            elif role in play.slow:
                time.sleep(play.delay)
            if role in play.failures:
                raise play.failures[role]
            action = play.next_action(role, key)
            if callable(action):  # an action that depends on what the graph told the agent
                action = action(self.brief)
            name, args = ("final_answer", {"answer": action[1]}) if action[0] == "final" else action[1:]
            call = ChatMessageToolCall(id=f"call_{uuid.uuid4().hex[:8]}", type="function",
                                       function=ChatMessageToolCallFunction(name=name, arguments=args))
            return ChatMessage(role=MessageRole.ASSISTANT, content=f"Thought: scripted {name}", tool_calls=[call])
        finally:
            if role in play.slow:
                with play.lock:
                    play.active -= 1


class RoleChatModel(OfflineChatModel):
    """The chat model face: structured decisions come from ``RolePlay.decisions`` by schema name;
    one with none scripted fails."""

    play: Any = None

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        from langchain_core.messages import AIMessage
        from langchain_core.outputs import ChatGeneration, ChatResult

        tools = [t.get("function", t) for t in kwargs.get("tools") or []]
        if len(tools) == 1:
            name = tools[0]["name"]
            with self.play.lock:
                queued = self.play.decisions.get(name)
                args = queued.pop(0) if queued else None
                if args is None:
                    self.play.unscripted.append(name)
                    raise AssertionError(f"no decision scripted for {name!r} (cast.decisions[{name!r}])")
            if isinstance(args, BaseException):  # a routing model that errors on this call
                raise args
            call = {"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "tool_call"}
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content="", tool_calls=[call]))])
        # every chat call relaygraph makes is one structured decision; anything else is unscripted
        with self.play.lock:
            self.play.unscripted.append(f"chat call with {len(tools)} tools")
        raise AssertionError(f"the cast scripts structured decisions only; got a chat call with {len(tools)} tools")


def cast_provider(play: RolePlay, name: str = "cast") -> Provider:
    """The provider that plays ``play``: its agents and its routing decisions."""
    return Provider(name, lambda s: RoleModel(play), lambda s: RoleChatModel(play=play),
                    lambda s: "scripted cast (test double)")


@pytest.fixture
def cast(monkeypatch: pytest.MonkeyPatch) -> Iterator[RolePlay]:
    """Register the ``cast`` provider: every agent call and routing decision scripted by role,
    nothing from the offline policy. Fails the test if a call was unscripted or a script unused."""
    play = RolePlay()
    register_provider(cast_provider(play))
    monkeypatch.setenv("RELAYGRAPH_MODEL", "cast")
    yield play
    assert not play.unscripted, f"calls with nothing scripted: {play.unscripted}"
    assert not play.leftovers(), f"scripted but never played: {play.leftovers()}"


# --- negotiation (graphs/negotiation.py) --------------------------------------------------------

NEGOTIATORS = ("strict", "balanced", "lenient")


def _suggested(brief: Any, tool: str) -> dict[str, Any]:
    """The value and rationale the agent's review tool returned (its artifacts)."""
    return next(c for c in brief.calls.values() if c.tool == tool).artifacts


def script_proposals(cast: RolePlay, *agents: str) -> None:
    """Each proposer (``"AGENT analyst"``) derives its opening threshold from the data with
    propose_threshold."""
    for agent in agents:
        cast.scripts[f"{agent} analyst"] = [lambda b: ("call", "propose_threshold", {"column": b.context["column"]}),
                                            ("final", "proposed")]


def script_concession(cast: RolePlay, agent: str, number: int) -> None:
    """The agent's turn in round ``number``: review the table, then state the suggested concession."""
    cast.scripts[f"{agent} negotiator, round {number}"] = [
        ("call", "review_positions", {}),
        lambda b: ("call", "propose_position", {"value": float(_suggested(b, "review_positions")["value"]),
                                                "rationale": _suggested(b, "review_positions")["rationale"]}),
        ("final", "conceded")]


def script_negotiation(cast: RolePlay, rounds: int, agents: tuple[str, ...] = NEGOTIATORS) -> None:
    """A whole negotiation, scripted: ``agents`` each propose from the data, then in each of
    ``rounds`` rounds every one concedes what review_positions suggests (the strict cast fails the
    test if the graph runs a round more or fewer)."""
    script_proposals(cast, *agents)
    for number in range(1, rounds + 1):
        for agent in agents:
            script_concession(cast, agent, number)


# --- reports (tools/report.py, tools/markdown.py) --------------------------------------------


def table_rows(markdown: str, first_header: str) -> list[list[str]]:
    """The cells (as rendered text) of the Markdown table whose first header is ``first_header``."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    tables: list[list[list[str]]] = []
    for token in tokens:
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            tables[-1].append([])
        elif token.type == "inline" and tables and tables[-1] and token.level >= 3:
            tables[-1][-1].append("".join(c.content for c in token.children or [] if c.type in ("text", "code_inline")))
    for table in tables:
        if table and table[0] and table[0][0] == first_header:
            return table
    raise AssertionError(f"no table headed {first_header!r} in:\n{markdown}")


def num(cell: str) -> float | None:
    return None if cell == "n/a" else float(cell.replace(",", "").rstrip("%"))

"""What ``pip install`` really puts on a machine: one import root and the saver's own wheel.

The repository root is the package ``relaygraph`` (setuptools ``package-dir``), so the wheels
are built from a copy of the checkout and their file lists checked: a sub-package missing from
``packages`` in pyproject.toml, a stray top-level name (``graphs``, ``tools``, ...) or a
``langgraph/__init__.py`` that would shadow langgraph itself all fail here. The editable
install is checked from a neutral working directory, where the checkout is not on ``sys.path``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow  # builds two wheels (~5 s)

#: Never part of a distribution (tests/ and bench/ have no __init__.py on purpose).
NOT_SOURCE = {".venv", "venv", ".git", "build", "dist", "tests", "bench", "persistence", "node_modules"}
FORMER_TOP_LEVEL = ["graphs", "nodes", "tools", "persistence", "runtime", "cli", "config",
                    "providers", "observability", "coordination"]


def _copy_sources(dst: Path) -> Path:
    """The checkout without virtualenvs, caches, databases and run outputs (builds write
    ``build/`` and ``*.egg-info`` next to the sources; the checkout stays untouched)."""
    ignore = shutil.ignore_patterns(".venv", "venv", ".git", "build", "dist", "*.egg-info", "__pycache__",
                                    "*.db*", "relaygraph-data", "relaygraph-out", ".langgraph_api",
                                    ".pytest_cache", ".mypy_cache", ".ruff_cache")
    shutil.copytree(REPO, dst, ignore=ignore)
    return dst


def _wheel(source: Path, outdir: Path) -> Path:
    """Build one wheel (no isolation: setuptools from this venv, no network)."""
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                           str(outdir), str(source)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = outdir.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The two wheels, built once for the module."""
    root = tmp_path_factory.mktemp("wheels")
    source = _copy_sources(root / "src")
    return {
        "relaygraph": _wheel(source, root / "relaygraph"),
        "saver": _wheel(source / "persistence", root / "saver"),
    }


@pytest.fixture(scope="module")
def wheels(built: dict[str, Path]) -> dict[str, list[str]]:
    """Each wheel's file list."""
    names = {}
    for name, wheel in built.items():
        with zipfile.ZipFile(wheel) as archive:
            names[name] = archive.namelist()
    return names


def _top_level(names: list[str]) -> set[str]:
    return {n.split("/")[0] for n in names if ".dist-info/" not in n}


def _source_packages() -> set[str]:
    """Every folder of the checkout that is a package, as the wheel path it must have."""
    found = set()
    for init in REPO.rglob("__init__.py"):
        rel = init.parent.relative_to(REPO)
        if rel.parts and rel.parts[0] in NOT_SOURCE | {p for p in rel.parts if p.startswith(".")}:
            continue
        found.add("/".join(("relaygraph", *rel.parts)))
    return found


def test_relaygraph_wheel_installs_one_top_level_name(wheels) -> None:
    assert _top_level(wheels["relaygraph"]) == {"relaygraph"}


def test_every_source_package_is_in_the_relaygraph_wheel(wheels) -> None:
    """A folder with an ``__init__.py`` that pyproject's ``packages`` forgets is caught here."""
    shipped = {n.rsplit("/", 1)[0] for n in wheels["relaygraph"] if n.endswith("/__init__.py")}
    assert "relaygraph/graphs" in shipped  # the scan below found the right tree
    missing = _source_packages() - shipped
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    for package in _source_packages():  # and the package's modules, not only its __init__
        folder = REPO.joinpath(*package.split("/")[1:])
        for module in folder.glob("*.py"):
            assert f"{package}/{module.name}" in wheels["relaygraph"]


def test_the_graph_registry_ships_as_package_data(wheels) -> None:
    assert "relaygraph/langgraph.json" in wheels["relaygraph"]


def test_saver_wheel_is_only_its_namespace_package(wheels) -> None:
    files = [n for n in wheels["saver"] if ".dist-info/" not in n]
    assert files and all(n.startswith("langgraph/checkpoint/sqlalchemy/") for n in files), files
    # langgraph and langgraph.checkpoint belong to langgraph itself: namespace packages here
    assert "langgraph/__init__.py" not in files and "langgraph/checkpoint/__init__.py" not in files
    assert "langgraph/checkpoint/sqlalchemy/saver.py" in files


def _neutral(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in this venv from a folder that has nothing of the checkout in it."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_editable_install_resolves_to_this_checkout(tmp_path: Path) -> None:
    proc = _neutral("import json, relaygraph, relaygraph.graphs, langgraph.checkpoint.sqlalchemy as s;"
                    "print(json.dumps([relaygraph.__file__, relaygraph.graphs.__file__, s.__file__]))",
                    tmp_path)
    assert proc.returncode == 0, proc.stderr
    package, graphs, saver = map(Path, json.loads(proc.stdout))
    assert package == REPO / "__init__.py"
    assert graphs == REPO / "graphs" / "__init__.py"
    assert saver == REPO / "persistence" / "langgraph" / "checkpoint" / "sqlalchemy" / "__init__.py"


def _pip_install_target(wheels: list[Path], target: Path) -> None:
    """``pip install --no-deps --target``: this venv's pip (a ``python -m venv`` venv, as CI
    makes), else uv's (a ``uv venv`` has no pip). Both wheels are pure Python, so either fits."""
    import importlib.util

    if importlib.util.find_spec("pip") is not None:
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    elif shutil.which("uv"):
        command = ["uv", "pip", "install", "-q", "--no-deps", "--no-index", "--python", sys.executable]
    else:
        pytest.fail("installing the wheels needs pip in this venv (python -m ensurepip) or uv on PATH")
    proc = subprocess.run([*command, "--target", str(target), *map(str, wheels)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_the_regular_wheels_install_and_import_from_their_files(built, tmp_path: Path) -> None:
    """The wheels as ``pip install`` puts them on a machine, not the editable install.

    Why this works next to the editable install: ``PYTHONPATH`` comes before site-packages on
    ``sys.path``, and setuptools' editable finders are appended *after* the path finder, so
    ``relaygraph`` and ``langgraph.checkpoint.sqlalchemy`` come from the target folder while
    their dependencies (langgraph itself, SQLAlchemy, ...) still come from this venv. The test
    asserts where each module was found, so a shadowing editable install cannot pass it."""
    import os

    target = tmp_path / "site"
    _pip_install_target([built["relaygraph"], built["saver"]], target)
    neutral = tmp_path / "elsewhere"
    neutral.mkdir()
    code = ("import json, relaygraph, relaygraph.graphs.sequential as g, langgraph.checkpoint.sqlalchemy as s,"
            " langgraph.graph as lg; from relaygraph.cli import registry;"
            " print(json.dumps({'files': [relaygraph.__file__, g.__file__, s.__file__], 'langgraph': lg.__file__,"
            " 'graphs': sorted(registry.graph_names()), 'compiled': type(g.graph).__name__}))")
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=neutral, capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout)
    for file in found["files"]:
        assert Path(file).is_relative_to(target), f"{file} is not the installed wheel's"
    assert not Path(found["langgraph"]).is_relative_to(target)  # langgraph itself: the venv's
    assert "sequential" in found["graphs"]  # langgraph.json shipped inside the package
    assert found["compiled"] == "CompiledStateGraph"


def test_sub_packages_are_not_importable_on_their_own(tmp_path: Path) -> None:
    """``import tools`` must find someone else's ``tools`` (or nothing), never ours."""
    proc = _neutral("import importlib.util, json; print(json.dumps({n: getattr(importlib.util.find_spec(n), "
                    f"'origin', None) for n in {FORMER_TOP_LEVEL!r}}}))", tmp_path)
    assert proc.returncode == 0, proc.stderr
    ours = {name: origin for name, origin in json.loads(proc.stdout).items()
            if origin and Path(origin).resolve().is_relative_to(REPO)}
    assert not ours


# --- importing is free of side effects ---------------------------------------------------------

#: Imports every module of the package by name, each on its own (an error is reported, not raised).
_IMPORT_ALL = """
import importlib, json, sys
failed = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
"""


def _modules() -> list[str]:
    """Every module of the installed package, found on disk (``__main__`` modules run, so not them)."""
    names = []
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO)
        if rel.parts[0] in NOT_SOURCE or rel.parts[0].startswith(".") or rel.name == "__main__.py":
            continue
        parts = ["relaygraph", *rel.with_suffix("").parts]
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert "relaygraph.graphs.sequential" in names and "relaygraph.cli.main" in names
    return names


def _import_all(tmp_path: Path, env: dict[str, str], report: str) -> dict:
    """Import every module in a fresh interpreter with ``env`` set; ``report`` prints JSON."""
    import os

    proc = subprocess.run([sys.executable, "-c", _IMPORT_ALL + report, *_modules()], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_importing_configures_no_tracing_even_when_the_environment_asks(tmp_path: Path) -> None:
    found = _import_all(tmp_path, {"OTEL_TRACES_EXPORTER": "console", "RELAYGRAPH_TRACE_STORE": "false"}, """
from opentelemetry import trace
from relaygraph.observability import tracing
print(json.dumps({"failed": failed, "enabled": tracing.enabled(),
                  "provider": type(trace.get_tracer_provider()).__name__}))
""")
    assert found["failed"] == {}
    assert found["enabled"] is False
    assert found["provider"] == "ProxyTracerProvider"  # nothing installed a real one


def test_importing_leaves_matplotlib_backend_alone(tmp_path: Path) -> None:
    """The tools draw on an Agg canvas of their own; the process keeps the backend it chose."""
    found = _import_all(tmp_path, {"MPLBACKEND": "svg"}, """
import matplotlib
print(json.dumps({"failed": failed, "backend": matplotlib.rcParams["backend"],
                  "pyplot": "matplotlib.pyplot" in sys.modules}))
""")
    assert found["failed"] == {}
    assert found["backend"] == "svg"
    assert found["pyplot"] is False  # pyplot's global figure manager is not ours to start


def test_importing_reads_no_settings(tmp_path: Path) -> None:
    """Settings are a run's to decide (environment + ``configurable``), so importing reads none:
    with every numeric setting invalid, each module still imports."""
    invalid = {f"RELAYGRAPH_{name}": "not-a-number" for name in
               ("MAX_STEPS", "MAX_RETRIES", "OBSERVATION_CHARS", "TEMPERATURE")}
    found = _import_all(tmp_path, invalid, 'print(json.dumps({"failed": failed}))\n')
    assert found["failed"] == {}


#: A user's own graph (one node calling a LangChain chat model) run after importing a relaygraph
#: graph; then the same graph marked as relaygraph's, to show the hook is live and the mark decides.
_FOREIGN_GRAPH = """
import json, sys
import relaygraph.graphs.sequential
from typing import TypedDict
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import START, StateGraph
from opentelemetry import trace
from relaygraph.observability import instrument_langchain, tracing

class State(TypedDict):
    answer: str

model = GenericFakeChatModel(messages=iter([AIMessage("mine"), AIMessage("ours")]))
builder = StateGraph(State)
builder.add_node("inc", lambda state: {"answer": model.invoke("hi").content})
builder.add_edge(START, "inc")
builder.compile().invoke({"answer": ""})
foreign = {"provider": type(trace.get_tracer_provider()).__name__, "enabled": tracing.enabled(),
           "runs": len(instrument_langchain._handler._runs)}
print("--- relaygraph's run ---", flush=True)
instrument_langchain.instrumented(builder.compile()).invoke({"answer": ""})
marked = {"provider": type(trace.get_tracer_provider()).__name__, "enabled": tracing.enabled()}
tracing.shutdown()
sys.stdout.flush()
print(json.dumps({"foreign": foreign, "marked": marked}))
"""


def test_importing_a_graph_leaves_the_users_own_graphs_untraced(tmp_path: Path) -> None:
    """The LangChain hook that traces relaygraph's graphs sees every run in the process: a user's
    own graph (and its chat model) must get no span and must not set up a TracerProvider."""
    import os

    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "RELAYGRAPH_TRACE_STORE": "false"}
    proc = subprocess.run([sys.executable, "-c", _FOREIGN_GRAPH], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, _, after = proc.stdout.partition("--- relaygraph's run ---")
    found = json.loads(after.strip().splitlines()[-1])
    assert found["foreign"] == {"provider": "ProxyTracerProvider", "enabled": False, "runs": 0}
    assert '"name"' not in before  # the console exporter printed no span for the user's graph
    # The same graph marked as relaygraph's is traced from the same environment (the hook is live).
    assert found["marked"] == {"provider": "TracerProvider", "enabled": True}
    assert '"name": "node inc"' in after and '"name": "chat ' in after

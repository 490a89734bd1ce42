"""Each graph declares its ``--param`` keys; bad ones are one line and exit 2 before any work,
and the nodes refuse the same values from Python callers instead of using a default (issue 10 §4)."""

from __future__ import annotations

import importlib
import json

import pytest
from conftest import REPO
from hypothesis import given
from hypothesis import strategies as st
from relaygraph.cli.main import app
from relaygraph.nodes.params import ParamError, RunParams, describe, validate_params
from typer.testing import CliRunner

GRAPHS = sorted(json.loads((REPO / "langgraph.json").read_text())["graphs"])
cli = CliRunner()


def params_of(graph: str) -> type[RunParams]:
    return importlib.import_module(f"relaygraph.graphs.{graph}").PARAMS


@pytest.mark.parametrize("graph", GRAPHS)
def test_every_graph_declares_its_params_on_the_shared_base(graph: str) -> None:
    schema = params_of(graph)
    assert issubclass(schema, RunParams)
    assert set(RunParams.model_fields) <= set(describe(schema))


@pytest.mark.parametrize(("graph", "param", "says"), [
    ("parallel", "partitions=0", "partitions=0"),
    ("parallel", "partitions=65", "from 1 to 64"),
    ("parallel", "specialists=validator,astrologer", "validator, profiler, segmenter, scorer"),
    ("parallel", "partitoins=2", "partitoins is not a parameter"),
    ("hierarchical", "max_depth=x", "valid integer"),
    ("hierarchical", "max_fanout=0", "max_fanout=0"),
    ("handoff", "max_handoffs=-1", "max_handoffs=-1"),
    ("sequential", "max_steps=500", "from 1 to 100"),
    ("sequential", "specialists=scorer", "specialists is not a parameter"),
    ("sequential", "thread_id=x", "thread_id"),
])
def test_a_bad_param_is_one_line_exit_2_and_no_work(graph, param, says, isolated_env) -> None:
    result = cli.invoke(app, ["run", graph, "--param", param, "--thread-id", "p1"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], result.output
    assert not (isolated_env["out"] / "p1").exists()  # nothing ran, nothing was staged
    assert not isolated_env["db"].exists()  # not even the checkpoint database was opened


@given(st.integers(min_value=-10**6, max_value=10**6))
def test_partitions_are_accepted_exactly_in_their_declared_range(n: int) -> None:
    schema = params_of("parallel")
    if 1 <= n <= 64:
        assert validate_params(schema, {"partitions": n}) == {"partitions": n}
    else:
        with pytest.raises(ParamError, match=f"partitions={n}"):
            validate_params(schema, {"partitions": n})


def test_specialists_accept_a_comma_list_and_keep_its_order() -> None:
    assert validate_params(params_of("parallel"), {"specialists": "scorer, validator"}) == {
        "specialists": ["scorer", "validator"]}


def test_python_callers_get_the_same_refusal_instead_of_a_silent_default(isolated_env) -> None:
    """``partitions=0`` once quietly became 1 inside the graph."""
    from relaygraph.graphs.parallel import graph

    with pytest.raises(Exception, match="greater than or equal to 1"):
        graph.invoke({"task": "Clean, then validate."},
                     {"configurable": {"thread_id": "py", "partitions": 0, "specialists": ["validator"]}})


# --- a bad --param is refused before the heavy imports (relaygraph.cli.entry) -----------------------

HEAVY = ("langgraph", "smolagents", "langchain", "langchain_core", "pandas", "matplotlib")


@pytest.mark.parametrize("param", ["fail=nonsense", "bogus=1", "sections=appendix"])
def test_a_bad_param_exits_2_with_one_line_before_any_heavy_import(param, isolated_env) -> None:
    """``python -X importtime`` lists every module the child imported: none of LangGraph,
    smolagents, langchain, pandas or matplotlib before the one-line refusal."""
    import os
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-X", "importtime", "-m", "relaygraph", "run", "planned",
                            "--param", param, "--thread-id", "p1"],
                           capture_output=True, text=True, cwd=REPO, env=dict(os.environ), timeout=300)
    assert child.returncode == 2, child.stderr[-2000:]
    said = [line for line in child.stderr.splitlines() if line.strip() and not line.startswith("import time:")]
    assert len(said) == 1 and said[0].startswith("error: --param "), said
    assert param.split("=")[0] in said[0]
    imported = {line.split("|")[-1].strip() for line in child.stderr.splitlines() if line.startswith("import time:")}
    assert "relaygraph.cli.entry" in imported and "relaygraph.cli.main" not in imported
    assert not {m for m in imported if m.split(".")[0] in HEAVY}
    assert not isolated_env["db"].exists()


@pytest.mark.parametrize("graph", sorted(__import__("relaygraph.cli.params", fromlist=["x"]).LIGHT_SCHEMAS))
def test_each_light_schema_is_its_graph_s_params(graph: str) -> None:
    """The light catalog cannot drift from the graphs: each entry is the graph's own PARAMS."""
    from relaygraph.cli.params import light_schema

    assert light_schema(graph) is params_of(graph)


def test_the_early_reader_knows_every_option_of_run() -> None:
    """What ``relaygraph.cli.entry`` skips over is exactly ``run``'s options: a new option that
    takes a value cannot be mistaken for the graph name."""
    import typer.main
    from relaygraph.cli.entry import RUN_FLAGS, RUN_VALUE_OPTIONS

    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    options = [p for p in command.params if p.param_type_name == "option"]
    assert {o for p in options if not p.is_flag for o in p.opts} == RUN_VALUE_OPTIONS
    assert {o for p in options if p.is_flag for o in p.opts} == RUN_FLAGS | {"--debug"}


@pytest.mark.parametrize(("argv", "found"), [
    (["run", "planned", "--param", "fail=x"], ("planned", ["fail=x"])),
    (["run", "--data", "d.csv", "planned", "--param=learn=no", "--json"], ("planned", ["learn=no"])),
    (["run", "planned"], None),  # no params: nothing to check early
    (["run", "planned", "--param", "fail=x", "--help"], None),  # left to the full CLI
    (["run", "planned", "--param", "fail=x", "--debug"], None),  # a traceback is wanted
    (["run", "planned", "extra", "--param", "fail=x"], None),
    (["resume", "t1"], None),
])
def test_the_early_reader_takes_only_command_lines_it_fully_understands(argv, found) -> None:
    from relaygraph.cli.entry import run_params

    assert run_params(argv) == found


def test_good_params_and_graphs_without_a_light_schema_go_on_to_the_full_cli() -> None:
    from relaygraph.cli.entry import precheck

    assert precheck(["run", "planned", "--param", "fail=trends:transient", "--param", "learn=false"]) is None
    assert precheck(["run", "parallel", "--param", "partitions=0"]) is None  # checked by the full CLI
    assert precheck(["run", "planned", "--param", "dataset=../x.csv"]) is None  # the sandbox check says more

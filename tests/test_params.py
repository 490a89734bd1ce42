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

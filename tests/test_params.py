"""Each graph declares its ``--param`` keys; bad ones are one line and exit 2 before any work,
and the nodes refuse the same values from Python callers instead of using a default (issue 10 §4)."""

from __future__ import annotations

import importlib
import json
import uuid
from typing import Any

import pytest
from conftest import REPO, Script, ScriptedModel
from hypothesis import given
from hypothesis import strategies as st
from relaygraph.cli.main import app
from relaygraph.config.settings import OVERRIDABLE, ProcessSetting, Settings
from relaygraph.graphs.patterns import sequential_team
from relaygraph.nodes.agent import AgentSpec
from relaygraph.nodes.params import ParamError, RunParams, describe, validate_params
from relaygraph.providers import Provider, register_provider
from relaygraph.providers.offline import OfflineChatModel
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
    ("sequential", "trace_content=true", "trace_content is not a parameter"),  # the process's setting
    ("sequential", "observation_chars=50", "greater than or equal to 200"),
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



def test_a_refusal_names_the_key_and_value_once() -> None:
    """A validator whose own message starts with ``fail='nonsense':`` is not prefixed with it again."""
    with pytest.raises(ParamError) as refused:
        validate_params(params_of("planned"), {"fail": "nonsense"})
    assert str(refused.value).startswith("--param fail='nonsense': expected TASK:CLASS")
    assert str(refused.value).count("fail='nonsense'") == 1

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


def test_the_parallel_schema_offers_exactly_the_graph_s_specialists() -> None:
    from relaygraph.graphs.parallel import SPECIALISTS
    from relaygraph.nodes.team_params import PARALLEL_SPECIALISTS

    assert tuple(SPECIALISTS) == PARALLEL_SPECIALISTS


def test_the_consensus_schema_offers_exactly_the_graph_s_questions() -> None:
    from relaygraph.nodes.consensus import QUESTIONS
    from relaygraph.nodes.team_params import CONSENSUS_QUESTIONS

    assert tuple(QUESTIONS) == CONSENSUS_QUESTIONS


@pytest.mark.parametrize(("graph", "param"), [("parallel", "partitions=0"), ("hierarchical", "max_depth=x"),
                                              ("handoff", "max_handoffs=0"), ("consensus", "voters=26"),
                                              ("consensus", "question=weather")])
def test_a_team_graph_s_bad_param_is_refused_before_any_heavy_import(graph, param, isolated_env) -> None:
    child, imported = _light_child("run", graph, "--param", param)
    said = [line for line in child.stderr.splitlines() if line.strip() and not line.startswith("import time:")]
    assert child.returncode == 2 and len(said) == 1 and said[0].startswith(f"error: --param {param.split('=')[0]}"), said
    assert "relaygraph.cli.main" not in imported and not {m for m in imported if m.split(".")[0] in HEAVY}


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
    (["run", "planned"], ("planned", [])),  # no params: the graph name is still checked early
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
    assert precheck(["run", "auction", "--param", "auction=nonsense"]) is None  # checked by the full CLI
    assert precheck(["run", "planned", "--param", "dataset=../x.csv"]) is None  # the sandbox check says more


# --- settings a run may set, and the ones only the process may set ------------------------------


def _one_agent_run(script: Script, configurable: dict[str, Any]) -> tuple[list[float], dict[str, Any]]:
    """A one-agent team that profiles the sample; returns the temperatures its model was built
    with and the final state."""
    temperatures: list[float] = []

    def agent_model(settings: Settings) -> ScriptedModel:
        temperatures.append(settings.temperature)
        return ScriptedModel(script)

    register_provider(Provider("scripted", agent_model, lambda s: OfflineChatModel(), lambda s: "scripted"))
    script.play(("call", "profile_dataset", {"dataset": "sample_sales.csv"}), ("final", "profiled"))
    spec = AgentSpec(name="extract", role="extractor", instructions="Profile the dataset.",
                     tools=("profile_dataset",))
    graph = sequential_team([spec]).compile()
    state = graph.invoke({"task": "Profile the dataset."},
                         {"configurable": {"thread_id": f"s-{uuid.uuid4().hex[:6]}", **configurable}})
    return temperatures, state


def test_temperature_in_configurable_reaches_the_model_of_that_run(script, sample_path) -> None:
    assert _one_agent_run(script, {})[0] == [0.0]  # the settings' default
    assert _one_agent_run(script, {"temperature": 0.9})[0] == [0.9]


def _read(messages: list[Any]) -> str:
    """The text of the messages a model was given."""
    parts = [m.content if isinstance(m.content, list) else [{"text": m.content or ""}] for m in messages]
    return "\n".join(str(p.get("text", "")) for part in parts for p in part)


def test_observation_chars_in_configurable_cut_what_the_model_reads_in_that_run(script, sample_path) -> None:
    """The sample's profile is longer than 200 characters: the run that asks reads 200 of them."""
    whole = _one_agent_run(script, {})[1]["steps"][0]["observation"]
    cut = _one_agent_run(script, {"observation_chars": 200})[1]["steps"][0]["observation"]
    kept = cut.partition("… [truncated")[0]
    assert len(kept) <= 200 < len(whole.partition("… [truncated")[0]) and whole.startswith(kept)
    read = _read(script.seen[-1])  # the model's second call: it read the cut observation only
    assert cut in read and whole[len(kept):len(kept) + 60] not in read


@pytest.mark.parametrize(("key", "value", "variable"), [
    ("trace_content", True, "RELAYGRAPH_TRACE_CONTENT"),
    ("model_prices", {"m": {"input": 1, "output": 1}}, "RELAYGRAPH_MODEL_PRICES"),
    ("openai_base_url", "http://elsewhere.example/v1", "OPENAI_BASE_URL"),
    ("otel_traces_exporter", "console", "OTEL_TRACES_EXPORTER"),
])
def test_a_setting_only_the_process_may_set_is_refused_in_one_line_before_any_work(
        script, sample_path, key, value, variable) -> None:
    from relaygraph.graphs.sequential import graph

    with pytest.raises(ProcessSetting) as refused:
        graph.invoke({"task": "Profile the dataset."}, {"configurable": {"thread_id": "p", key: value}})
    message = str(refused.value)
    assert "\n" not in message and f"configurable.{key} cannot be set per run" in message and variable in message
    assert script.seen == []  # no agent was asked anything


def test_every_per_run_setting_is_a_param_of_every_graph() -> None:
    """What ``configurable`` may set (``OVERRIDABLE``) is what the CLI's --param accepts."""
    assert set(OVERRIDABLE) <= set(RunParams.model_fields)

# --- the command table is light (relaygraph.cli.entry.LazyGroup) -------------------------------------


def _light_child(*argv: str) -> tuple[Any, set[str]]:
    """``python -X importtime -m relaygraph ARGV``: the finished child and the modules it imported."""
    import os
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-X", "importtime", "-m", "relaygraph", *argv],
                           capture_output=True, text=True, cwd=REPO, env=dict(os.environ), timeout=300)
    return child, {line.split("|")[-1].strip() for line in child.stderr.splitlines() if line.startswith("import time:")}


def test_help_lists_every_command_without_importing_the_full_cli() -> None:
    child, imported = _light_child("--help")
    assert child.returncode == 0, child.stderr[-2000:]
    from relaygraph.cli.entry import COMMANDS

    assert all(name in child.stdout for name in COMMANDS)
    assert "relaygraph.cli.main" not in imported and not {m for m in imported if m.split(".")[0] in HEAVY}


@pytest.mark.parametrize(("argv", "says"), [
    (["run", "nosuchgraph"], "error: Unknown graph 'nosuchgraph'; available: "),
    (["run", "nosuchgraph", "--param", "partitions=2"], "error: Unknown graph 'nosuchgraph'"),
])
def test_an_unknown_graph_is_one_line_exit_2_before_any_heavy_import(argv, says, isolated_env) -> None:
    child, imported = _light_child(*argv)
    said = [line for line in child.stderr.splitlines() if line.strip() and not line.startswith("import time:")]
    assert child.returncode == 2 and len(said) == 1 and said[0].startswith(says), said
    assert "relaygraph.cli.main" not in imported and not {m for m in imported if m.split(".")[0] in HEAVY}


def test_the_light_command_table_is_the_full_cli_s() -> None:
    """Names, order and short help of :data:`COMMANDS` are the full CLI's, so the light
    ``--help`` cannot drift from what the commands say of themselves."""
    import typer.main
    from relaygraph.cli.entry import COMMANDS, HELP

    group = typer.main.get_group(app)
    assert {name: group.commands[name].get_short_help_str(limit=500) for name in group.list_commands(None)} == COMMANDS  # type: ignore[arg-type]
    assert group.help == HELP


def test_the_light_group_runs_the_full_cli_s_commands(capsys) -> None:
    from relaygraph.cli.entry import cli as light_cli

    with pytest.raises(SystemExit) as shown:
        light_cli().main(["plan", "--help"], prog_name="relaygraph")
    assert shown.value.code == 0 and "Mermaid" in capsys.readouterr().out
    with pytest.raises(SystemExit) as wrong:
        light_cli().main(["nosuch"], prog_name="relaygraph")
    assert wrong.value.code == 2 and "No such command 'nosuch'" in capsys.readouterr().err

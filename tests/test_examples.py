"""Build your own team (issue 10 §6): agents from YAML/TOML, your own tools, the pattern
builders, your own result fields — and the weather example, run from Python and served by
``langgraph dev`` from its own langgraph.json."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from conftest import REPO, running_langgraph_dev
from relaygraph.graphs.patterns import parallel_team, sequential_team
from relaygraph.nodes.contracts import AgentSpec
from relaygraph.nodes.specs import SpecFileError, load_agents
from relaygraph.tools import build_tools, known_tools, register_tool, unregister_tool
from smolagents import tool

EXAMPLE = REPO / "examples" / "weather_team"


def load_example():
    spec = importlib.util.spec_from_file_location("weather_team", EXAMPLE / "team.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_data(data_dir: Path) -> pd.DataFrame:
    sys.path.insert(0, str(EXAMPLE))
    try:
        from make_data import readings
    finally:
        sys.path.remove(str(EXAMPLE))
    frame = readings()
    data_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(data_dir / "weather.csv", index=False)
    return frame


@tool
def wind_chill(temperature_c: float, wind_kmh: float) -> str:
    """Wind chill (°C) from air temperature and wind speed (Environment Canada formula).

    Args:
        temperature_c: air temperature in °C
        wind_kmh: wind speed in km/h
    """
    chill = 13.12 + 0.6215 * temperature_c - 11.37 * wind_kmh**0.16 + 0.3965 * temperature_c * wind_kmh**0.16
    return f"{chill:.1f}"


def test_a_registered_function_tool_is_nameable_and_fresh_per_run(workspace) -> None:
    assert register_tool(wind_chill) == "wind_chill"
    assert "wind_chill" in known_tools()
    spec = AgentSpec(name="chill", role="r", instructions="i", tools=("wind_chill", "profile_dataset"))
    first, second = (build_tools(list(spec.tools), workspace)[0] for _ in range(2))
    assert first is not second and first is not wind_chill  # runs never share an instance
    assert first(temperature_c=-10.0, wind_kmh=30.0) == "-19.5"  # Environment Canada's table
    with pytest.raises(ValueError, match="already registered"):
        register_tool(wind_chill)
    unregister_tool("wind_chill")
    with pytest.raises(ValueError, match="unknown tool"):
        AgentSpec(name="chill", role="r", instructions="i", tools=("wind_chill",))


def test_agents_load_the_same_from_yaml_and_toml(tmp_path) -> None:
    load_example()  # registers heat_index, which agents.yaml names
    from_yaml = load_agents(EXAMPLE / "agents.yaml")
    toml = tmp_path / "agents.toml"
    toml.write_text("".join(
        f'[[agents]]\nname = "{a.name}"\nrole = "{a.role}"\ninstructions = "{a.instructions}"\n'
        f'tools = [{", ".join(repr(t).replace(chr(39), chr(34)) for t in a.tools)}]\n\n' for a in from_yaml))
    assert load_agents(toml) == from_yaml
    assert [a.name for a in from_yaml] == ["inspect", "clean", "heat", "report"]


@pytest.mark.parametrize(("text", "says"), [
    ("agents:\n  - name: x\n    role: r\n    instructions: i\n    tools: [no_such_tool]\n", "agent x: tools"),
    ("agents:\n  - name: x\n    role: r\n    instructions: i\n    tools: []\n    colour: red\n", "colour"),
    ("agents: []\n", "non-empty 'agents' list"),
    ("agents: [\n", "Cannot read agents file"),
])
def test_a_bad_agents_file_names_the_problem(tmp_path, text, says) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(text)
    with pytest.raises(SpecFileError, match=says):
        load_agents(path)


def test_patterns_refuse_teams_they_cannot_build() -> None:
    spec = AgentSpec(name="finalize", role="r", instructions="i", tools=("profile_dataset",))
    with pytest.raises(ValueError, match="node names of the pattern"):
        sequential_team([spec])
    twin = AgentSpec(name="a", role="r", instructions="i", tools=("profile_dataset",))
    with pytest.raises(ValueError, match="repeated: a"):
        parallel_team([twin, twin])
    with pytest.raises(ValueError, match="at least one agent"):
        sequential_team([])


def _sequential(fields: Any) -> Any:
    return sequential_team([AgentSpec(name="a", role="r", instructions="i", tools=())], result_fields=fields)


def _auction(fields: Any) -> Any:
    from relaygraph.coordination.registry import Capability
    from relaygraph.graphs.patterns import auction_team

    bidder = AgentSpec(name="ann", role="r", instructions="i", tools=(),
                       capabilities=(Capability(name="validation", version="1.0"),))
    return auction_team([bidder, bidder.model_copy(update={"name": "bob"})], result_fields=fields)


@pytest.mark.parametrize(("build", "base"), [(_sequential, "RunResult"), (_auction, "AuctionResult")])
def test_result_fields_without_a_result_schema_are_refused_when_the_team_is_built(build, base) -> None:
    # one rule for every builder: neither dropped (sequential did) nor merged unvalidated (auction did)
    with pytest.raises(ValueError, match=f"result_fields needs a result_schema: declare .* subclass of {base} "):
        build(lambda state: {"extra_field": 42})
    assert "finalize" in build(None).nodes


@pytest.mark.slow
def test_the_weather_team_reports_heat_stress_computed_from_the_data(isolated_env, monkeypatch) -> None:
    raw = example_data(isolated_env["data"])
    monkeypatch.setenv("RELAYGRAPH_DATASET", "weather.csv")
    team = load_example()
    state = team.graph.invoke({"task": team.DEFAULT_TASK}, {"configurable": {"thread_id": "wx"}})
    result = state["result"]
    assert result["status"] == "completed", result["errors"]
    assert "no LLM" in result["provider"]
    heat = result["heat"]  # the team's own result field
    clean = raw.drop_duplicates()
    usable = clean.dropna(subset=["temperature_c", "humidity_pct"])
    assert (heat["readings"], heat["skipped"]) == (len(usable), len(clean) - len(usable))
    assert sum(heat["bands"].values()) <= heat["readings"]
    assert (isolated_env["out"] / "wx" / "report.md").is_file()


def test_heat_index_matches_the_nws_table() -> None:
    team = load_example()
    heat_index_c = sys.modules[team.HeatIndexTool.__module__].heat_index_c
    # NWS heat index chart: 90 °F at 60 % → 100 °F; 100 °F at 40 % → 109 °F; 80 °F at 40 % → 80 °F
    temps_f, rh, expected_f = [90, 100, 80], [60, 40, 40], [100, 109, 80]
    got = heat_index_c(pd.Series([(t - 32) * 5 / 9 for t in temps_f]), pd.Series(rh, dtype=float))
    assert [round(c * 9 / 5 + 32) for c in got] == pytest.approx(expected_f, abs=1)


@pytest.mark.slow
def test_langgraph_dev_serves_the_example_from_its_own_langgraph_json(tmp_path) -> None:
    """As a user runs it: ``langgraph dev`` in the example's folder (a copy, for the state it writes)."""
    for name in ("langgraph.json", "team.py", "tools.py", "agents.yaml"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    raw = example_data(tmp_path / "data")
    with running_langgraph_dev(tmp_path, config=tmp_path / "langgraph.json") as url, \
            httpx.Client(base_url=url, timeout=300) as client:
        thread = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
        state = client.post(f"/threads/{thread}/runs/wait", json={
            "assistant_id": "weather", "input": {"task": "Profile, clean the readings, compute the heat index "
                                                          "and write a report."},
        }).raise_for_status().json()
        thread = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
        desk = client.post(f"/threads/{thread}/runs/wait", json={
            "assistant_id": "weather_desk", "input": {"task": "What is the heat index of the readings?"},
        }).raise_for_status().json()
    assert state["result"]["status"] == "completed", state.get("result")
    usable = raw.drop_duplicates().dropna(subset=["temperature_c", "humidity_pct"])
    assert state["result"]["heat"]["readings"] == len(usable)  # the same numbers as in-process
    # the same agents as a handoff team, served beside it from the same langgraph.json
    assert desk["result"]["status"] == "completed", desk.get("result")
    assert desk["result"]["handoffs"]["route"] == "desk → heat"
    assert desk["result"]["heat"]["readings"] == len(raw.dropna(subset=["temperature_c", "humidity_pct"]))


@pytest.mark.parametrize(("task", "route"), [
    ("What is the heat index of the readings?", "desk → heat"),
    ("Clean the readings, then compute the heat stress and write a report.", "desk → clean → heat → report"),
])
def test_the_weather_desk_hands_the_request_to_the_users_own_specialists(isolated_env, monkeypatch,
                                                                          task, route) -> None:
    """handoff_team on the user's agents (YAML + one in Python) and custom tool, own result field."""
    raw = example_data(isolated_env["data"])
    monkeypatch.setenv("RELAYGRAPH_DATASET", "weather.csv")
    team = load_example()
    result = team.desk.invoke({"task": task}, {"configurable": {"thread_id": "desk"}})["result"]
    assert result["status"] == "completed", result["errors"]
    assert result["handoffs"]["route"] == route and not result["handoffs"]["rolled_back"]
    usable = raw.drop_duplicates().dropna(subset=["temperature_c", "humidity_pct"]) if "clean" in route \
        else raw.dropna(subset=["temperature_c", "humidity_pct"])
    assert result["heat"]["readings"] == len(usable)  # the team's own result field, from its own tool
    assert "heat_index: Heat index of" in result["answer"]


def test_coordination_builders_take_the_users_agents_and_refuse_teams_they_cannot_build() -> None:
    from relaygraph.coordination.registry import Capability
    from relaygraph.graphs.patterns import auction_team, hierarchical_team, negotiation_team
    from relaygraph.nodes.negotiation import Stance

    bidder = AgentSpec(name="ann", role="r", instructions="i", tools=(),
                       capabilities=(Capability(name="validation", version="1.0"),))
    with pytest.raises(ValueError, match="at least two bidders"):
        auction_team([bidder])
    with pytest.raises(ValueError, match="declare no capabilities"):
        auction_team([bidder, AgentSpec(name="bob", role="r", instructions="i", tools=())])
    nodes = set(auction_team([bidder, bidder.model_copy(update={"name": "bob"})]).nodes)
    assert {"announce", "bid", "award", "execute", "verify", "settle", "finalize"} <= nodes
    strict = AgentSpec(name="strict", role="r", instructions="i", tools=())
    with pytest.raises(ValueError, match="at least two proposers"):
        negotiation_team({"strict": (strict, Stance(target=0.01, flexibility=0.5))})
    worker = AgentSpec(name="checker", role="r", instructions="i", tools=("validate_dataset",))
    with pytest.raises(ValueError, match="have no workers"):
        hierarchical_team({"qa": ("quality", ())})
    with pytest.raises(ValueError, match="unique"):
        hierarchical_team({"qa": ("quality", (worker,)), "qa2": ("more quality", (worker,))})


def test_a_hierarchical_team_of_the_users_own_workers_delegates_by_the_request(isolated_env, monkeypatch) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from relaygraph.graphs.patterns import hierarchical_team
    from relaygraph.nodes.contracts import HierarchicalResult

    class HeatHierarchy(HierarchicalResult):
        heat: dict | None = None

    example_data(isolated_env["data"])
    monkeypatch.setenv("RELAYGRAPH_DATASET", "weather.csv")
    team = load_example()
    heat = next(a for a in team.AGENTS if a.name == "heat")
    checker = AgentSpec(name="checker", role="readings checker", tools=("validate_dataset",),
                        instructions="Validate the readings for nulls and duplicates.")
    graph = hierarchical_team({"qa": ("quality of the readings: validation", (checker,)),
                               "stress": ("heat stress of the readings", (heat,))},
                              result_schema=HeatHierarchy, result_fields=team.heat_facts)
    state = graph.compile(checkpointer=InMemorySaver()).invoke(
        {"task": "What is the heat stress of the readings?"}, {"configurable": {"thread_id": "h"}})
    result = state["result"]
    assert result["delegation"]["teams"] == ["stress"] and result["status"] == "completed", result["errors"]
    assert result["heat"]["readings"] > 0  # the user's own result field

"""The weather team: agents from agents.yaml, one custom tool, two patterns.

    graph (sequential):  START ─► inspect ─► clean ─► heat ─► report ─► finalize ─► END
    desk  (handoff):     START ─► desk ─handoff_*─► clean ◄──► heat ◄──► report ─► finalize ─► END

The desk is the same agents as a handoff team: a triage agent (declared in Python) hands the
request to the specialist it asks for, who hands it on to the next one it asks for.

Run it as relaygraph's own graphs run: ``graph.invoke(...)`` from Python, or
``langgraph dev`` with this folder's langgraph.json.
"""

import sys
from pathlib import Path
from typing import Any

from langgraph.graph import StateGraph

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # langgraph dev loads this file by path; tools.py sits beside it

from relaygraph.graphs.patterns import handoff_team, sequential_team  # noqa: E402
from relaygraph.nodes.contracts import AgentSpec, HandoffResult, RunResult  # noqa: E402
from relaygraph.nodes.specs import load_agents  # noqa: E402
from relaygraph.tools import register_tool  # noqa: E402

from tools import HeatIndexTool  # noqa: E402

register_tool(HeatIndexTool, replace=True)
AGENTS = load_agents(HERE / "agents.yaml")
DEFAULT_TASK = ("Profile, validate and clean the weather readings, compute the heat index of every "
                "reading, and write a report.")


class WeatherResult(RunResult):
    """The shared result plus what this team adds: the heat-stress figures."""

    heat: dict[str, Any] | None = None


def heat_facts(state: dict[str, Any]) -> dict[str, Any]:
    """The heat tool's facts, straight from the agent's recorded step (typed, untruncated)."""
    steps = [s for s in state.get("steps") or [] if s.get("tool") == "heat_index" and not s.get("error")]
    return {"heat": steps[-1]["facts"] if steps else None}


def build_graph(approve_before: list[str] | None = None) -> StateGraph:
    return sequential_team(AGENTS, answer_from="report", result_schema=WeatherResult,
                           result_fields=heat_facts, approve_before=approve_before)


graph = build_graph().compile(name="weather")

DESK = AgentSpec(name="desk", role="weather desk", tools=(),
                 instructions="Read the request and hand it to the one specialist whose work it names first.")


class DeskResult(HandoffResult):
    """The handoff result (route, history) plus the same heat-stress figures."""

    heat: dict[str, Any] | None = None


def build_desk(approve_before: list[str] | None = None) -> StateGraph:
    by_name = {a.name: a for a in AGENTS}
    return handoff_team(DESK, [by_name["clean"], by_name["heat"], by_name["report"]],
                        scopes={"heat": "heat stress: the heat index of every reading and its danger bands"},
                        result_schema=DeskResult, result_fields=heat_facts, approve_before=approve_before)


desk = build_desk().compile(name="weather_desk")

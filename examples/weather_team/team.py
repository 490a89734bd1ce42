"""The weather team: agents from agents.yaml, one custom tool, the sequential pattern.

    START ─► inspect ─► clean ─► heat ─► report ─► finalize ─► END

Run it as relaygraph's own graphs run: ``graph.invoke(...)`` from Python, or
``langgraph dev`` with this folder's langgraph.json.
"""

import sys
from pathlib import Path
from typing import Any

from langgraph.graph import StateGraph

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # langgraph dev loads this file by path; tools.py sits beside it

from relaygraph.graphs.patterns import sequential_team  # noqa: E402
from relaygraph.nodes.contracts import RunResult  # noqa: E402
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

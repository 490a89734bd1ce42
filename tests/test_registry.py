"""The agent registry: versioned capabilities, finding agents, and ``relaygraph agents``."""

from __future__ import annotations

import pytest
from relaygraph.coordination.registry import Capability, Registry, Requirement, match_score
from relaygraph.nodes.agent import AgentSpec


def spec(name: str, *caps: tuple[str, str]) -> AgentSpec:
    return AgentSpec(name=name, role="analyst", instructions="Aggregate the data.", tools=("aggregate",),
                     capabilities=tuple(Capability(name=n, version=v) for n, v in caps))


def test_requirements_compare_versions_not_strings() -> None:
    need = Requirement(name="trend_analysis", min_version="1.9")
    assert need.satisfied_by([Capability(name="trend_analysis", version="1.10")])
    assert not need.satisfied_by([Capability(name="trend_analysis", version="1.2")])
    assert not need.satisfied_by([Capability(name="outliers", version="9")])
    assert match_score(Capability(name="x", version="2.0"), Requirement(name="x", min_version="1.0")) == 1.25
    with pytest.raises(ValueError, match="not a version"):
        Capability(name="x", version="latest")


def test_the_registry_finds_agents_by_every_requirement() -> None:
    registry = Registry([spec("b", ("aggregation", "2.0")), spec("a", ("aggregation", "1.0"), ("outliers", "1.1")),
                         spec("c")])
    assert [s.name for s in registry.find(Requirement(name="aggregation"))] == ["a", "b"]
    assert [s.name for s in registry.find(Requirement(name="aggregation", min_version="1.5"))] == ["b"]
    both = registry.find(Requirement(name="aggregation"), Requirement(name="outliers"))
    assert [s.name for s in both] == ["a"]
    with pytest.raises(ValueError, match="already registered"):
        registry.register(spec("a"))
    with pytest.raises(KeyError, match="registered: a, b, c"):
        registry.get("zed")


def test_agent_specs_without_capabilities_still_work() -> None:
    assert AgentSpec(name="x", role="r", instructions="i", tools=()).capabilities == ()


def test_relaygraph_agents_lists_every_graph_and_filters_by_capability() -> None:
    import json

    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    listed = CliRunner().invoke(app, ["agents", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert {"sequential", "parallel"} <= {r["graph"] for r in rows}
    assert any(r["name"] == "report" and r["tools"] == ["write_report"] for r in rows)
    capable = json.loads(CliRunner().invoke(app, ["agents", "--json", "--capability", "validation>=1.5"]).stdout)
    assert [(r["graph"], r["name"]) for r in capable] == [("auction", "ana")]
    assert {"auction", "negotiation"} <= {r["graph"] for r in rows}
    bad = CliRunner().invoke(app, ["agents", "--capability", "x>=latest"])
    assert bad.exit_code == 2 and "not a version" in bad.stderr

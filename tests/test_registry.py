"""The agent registry: versioned capabilities, finding agents, and ``relaygraph agents``."""

from __future__ import annotations

import json

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


def test_relaygraph_agents_shows_the_tools_each_graph_hands_its_agents() -> None:
    import json

    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    rows = {(r["graph"], r["name"]): r for r in json.loads(CliRunner().invoke(app, ["agents", "--json"]).stdout)}
    # Bidders declare no tools in their spec: the graph gives them bid tools and the methods they can execute.
    assert rows[("auction", "ana")]["tools"] == ["estimate_cost", "submit_bid", "profile_dataset", "validate_dataset"]
    assert rows[("auction", "ana")]["runtime_tools"] == rows[("auction", "ana")]["tools"]
    assert rows[("auction", "verifier")]["tools"] == ["check_acceptance"]
    assert rows[("negotiation", "strict")]["tools"] == ["propose_threshold", "review_positions", "propose_position"]
    assert rows[("negotiation", "mediator")]["tools"] == ["review_proposals", "arbitrate"]
    assert "handoff_analytics" in rows[("handoff", "triage")]["tools"]
    quality = rows[("handoff", "quality")]
    assert quality["tools"][:2] == ["validate_dataset", "clean_dataset"] and "handoff_quality" not in quality["tools"]
    assert not any(not r["tools"] for r in rows.values())  # every agent can call something


def test_the_agents_table_shows_every_tool_and_whole_capability_versions(monkeypatch) -> None:
    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    monkeypatch.setenv("COLUMNS", "100")
    shown = CliRunner().invoke(app, ["agents"])
    assert shown.exit_code == 0, shown.output
    assert "…" not in shown.stdout  # nothing cut short
    for text in ("segmentation@2.0", "outlier_detection@1.0", "verification@1.0", "estimate_cost *",
                 "check_acceptance *", "review_proposals *", "handoff_reporting *", "write_report"):
        assert text in shown.stdout, text
    assert "* handed to the agent by its graph while it runs" in shown.stdout


def test_an_unknown_capability_is_refused_with_the_known_ones() -> None:
    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    refused = CliRunner().invoke(app, ["agents", "--capability", "validaton"])
    assert refused.exit_code == 2 and refused.stdout == ""
    [line] = refused.stderr.strip().splitlines()
    assert "validaton" in line and "known capabilities: outlier_detection, profiling, scoring" in line
    known = CliRunner().invoke(app, ["agents", "--json", "--capability", "verification"])
    assert known.exit_code == 0 and '"verifier"' in known.stdout


@pytest.mark.parametrize("columns", [40, 60, 80, 100, 120, 160])
def test_the_agents_table_never_splits_a_capability_or_a_tool_at_any_width(monkeypatch, columns: int) -> None:
    """At 80 columns the table used to fold ``segmentation@1.0`` into ``segmentation@1.`` / ``0``."""
    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    rows = json.loads(CliRunner().invoke(app, ["agents", "--json"]).stdout)
    monkeypatch.setenv("COLUMNS", str(columns))
    shown = CliRunner().invoke(app, ["agents"])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    for row in rows:
        for token in (*row["capabilities"], *row["tools"]):
            assert any(token in line for line in lines), (columns, token)
    assert "…" not in shown.stdout

"""Declared column roles win over inference (issue 10 §1): CLI, configurable, Python.

Inference reads names and values and can be wrong: an additive ``balance_change`` reads like a
balance (a level), a numeric ``store`` like a measure. A user declares the role
(``--param roles=balance_change:additive,store:identifier``, ``configurable.roles``,
``Workspace(roles=...)`` or ``roles.declare``) and every number follows the declaration; the
profile and the report say the role was declared. Bad declarations are refused before any work.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import table_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relaygraph.cli.main import app
from relaygraph.nodes.params import ParamError, RunParams, validate_params
from relaygraph.tools import Workspace, build_tools, result_of
from relaygraph.tools.declared import ROLES, DeclaredRoleError, parse_roles
from relaygraph.tools.measures import breakdown, overall, trend
from relaygraph.tools.roles import declare, infer_roles, role_of
from typer.testing import CliRunner

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
cli = CliRunner()

#: Numeric columns whose names pull inference every way (level, additive, non-additive, id, none).
NUMERIC = ("balance_change", "store", "unit_price", "quantity", "temperature_c", "order_id", "x1", "close")
MEASURE_ROLES = ("additive", "non_additive", "level")
KEY_ROLES = ("identifier", "category", "text")


@st.composite
def declared_frames(draw: st.DrawFn) -> tuple[pd.DataFrame, dict[str, str]]:
    """A dated frame with some hint-named numeric columns and a text column, and declarations for
    a random subset: any role a column's values allow (measures only on numbers)."""
    n = draw(st.integers(2, 30))
    names = draw(st.lists(st.sampled_from(NUMERIC), min_size=1, max_size=4, unique=True))
    frame = pd.DataFrame({"day": (pd.Timestamp("2024-01-01") + pd.to_timedelta(
        draw(st.lists(st.integers(0, 90), min_size=n, max_size=n)), "D")).strftime("%Y-%m-%d"),
        "site": draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))})
    for name in names:
        frame[name] = draw(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=n, max_size=n))
    declared = {}
    for name in draw(st.lists(st.sampled_from(names), unique=True)):
        declared[name] = draw(st.sampled_from(MEASURE_ROLES + KEY_ROLES))
    if draw(st.booleans()):
        declared["site"] = draw(st.sampled_from(KEY_ROLES))
    return frame, declared


@PROPERTY
@given(declared_frames())
def test_declared_roles_always_win_and_say_so_while_the_rest_is_still_inferred(
        case: tuple[pd.DataFrame, dict[str, str]]) -> None:
    frame, declared = case
    inferred = infer_roles(frame.copy())
    roles = infer_roles(declare(frame, declared))
    for column, role in roles.items():
        if column in declared:
            assert role.role == declared[column] and role.declared and "declared by the user" in role.reason
        else:
            assert role == inferred[column] and not role.declared


@PROPERTY
@given(declared_frames())
def test_numbers_follow_the_declared_role(case: tuple[pd.DataFrame, dict[str, str]]) -> None:
    frame, declared = case
    declare(frame, declared)
    for column, role in declared.items():
        if role not in MEASURE_ROLES:
            continue
        headline, parts = overall(frame, column), breakdown(frame, "day", column)
        if role == "additive":  # summed, and the groups add up to the total
            assert headline["sum"] == pytest.approx(frame[column].sum(), abs=1e-6)
            assert sum(g["sum"] for g in parts.groups) == pytest.approx(headline["sum"], abs=1e-6)
        else:  # never summed
            assert "sum" not in headline and all("sum" not in g for g in parts.groups)
        monthly = trend(frame, "day", column, "month")
        assert monthly.rule == {"additive": "sum", "non_additive": "mean", "level": "last"}[role]
        if role == "additive":
            months = pd.to_datetime(frame["day"]).dt.to_period("M")
            assert monthly.series.sum() == pytest.approx(frame[column].groupby(months).sum().sum(), abs=1e-6)


@given(st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda s: s.strip() == s and "," not in s),
                       st.sampled_from(ROLES), min_size=1, max_size=4))
def test_the_cli_form_and_the_mapping_form_declare_the_same_roles(roles: dict[str, str]) -> None:
    text = ",".join(f"{column}:{role}" for column, role in roles.items())
    assert parse_roles(text) == parse_roles(roles) == roles
    assert validate_params(RunParams, {"roles": text}) == {"roles": roles}


def test_an_unknown_role_or_column_is_refused_with_what_exists() -> None:
    with pytest.raises(DeclaredRoleError, match="unknown role 'sum' for column 'x'; roles: identifier, category"):
        parse_roles("x:sum")
    with pytest.raises(ParamError, match=r"--param roles: .*COLUMN:ROLE"):
        validate_params(RunParams, {"roles": "balance_change"})
    frame = pd.DataFrame({"day": ["2024-01-01"], "amount": [1.0]})
    with pytest.raises(DeclaredRoleError, match="column 'amont', which the dataset does not have; columns: day, amount"):
        declare(frame, {"amont": "additive"})
    with pytest.raises(DeclaredRoleError, match="values such as '2024-01-01', not numbers; write 'day' as plain "
                                                "numbers"):  # what is in it, and what to do
        role_of(declare(frame, {"day": "additive"}), "day")
    undated = pd.DataFrame({"stock": [1.0, 2.0]})
    with pytest.raises(DeclaredRoleError, match="no date column"):
        role_of(declare(undated, {"stock": "level"}), "stock")


def test_a_declared_time_column_is_the_date_column_and_a_declared_key_is_never_one() -> None:
    frame = pd.DataFrame({"opened": ["2023-05-01", "2023-06-01", "2023-07-01"],
                          "counted": ["2024-01-31", "2024-02-29", "2024-03-31"], "amount": [1.0, 2.0, 4.0]})
    assert trend(frame, None, "amount").series.index.tolist() == ["2023-05", "2023-06", "2023-07"]
    declare(frame, {"counted": "time"})
    assert trend(frame, None, "amount").series.index.tolist() == ["2024-01", "2024-02", "2024-03"]
    declare(frame, {"opened": "category", "counted": "category"})
    with pytest.raises(ValueError, match="No date column"):
        trend(frame, None, "amount")


def test_a_numeric_store_declared_an_identifier_becomes_the_series_of_a_level() -> None:
    """A store number reads as a measure; declared an identifier, stock is totalled per store."""
    frame = pd.DataFrame({"date": ["2024-01-31", "2024-01-30", "2024-02-29", "2024-03-31", "2024-03-15"],
                          "store": [1, 2, 1, 1, 2], "stock_on_hand": [10.0, 20.0, 11.0, 12.0, 25.0]})
    assert role_of(frame, "store").is_measure and trend(frame, None, "stock_on_hand").series_by == []
    declare(frame, {"store": "identifier"})
    monthly = trend(frame, None, "stock_on_hand")
    assert monthly.series_by == ["store"] and monthly.series.to_dict() == {"2024-01": 30.0, "2024-02": 31.0,
                                                                           "2024-03": 37.0}


# --- through the tools (Workspace roles) and the report -------------------------------------------

def accounts(path: Path) -> pd.DataFrame:
    frame = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=60, freq="D").strftime("%Y-%m-%d"),
                          "branch": ["north", "south", "east"] * 20,
                          "balance_change": [float((i * 37) % 23 - 11) for i in range(60)]})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return frame


def test_tools_and_report_use_the_workspaces_declared_roles_and_say_so(isolated_env) -> None:
    raw = accounts(isolated_env["data"] / "accounts.csv")
    plain = Workspace(isolated_env["data"], isolated_env["out"], "plain")
    (aggregate,) = build_tools(["aggregate"], plain)
    assert result_of(aggregate(dataset="accounts.csv", metric="balance_change")).facts["role"] == "level"

    workspace = Workspace(isolated_env["data"], isolated_env["out"], "declared", roles="balance_change:additive")
    profile, aggregate, report = build_tools(["profile_dataset", "aggregate", "write_report"], workspace)
    facts = result_of(profile(dataset="accounts.csv")).facts
    assert facts["column_roles"]["balance_change"]["source"] == "declared"
    assert facts["column_roles"]["branch"]["source"] == "inferred" and facts["declared_roles"] == ["balance_change"]
    by_branch = result_of(aggregate(dataset="accounts.csv", metric="balance_change")).facts
    assert by_branch["role"] == "additive" and by_branch["total"] == raw["balance_change"].sum()
    assert {g["group"]: g["sum"] for g in by_branch["groups"]} == raw.groupby("branch")["balance_change"].sum().to_dict()
    text = Path(result_of(report(dataset="accounts.csv", metric="balance_change", group_by="branch")).facts["report"]
                ).read_text()
    assert "(additive: declared by the user (roles=balance\\_change:additive), not inferred)" in text
    assert table_rows(text, "branch")[0][2] == "balance_change (sum)"


def test_a_workspace_refuses_a_declaration_for_a_column_its_dataset_lacks(isolated_env) -> None:
    accounts(isolated_env["data"] / "accounts.csv")
    with pytest.raises(DeclaredRoleError, match="unknown role"):
        Workspace(isolated_env["data"], isolated_env["out"], "w", roles={"balance_change": "flow"})
    workspace = Workspace(isolated_env["data"], isolated_env["out"], "w", roles={"balance": "additive"})
    (profile,) = build_tools(["profile_dataset"], workspace)
    with pytest.raises(DeclaredRoleError, match="accounts.csv does not have; columns: date, branch, balance_change"):
        profile(dataset="accounts.csv")


# --- configurable (Python, langgraph dev) ---------------------------------------------------------

def test_configurable_roles_reach_every_tool_of_a_graph_run(isolated_env, invoke_config, cast) -> None:
    from relaygraph.graphs.sequential import graph

    def on_given(tool: str):  # the agent passes the file it was given, and no roles of its own
        return lambda brief: ("call", tool, {"dataset": brief.context["dataset"]})

    cast.scripts.update({
        "data extractor": [on_given("profile_dataset"), ("final", "profiled")],
        "data cleaner": [on_given("validate_dataset"), on_given("clean_dataset"), ("final", "cleaned")],
        "data analyst": [on_given("aggregate"), ("final", "aggregated")],
        "report writer": [on_given("write_report"), ("final", "written")],
    })
    raw = accounts(isolated_env["data"] / "accounts.csv")
    invoke_config["configurable"]["roles"] = {"balance_change": "additive"}
    state = graph.invoke({"task": "Report the balance changes.", "data": "accounts.csv"}, invoke_config)
    assert state["result"]["status"] != "failed", state["result"]
    profiled = next(s for s in state["steps"] if s["tool"] == "profile_dataset")
    assert profiled["facts"]["column_roles"]["balance_change"]["source"] == "declared"
    report = Path(state["result"]["artifacts"]["report"]).read_text()
    assert f"total {int(raw['balance_change'].sum()):,}" in report and "declared by the user" in report  # whole: an integer


def test_configurable_roles_naming_no_column_fail_the_run_saying_which(isolated_env, invoke_config, cast) -> None:
    """Nothing is scripted: no agent may be asked to work on a half-understood dataset."""
    from relaygraph.graphs.sequential import graph

    accounts(isolated_env["data"] / "accounts.csv")
    invoke_config["configurable"]["roles"] = "balance:additive"
    state = graph.invoke({"task": "Report.", "data": "accounts.csv"}, invoke_config)
    assert state["result"]["status"] == "failed"
    reasons = " ".join(e["reason"] for e in state["result"]["errors"])
    assert "roles declares column 'balance'" in reasons and "columns: date, branch, balance_change" in reasons
    assert not [s for s in state["steps"] if s["tool"]]  # no tool ran on a half-understood dataset


# --- CLI: validated before any work ---------------------------------------------------------------

@pytest.mark.parametrize(("param", "says"), [
    ("roles=balance:additive", "--param roles: roles declares column 'balance', which accounts.csv does not have; "
                               "columns: date, branch, balance_change."),
    ("roles=balance_change:flow", "--param roles: unknown role 'flow' for column 'balance_change'; roles: "
                                  "identifier, category, time, additive, non_additive, level, text."),
    ("roles=branch:additive", "holds"),
])
def test_a_bad_roles_param_is_one_line_exit_2_before_any_work(param, says, isolated_env, tmp_path) -> None:
    accounts(tmp_path / "accounts.csv")
    result = cli.invoke(app, ["run", "sequential", "--data", str(tmp_path / "accounts.csv"), "--param", param,
                              "--thread-id", "r1"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and says in " ".join(result.output.split()), result.output
    assert not (isolated_env["out"] / "r1").exists() and not isolated_env["db"].exists()


def test_the_cli_checks_roles_against_the_sample_when_no_data_is_given(isolated_env) -> None:
    result = cli.invoke(app, ["run", "sequential", "--param", "roles=balance_change:additive"])
    assert result.exit_code == 2 and "sample_sales.csv does not have" in " ".join(result.output.split())


def test_help_lists_the_roles_param(isolated_env) -> None:
    result = cli.invoke(app, ["graphs", "--json"])
    assert result.exit_code == 0 and "COLUMN:ROLE pairs" in result.output

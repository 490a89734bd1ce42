"""World-state facts from real observations, and the data-report planning domain.

The planner (:mod:`relaygraph.coordination.htn`) never guesses what the data looks like: the
facts it plans from are read off the structured observations of the ``profile_dataset`` and
``validate_dataset`` tools, run on the dataset the run works on *now* (raw, cleaned, …).
Facts that no tool observes — what the run has already done (``analysed``, ``reported``) and
how it scales (``partitions``) — are kept by the executor and merged in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relaygraph.coordination.htn import (
    CompoundTask,
    Condition,
    Domain,
    Fact,
    Method,
    PrimitiveTask,
    WorldState,
)

#: Facts the executor owns (not re-observed from data): progress and scale.
RUN_FACTS = ("analysed", "reported", "partitions", "validated")


def facts_from_observations(profile: Mapping[str, Any], validation: Mapping[str, Any]) -> WorldState:
    """Facts from ``profile_dataset`` and ``validate_dataset`` observations of one dataset.

    ``is_clean`` means what ``clean_dataset`` fixes: no duplicate rows, no out-of-range values,
    no type problems. Nulls are reported (``has_nulls``) but not cleaned away — dropping them is
    a choice the data's owner makes — so they do not make a dataset unclean.
    """
    nulls = sum(int(v) for v in (validation.get("nulls") or {}).values())
    duplicates = int(validation.get("duplicate_rows") or 0)
    out_of_range = sum(int(v) for v in (validation.get("out_of_range") or {}).values())
    type_issues = sum(int(v) for v in (validation.get("type_issues") or {}).values())
    roles = profile.get("roles") or {}
    # one month of dated rows is a date column with no trend in it: a data fact, planned around up
    # front like a file without dates, never a trends task that fails on it
    months = profile.get("date_months")
    return {
        "dataset": str(profile.get("dataset") or validation.get("dataset") or ""),
        "row_count": int(validation.get("rows", profile.get("rows", 0)) or 0),
        "has_nulls": nulls > 0,
        "has_duplicates": duplicates > 0,
        "has_out_of_range": out_of_range > 0,
        "is_clean": duplicates == 0 and out_of_range == 0 and type_issues == 0,
        "has_time_column": roles.get("date") is not None and (months is None or int(months) >= 2),
        "date_column": roles.get("date"),
        "metric_column": roles.get("metric"),
        **({"date_months": int(months)} if months is not None else {}),
        **_category_facts(profile),
    }


def _category_facts(profile: Mapping[str, Any]) -> WorldState:
    """Whether the data has a column to break figures down by, and which columns hold no value
    at all (the one a user meant as categories may be empty): every analysis method starts with
    a breakdown, so a file without one is refused up front, saying so."""
    roles = profile.get("roles") or {}
    if "categories" not in roles:
        return {}
    rows = int(profile.get("rows") or 0)
    empty = [str(c) for c, info in (profile.get("columns") or {}).items()
             if rows and int((info or {}).get("nulls") or 0) >= rows]
    return {"has_category_column": bool(roles.get("categories")),
            **({"empty_columns": ", ".join(empty)} if empty else {})}


def merge_facts(observed: Mapping[str, Fact], run: Mapping[str, Fact]) -> WorldState:
    """Observed facts plus the executor's own; run facts never override observations."""
    merged: WorldState = {"partitions": 1, "analysed": False, "reported": False, "validated": False}
    merged.update({k: v for k, v in run.items() if k in RUN_FACTS})
    merged.update(observed)
    return merged


def _c(fact: str, op: str = "==", value: Fact = True) -> Condition:
    return Condition(fact=fact, op=op, value=value)  # type: ignore[arg-type]


GOAL = "data_report"

#: The data-report domain: prepare (validate/clean) → analyse → report, each with alternatives.
DATA_DOMAIN = Domain(
    name="data_report",
    primitives=(
        PrimitiveTask(name="validate", agent="validator", tools=("validate_dataset",),
                      instructions="Validate the dataset: nulls, duplicate rows and keys, out-of-range values.",
                      preconditions=(_c("row_count", ">", 0),), effects={"validated": True},
                      duration_s=2.0, priority=3),
        PrimitiveTask(name="clean", agent="cleaner", tools=("clean_dataset",),
                      instructions="Clean the dataset and hand the cleaned file on.",
                      preconditions=(_c("row_count", ">", 0),),
                      effects={"is_clean": True, "has_duplicates": False, "has_out_of_range": False},
                      duration_s=3.0, priority=3),
        PrimitiveTask(name="aggregate", agent="analyst", tools=("aggregate",),
                      instructions="Aggregate the main metric by category.",
                      preconditions=(_c("is_clean"),), effects={"aggregated": True},
                      duration_s=2.0, priority=2),
        PrimitiveTask(name="trends", agent="analyst", tools=("detect_trends",),
                      instructions="Detect trends over time.",
                      preconditions=(_c("is_clean"), _c("has_time_column")), effects={"trends_found": True},
                      duration_s=2.0, priority=2),
        PrimitiveTask(name="outliers", agent="analyst", tools=("detect_outliers",),
                      instructions="Detect outliers in the numeric columns.",
                      preconditions=(_c("is_clean"),), effects={"analysed": True},
                      duration_s=2.0, priority=1),
        PrimitiveTask(name="report", agent="reporter", tools=("write_report",),
                      instructions="Write the report with a chart, including the team's findings as notes.",
                      preconditions=(_c("is_clean"), _c("analysed")), effects={"reported": True},
                      duration_s=3.0, priority=0),
    ),
    compounds=(
        CompoundTask(name=GOAL, description="a cleaned, analysed dataset with a written report"),
        CompoundTask(name="prepare", description="a clean dataset", priority=3),
        CompoundTask(name="analyse", description="breakdowns, trends and outliers", priority=2),
    ),
    methods=(
        Method(name="prepare_analyse_report", task=GOAL, subtasks=("prepare", "analyse", "report"),
               success_probability=0.95),
        Method(name="already_clean", task="prepare", preconditions=(_c("is_clean"),), subtasks=(),
               success_probability=1.0),
        Method(name="validate_and_clean", task="prepare", preconditions=(_c("is_clean", "==", False),),
               subtasks=("validate", "clean"), success_probability=0.9),
        Method(name="clean_only", task="prepare", preconditions=(_c("is_clean", "==", False),),
               subtasks=("clean",), success_probability=0.75),
        Method(name="already_analysed", task="analyse", preconditions=(_c("analysed"),), subtasks=(),
               success_probability=1.0),
        Method(name="time_series_analysis", task="analyse",
               preconditions=(_c("analysed", "==", False), _c("has_time_column"), _c("partitions", "<=", 1)),
               subtasks=("aggregate", "trends", "outliers"), success_probability=0.9),
        Method(name="cross_section_analysis", task="analyse",
               preconditions=(_c("analysed", "==", False), _c("partitions", "<=", 1)),
               subtasks=("aggregate", "outliers"), success_probability=0.8),
        Method(name="partitioned_analysis", task="analyse",
               preconditions=(_c("analysed", "==", False), _c("partitions", ">", 1)),
               subtasks=("aggregate", "outliers"), success_probability=0.85),
    ),
)

"""The state every relaygraph workflow shares, and the reducers that keep branches apart.

Every key that more than one node (or parallel branch) writes has a reducer: lists append,
dicts merge by key. That is what lets a fan-out write concurrently without LangGraph's
``InvalidUpdateError``, and what keeps each agent's ReAct steps in the checkpoint.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field, field_validator
from relaygraph.nodes.contracts import AgentStep, NodeProgress
from relaygraph.tools.workspace import dataset_name_problem

__all__ = ["AgentStep", "NodeProgress", "RunInput", "WorkflowState", "merge_dicts"]


def union_sorted(left: list[str] | None, right: list[str] | None) -> list[str]:
    """Reducer: the sorted union (a set that a checkpoint keeps and parallel branches share)."""
    return sorted({*(left or []), *(right or [])})


def merge_dicts(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: merge by key, right wins; nested dicts merge one level deeper.

    The nested merge is what lets parallel branches each add their own entry under a shared
    key (``context["findings"][agent]``) without overwriting each other's.
    """
    merged = dict(left or {})
    for key, value in (right or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


class WorkflowState(TypedDict, total=False):
    """Keys common to every graph. ``result`` and ``steps`` are the public result contract."""

    task: str
    data: str | None
    context: Annotated[dict[str, Any], merge_dicts]
    answers: Annotated[dict[str, str], merge_dicts]
    steps: Annotated[list[dict[str, Any]], operator.add]
    progress: Annotated[list[dict[str, Any]], operator.add]
    errors: Annotated[list[dict[str, Any]], operator.add]
    approvals: Annotated[list[dict[str, Any]], operator.add]  # human decisions (nodes/approval.py)
    gates: Annotated[list[str], union_sorted]  # nodes this thread asks approval for (nodes/approval.py)
    result: dict[str, Any]
    status: str


class RunInput(BaseModel):
    """What a caller may pass to start a run (validated at the CLI and API boundary)."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, description="What the team of agents should do.")
    data: str | None = Field(default=None, description="Dataset file inside the data directory.")
    context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _inside_data_dir(cls, value: str | None) -> str | None:
        """Python and ``langgraph dev`` callers get the CLI's sandbox rule before any node runs."""
        problem = dataset_name_problem(value)
        if problem:
            raise ValueError(f"data {problem}")
        return value

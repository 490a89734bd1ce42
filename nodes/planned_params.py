"""The planned graph's ``--param`` schema (:class:`PlannedParams`), apart from the graph.

Light on purpose: it imports pydantic, the planning domain and the report's section names, not
LangGraph, smolagents or pandas — so the CLI checks ``relaygraph run planned --param ...``
before any heavy import (:mod:`relaygraph.cli.entry`). ``relaygraph.graphs.planned`` declares
it as its ``PARAMS``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, field_validator
from relaygraph.coordination.replanning import parse_injections
from relaygraph.coordination.world import DATA_DOMAIN
from relaygraph.nodes.params import RunParams
from relaygraph.tools.sections import SECTIONS


class PlannedParams(RunParams):
    """``--param`` keys of the planned graph (see the module docstring)."""

    fail: str | None = Field(default=None, description="Inject failures: TASK:CLASS[xN], comma-separated.")
    retry_backoff_s: float | None = Field(default=None, ge=0, le=60)
    method_probabilities: str | None = Field(default=None, description="JSON object: method name -> success "
                                             "probability in [0, 1], overriding what the planner believes.")
    learn: bool | None = Field(default=None, description="Plan with what the experience store learned (default on).")
    learn_injected: bool | None = Field(default=None, description="Count this run's injected failures as "
                                        "evidence in the experience store (simulations, e.g. bench/learning.py); "
                                        "by default an injected failure teaches nothing.")
    date_column: str | None = Field(default=None, description="The date column the plan expects; a dataset "
                                    "where it is missing or renamed is a schema failure the run adapts to.")
    sections: str | None = Field(default=None, description="Report sections to write, comma-separated, of "
                                 f"{', '.join(SECTIONS)} (default all); each only if the executed plan did its analysis.")

    @field_validator("fail")
    @classmethod
    def _injections(cls, value: str | None) -> str | None:
        known = [t.name for t in DATA_DOMAIN.primitives]
        for injection in parse_injections(value):  # ValueError names the expected TASK:CLASS[xN] form
            if injection.task not in known:
                raise ValueError(f"unknown task {injection.task!r} in fail={value!r}; the domain's tasks are "
                                 f"{', '.join(known)}")
        return value

    @field_validator("sections")
    @classmethod
    def _sections(cls, value: str | None) -> str | None:
        if value is None:
            return None
        asked = [p.strip() for p in value.split(",") if p.strip()]
        unknown = [p for p in asked if p not in SECTIONS]
        if unknown or not asked:
            raise ValueError(f"unknown report section(s) {', '.join(unknown) or '(none given)'} in sections={value!r}; "
                             f"the sections are {', '.join(SECTIONS)}")
        return ",".join(asked)

    @field_validator("method_probabilities", mode="before")
    @classmethod
    def _probabilities(cls, value: Any) -> Any:
        return None if value is None else json.dumps(method_probabilities(value))


def method_probabilities(value: Any) -> dict[str, float]:
    """``method_probabilities`` (a JSON object, or a mapping) checked: known method names, each a
    probability in [0, 1]; ValueError saying which and what is allowed."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg} at char {exc.pos}); expected e.g. "
                             "'{\"partitioned_analysis\": 0.5}'") from None
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object of method name -> probability, e.g. '{\"partitioned_analysis\": 0.5}'")
    known = [m.name for m in DATA_DOMAIN.methods]
    out: dict[str, float] = {}
    for name, p in value.items():
        if name not in known:
            raise ValueError(f"unknown method {name!r}; the methods are {', '.join(known)}")
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"{name}={p!r} is not a probability in [0, 1]")
        out[str(name)] = float(p)
    return out

"""The ``--param`` schemas of the parallel, hierarchical, handoff and consensus graphs, apart from them.

Light on purpose (pydantic only, like :mod:`relaygraph.nodes.planned_params`): the CLI checks
``relaygraph run GRAPH --param ...`` against them before any heavy import
(:mod:`relaygraph.cli.entry`). Each graph declares its schema here as its ``PARAMS``, and the
limits the schemas describe live here too, so the nodes that apply them read the same numbers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator
from relaygraph.nodes.params import RunParams

#: The parallel graph's specialists, in their order (``relaygraph.graphs.parallel.SPECIALISTS``).
PARALLEL_SPECIALISTS = ("validator", "profiler", "segmenter", "scorer")
DEFAULT_MAX_DEPTH = 3  # supervisor (1) → team lead (2) → worker (3)
DEFAULT_MAX_FANOUT = 4
DEFAULT_MAX_HANDOFFS = 6
MODES = ("majority", "qualified", "unanimous", "weighted", "bft", "pbft", "raft")
MAX_VOTERS = 25
#: The consensus questions' names, in order (``relaygraph.nodes.consensus.QUESTIONS``).
CONSENSUS_QUESTIONS = ("top_region", "invalid_rows", "publishable")


class ParallelParams(RunParams):
    """``--param`` keys of the parallel graph."""

    specialists: list[Literal[PARALLEL_SPECIALISTS]] | None = Field(  # type: ignore[valid-type]
        default=None, min_length=1, description="Specialists to run (comma-separated); default: all.")
    partitions: int | None = Field(default=None, ge=1, le=64,
                                   description="Row slices per specialist (map-reduce); default 1.")

    @field_validator("specialists", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


class HierarchicalParams(RunParams):
    """``--param`` keys of the hierarchical graph."""

    max_depth: int | None = Field(default=None, ge=1, le=10,
                                  description=f"Delegation levels allowed (default {DEFAULT_MAX_DEPTH}).")
    max_fanout: int | None = Field(default=None, ge=1, le=64,
                                   description=f"Parallel delegates per level (default {DEFAULT_MAX_FANOUT}).")


class HandoffParams(RunParams):
    """``--param`` keys of the handoff graph."""

    max_handoffs: int | None = Field(default=None, ge=1, le=100,
                                     description=f"Handoffs before the loop guard stops the run (default {DEFAULT_MAX_HANDOFFS}).")


class ConsensusParams(RunParams):
    """``--param`` keys of the consensus graph (their combinations: the graph's ``check_config``)."""

    mode: Literal[MODES] | None = None  # type: ignore[valid-type]
    voters: int | None = Field(default=None, ge=1, le=MAX_VOTERS)
    faults: str | dict[str, str] | None = None
    threshold: float | None = None
    question: Literal[CONSENSUS_QUESTIONS] | None = None  # type: ignore[valid-type]
    seed: int | None = None
    reputation: dict[str, Any] | None = None

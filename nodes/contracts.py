"""The declared contracts of a run: what an agent is, what it records, what a run returns.

    AgentSpec ──make_agent_node──► AgentStep* + NodeProgress (+ AgentFailure on its last attempt)
                                          │
                                          ▼ the graph's result node
                                   RunResult ◄── ParallelResult | HandoffResult | HierarchicalResult
                                                   | AuctionResult | NegotiationResult | ConsensusResult
                                                   | PlannedResult

Graph state keeps plain dicts (``model_dump()``), so every checkpoint serialises with the saver's
serde and ``langgraph dev`` clients see JSON; these models are where those dicts are made and
checked. A graph's result *extends* :class:`RunResult` with its own declared fields instead of
patching the dict afterwards, so the keys README's "Graphs" section documents are the same for
every graph and a graph's additions are listed in one place.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from relaygraph.coordination.registry import Capability
from relaygraph.tools import known_tools

# --- what an agent is, and what it leaves in state --------------------------------------------


class AgentSpec(BaseModel):
    """What an agent is: the declarative input of :func:`relaygraph.nodes.agent.make_agent_node`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    role: str
    instructions: str
    tools: tuple[str, ...]
    max_steps: int | None = Field(default=None, ge=1, le=100)
    #: What the agent can do, with versions: the registry finds agents by these (auctions use
    #: them for eligibility). Optional: an agent that declares none is simply never found.
    capabilities: tuple[Capability, ...] = ()

    @field_validator("tools")
    @classmethod
    def _tools_exist(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in value if t not in known_tools()]
        if unknown:
            raise ValueError(f"unknown tool(s) {unknown}; known: {known_tools()}")
        return value


class AgentStep(BaseModel):
    """One ReAct step of one agent, as kept in graph state (and so in every checkpoint)."""

    model_config = ConfigDict(extra="forbid")

    agent: str
    node: str
    step: int
    thought: str = ""
    tool: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    observation: str = ""  # the text the model read, cut at observation_chars
    summary: str = ""  # the tool's typed result, whole: its summary line, facts and artifacts
    facts: dict[str, Any] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict)
    error: str | None = None
    confidence: float = Field(ge=0.0, le=1.0)
    duration_s: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    attempt: int = 1


class NodeProgress(BaseModel):
    """One node execution's outcome, appended to ``progress``."""

    node: str
    #: ``rejected``: a human rejected the node (or branch) at its approval gate; it never ran.
    status: Literal["completed", "partial", "failed", "rejected"]
    duration_s: float
    attempt: int = 1
    detail: str = ""


class AgentFailure(BaseModel):
    """An agent that gave up on its last attempt, as listed in ``errors`` and ``result.errors``.

    Extra keys are allowed: a graph may say more about its failures (the planned graph adds
    ``failure_class``), and older checkpoints carry what they carried.
    """

    model_config = ConfigDict(extra="allow")

    agent: str
    node: str
    reason: str
    attempt: int = 1
    max_attempts: int | None = None
    branch: str | None = None  # the parallel branch / hierarchy worker slot it ran in
    failure_class: str | None = None
    #: ``partial``: the agent answered but some of its tools failed; ``rejected``: a human rejected
    #: it at its approval gate, so it never ran (absent: it failed outright).
    outcome: Literal["partial", "rejected"] | None = None


# --- what a run returns ------------------------------------------------------------------------

RunStatus = Literal["completed", "partial", "failed", "rejected", "stopped"]


class AgentSummary(BaseModel):
    """Per agent in ``result.agents``: effort, errors, confidence, time, tokens and cost.

    Tokens are None when the model reported none (e.g. the offline policy); cost is None when
    the model has no price (see :mod:`relaygraph.observability.usage`).
    """

    steps: int = 0
    tool_calls: int = 0
    errors: int = 0
    confidence: float | None = None
    duration_s: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    #: Meta-reasoning over the agent's trace (:func:`relaygraph.nodes.results.reasoning`).
    reasoning: dict[str, Any] | None = None


class UsageSummary(BaseModel):
    llm_calls: int = 0
    #: calls answered by the offline rule-based policy: model calls, but no LLM was used
    offline_policy_calls: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


class RunUsage(UsageSummary):
    """``result.usage``: the run's LLM calls (or offline-policy calls), tokens and cost, and the same per node."""

    by_node: dict[str, UsageSummary] = Field(default_factory=dict)


class RunResult(BaseModel):
    """``result``: the contract every graph's final state shares (README, "Graphs")."""

    model_config = ConfigDict(extra="forbid")

    status: RunStatus
    answer: str
    artifacts: dict[str, str] = Field(default_factory=dict)  # dataset, report, chart
    agents: dict[str, AgentSummary] = Field(default_factory=dict)
    usage: RunUsage = Field(default_factory=RunUsage)
    errors: list[AgentFailure] = Field(default_factory=list)
    provider: str
    approvals: list[dict[str, Any]] | None = None  # present only when a human decided something

    def to_state(self) -> dict[str, Any]:
        """The plain dict kept in state (optional keys left out when they do not apply)."""
        state = self.model_dump(exclude={k for k in self.optional_keys() if getattr(self, k) is None})
        state["errors"] = [e.model_dump(exclude_none=True) for e in self.errors]  # as ``errors`` has them
        return state

    @classmethod
    def optional_keys(cls) -> tuple[str, ...]:
        return ("approvals",)


class ParallelSummary(BaseModel):
    """The aggregator's fan-in: every branch, per specialist, success rate and timings."""

    branches: dict[str, dict[str, Any]]
    specialists: dict[str, dict[str, Any]]
    total: int
    completed: int
    failed: dict[str, str]
    success_rate: float
    timings: dict[str, Any]
    #: branches a human rejected at their gate (never ran): neither completed nor failed
    rejected: dict[str, str] = Field(default_factory=dict)


class ParallelResult(RunResult):
    """The parallel graph's result: the shared keys plus the fan-in summary."""

    parallel: ParallelSummary | None = None  # None when the run ended before the fan-out
    failed: dict[str, str] = Field(default_factory=dict)
    rejected: dict[str, str] = Field(default_factory=dict)  # branches rejected at their gate
    success_rate: float | None = None


class HandoffSummary(BaseModel):
    route: str
    history: list[dict[str, Any]]
    rolled_back: list[dict[str, Any]]
    stop_reason: str | None = None
    final_agent: str | None = None


class HandoffResult(RunResult):
    """The handoff graph's result: the shared keys plus the route and why it ended."""

    handoffs: HandoffSummary
    reason: str | None = None  # why the run was stopped (status "stopped")

    @classmethod
    def optional_keys(cls) -> tuple[str, ...]:
        return ("approvals", "reason")


class HierarchicalResult(RunResult):
    """The hierarchical graph's result: the shared keys plus the delegation and quality per level."""

    quality: dict[str, Any] = Field(default_factory=dict)
    delegation: dict[str, Any] = Field(default_factory=dict)
    teams: dict[str, dict[str, Any]] = Field(default_factory=dict)


class MarketSummary(BaseModel):
    """The auction graph's market: per task its auction story, and the run's totals."""

    tasks: dict[str, dict[str, Any]]  # task id -> method, partition, rows, reserve, outcome, winner, price, rounds
    #: tasks not announced because the data lacks what their method needs (id, method, partition, missing)
    unsupported: list[dict[str, Any]] = Field(default_factory=list)
    settled: int
    total: int
    total_paid: float
    reputation: dict[str, float] = Field(default_factory=dict)
    load_rows: dict[str, int] = Field(default_factory=dict)


class AuctionResult(RunResult):
    """The auction graph's result: the shared keys plus the market (tasks, settlements, reputation)."""

    market: MarketSummary


class NegotiationSummary(BaseModel):
    """The negotiation graph's story: the conflict, the strategy and why, each round, the outcome."""

    conflict: dict[str, Any] | None = None  # None when the run ended before the conflict was built
    analysis: dict[str, Any] = Field(default_factory=dict)
    strategy: str | None = None
    why: str | None = None
    rounds: list[dict[str, Any]] = Field(default_factory=list)
    outcome: dict[str, Any] = Field(default_factory=dict)
    fallback: dict[str, Any] | None = None
    resolved: bool = False
    value: float | str | None = None


class NegotiationResult(RunResult):
    """The negotiation graph's result: the shared keys plus the conflict's resolution."""

    negotiation: NegotiationSummary


class VoterReputation(BaseModel):
    """A voter's standing across runs: its score before this run (the weight factor ``weighted``
    used), after it, and its whole track record after it (see ``coordination.voting.run_record``)."""

    before: float
    after: float
    agreed: int  # runs whose decision its ballot backed, unflagged
    counted: int  # runs that counted for it (decided, or it was flagged)


class ConsensusSummary(BaseModel):
    """``result.consensus``: the decision, how it was reached, and what each voter did."""

    question: str
    mode: str
    voters: int
    faults: dict[str, str]
    decision: str | None
    reason: str | None
    rounds: int | None
    views: int | None  # pbft: view changes (None for the other modes)
    terms: int | None = None  # raft: the last term (elections held)
    messages_sent: int
    fallback: bool
    suspects: dict[str, list[str]]
    ballots: list[dict[str, Any]]
    reputation: dict[str, VoterReputation] = Field(default_factory=dict)
    phases: list[dict[str, Any]] = Field(default_factory=list)  # pbft/raft: one entry per protocol step
    tally: dict[str, Any] | None = None
    weights: dict[str, float] | None = None  # weighted: confidence × reputation per counted ballot
    needed: int | None = None
    f: int | None = None
    confidence: float | None = None  # bft: share of all voters backing the decision in its deciding round
    committed_by: list[str] | None = None
    log: list[str] | None = None
    caught_up: dict[str, bool] | None = None
    expected_messages_fault_free: int | None = None
    log_safety_violations: list[str] | None = None


class ConsensusResult(RunResult):
    """The consensus graph's result: the shared keys plus the consensus block (None only when the
    run stopped before its plan, e.g. rejected at an approval)."""

    consensus: ConsensusSummary | None = None

    @classmethod
    def optional_keys(cls) -> tuple[str, ...]:
        return ("approvals", "consensus")


class PlanSummary(BaseModel):
    """The planned graph's plan as shown: the last accepted plan and how far it got."""

    goal: str
    confidence: float | None = None  # None when no plan was accepted
    methods: list[str] = Field(default_factory=list)
    tasks: list[str] = Field(default_factory=list)
    completed: list[str] = Field(default_factory=list)  # every task run to success, in order
    contingencies: list[dict[str, Any]] = Field(default_factory=list)  # a prepared alternative method each
    # risky methods with no alternative to fall back on (not contingencies): instead_of, why
    without_contingency: list[dict[str, Any]] = Field(default_factory=list)
    plans_accepted: int = 0
    timeouts: dict[str, float] = Field(default_factory=dict)  # task -> seconds its agent was given


class PlannedResult(RunResult):
    """The planned graph's result: the shared keys plus the plan, replanning, learning and critique."""

    plan: PlanSummary
    replanning: list[dict[str, Any]] = Field(default_factory=list)  # each failure, its class, policy, change
    world: dict[str, Any] = Field(default_factory=dict)  # the facts the last plan was made from (+ effects)
    learned: dict[str, float] = Field(default_factory=dict)  # method probabilities planned with
    critique: list[dict[str, Any]] = Field(default_factory=list)  # rounds: discrepancies, revised, clean
    experience_store: dict[str, Any] = Field(default_factory=dict)  # the store this run was recorded in
    # each ``fail=`` injection: task, class, times asked, times fired, and why one never fired
    injections: list[dict[str, Any]] = Field(default_factory=list)
    reason: str | None = None  # why the run stopped, or what the critique left unverified

    @classmethod
    def optional_keys(cls) -> tuple[str, ...]:
        return ("approvals", "reason")

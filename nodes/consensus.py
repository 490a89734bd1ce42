"""Consensus nodes: voter agents cast ballots, a protocol turns them into one decision.

    plan ──Send×N──► vote(voter, round) ──► decide ──(bft: no agreement yet)──Send×N──► vote …
                                              ├──(pbft, raft)──► protocol ⟲ one phase per step ──► finalize
                                              └──────────────────────────────────────────────────► finalize

* **plan** checks the run's options (mode, voters, faults, threshold, question) before any
  agent runs — ``n ≥ 3f+1`` for ``pbft``/``bft``, crash-only faults for ``raft``.
* **vote** runs one voter: a fresh smolagents ReAct agent (``make_agent_node``) with the
  question's data tools and a ``submit_ballot`` tool (choice, confidence, evidence). Its
  evidence is checked against what its tools really returned. Injected faults act here, on
  what the voter *sends* (see :class:`Fault`). Each ballot lands in state under its own key
  (``ballots["r1/voter_2"]``), and its signed copies to every peer in ``messages`` — the
  transport lives in graph state, so a checkpoint holds the protocol's progress and a resumed
  run does not ask a voter that already voted again.
* **decide** applies the mode's protocol from :mod:`relaygraph.coordination` (pure logic):
  a vote or a BFT round (one span per round).
* **protocol** (``pbft``, ``raft``) runs the replicated protocol among the voters over the
  simulated network *one phase per graph step* (PBFT: pre-prepare, prepare, commit, view
  change, new view, per view; Raft: election and replication per term, the decision, the
  crashed voters' catch-up). Each step appends the phase's messages to ``messages`` and its
  record to ``protocol``, so a checkpoint holds the protocol's progress; the next step rebuilds
  the replicas from the ballots and replays the checkpointed phases, checking every message
  against state (:class:`~relaygraph.coordination.network.PhasedRun`). One span per phase.
* **finalize** (graphs/consensus.py) records each voter's track record (did its ballot back the
  decision; was it flagged) in the checkpoint database — the reputation ``weighted`` reads at
  the next run's plan (:mod:`relaygraph.nodes.consensus_store`).

What "Byzantine" means here: a voter whose ballot does not follow from its tools — a
hallucinating or prompt-injected agent. ``lie`` stands for it: the voter's real ballot is
replaced by a different answer with evidence fabricated to match; the evidence check catches
the mismatch. With a real LLM the same check catches a genuine hallucination.
"""

from __future__ import annotations

import contextlib
import json
import operator
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypedDict

import sqlalchemy as sa
from langchain_core.runnables import RunnableConfig
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from langgraph.types import Send
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from relaygraph.config.settings import settings_from_config
from relaygraph.coordination import bft, pbft, raft
from relaygraph.coordination.ballots import (
    Ballot,
    Evidence,
    digest,
    evidence_problems,
    normalize_choice,
)
from relaygraph.coordination.crypto import Ed25519Keyring, HmacKeyring
from relaygraph.coordination.network import (
    Behaviour,
    Conditions,
    Fault,
    Message,
    PhasedRun,
    Simulation,
    wire_digest,
)
from relaygraph.coordination.voting import (
    QUALIFIED_DEFAULT,
    Reputation,
    VotingMode,
    check_threshold,
    decision_confidence,
    result_confidence,
    run_record,
    tally,
)
from relaygraph.nodes import consensus_store
from relaygraph.nodes.agent import (
    AgentSpec,
    allowed_values,
    make_agent_node,
    node_attempt,
    resolve_dataset,
    thread_id,
)
from relaygraph.nodes.approval import rejected
from relaygraph.nodes.failures import Failure, recording_failures
from relaygraph.nodes.params import declared_roles
from relaygraph.nodes.protocols import UpdateNode
from relaygraph.nodes.state import NodeProgress, WorkflowState, merge_dicts
from relaygraph.nodes.team_params import MAX_VOTERS, MODES
from relaygraph.observability import tracing
from relaygraph.tools import ToolResult, TypedTool, Workspace

REPLICATED = ("pbft", "raft")  # modes run as a replicated protocol, one graph step per phase


# --- questions agents can check with their tools ------------------------------------------


class Question(BaseModel):
    """A question whose answer follows from a tool's observation (so ballots are checkable)."""

    model_config = ConfigDict(frozen=True)

    name: str
    text: str
    tool: str
    context: dict[str, Any] = Field(default_factory=dict)
    answer_key: str  # the observed fact that answers it (flattened path)
    evidence_keys: tuple[str, ...]
    yes_no: bool = False


QUESTIONS: dict[str, Question] = {q.name: q for q in (
    Question(name="top_region", text="Which region has the highest total revenue?", tool="aggregate",
             context={"group_by": "region", "metric": "revenue"}, answer_key="groups.0.group",
             evidence_keys=("group_by", "metric", "groups.0.group", "groups.0.sum")),
    Question(name="invalid_rows", text=("How many rows of the dataset are invalid (exact duplicates, unparseable "
                                        "values or broken rules: the rows cleaning drops)?"),
             tool="validate_dataset", answer_key="invalid_rows", evidence_keys=("rows", "invalid_rows")),
    Question(name="publishable", text="Is this dataset fit to publish as it is (no data-quality issues)?",
             tool="validate_dataset", answer_key="passed", evidence_keys=("passed", "issue_count"), yes_no=True),
)}


def flatten(value: Any, prefix: str = "", depth: int = 3) -> dict[str, Any]:
    """Scalar facts of an observation as dotted paths (``groups.0.group``), a few levels deep."""
    out: dict[str, Any] = {}
    items = value.items() if isinstance(value, dict) else enumerate(value[:5]) if isinstance(value, list) else ()
    for key, item in items:
        path = f"{prefix}{key}"
        if isinstance(item, (dict, list)):
            if depth > 1:
                out.update(flatten(item, path + ".", depth - 1))
        elif isinstance(item, (str, int, float, bool)) or item is None:
            out[path] = item
    return out


def tool_observations(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per tool, the facts of the voter's last successful call (what its evidence must match):
    the step's typed ``facts``, whole (:mod:`relaygraph.tools.result`); a tool that returned no
    typed result contributes none — its (truncated) observation text is never parsed back."""
    found: dict[str, dict[str, Any]] = {}
    for step in steps:
        if step.get("tool") and step["tool"] not in ("final_answer", "submit_ballot") and not step.get("error"):
            found[step["tool"]] = flatten(step.get("facts") or {})
    return found


def answer_of(question: Question, facts: dict[str, Any]) -> str | None:
    value = facts.get(question.answer_key)
    if value is None:
        return None
    if question.yes_no:
        return "yes" if value is True else "no"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


# --- the run's options ---------------------------------------------------------------------


class ConsensusConfig(BaseModel):
    """``configurable`` options of a consensus run, validated before any agent runs."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    mode: str = "majority"
    voters: int = Field(default=4, ge=1, le=MAX_VOTERS)
    #: The voters' names when a team brings its own voter agents (``consensus_team(voters=...)``);
    #: None: ``voter_1`` … ``voter_N``. Declared before ``faults``, which map positions to them.
    voter_names: tuple[str, ...] | None = None
    faults: dict[str, Behaviour] = Field(default_factory=dict)
    threshold: float = QUALIFIED_DEFAULT
    question: str = "top_region"
    seed: int = 0
    reputation: dict[str, tuple[int, int]] = Field(default_factory=dict)

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in MODES:
            raise ValueError(f"unknown mode {value!r}; choose from {', '.join(MODES)}")
        return value

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        if value not in QUESTIONS:
            raise ValueError(f"unknown question {value!r}; choose from {', '.join(QUESTIONS)}")
        return value

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: float) -> float:
        return check_threshold(value)

    @model_validator(mode="before")
    @classmethod
    def _team_voters(cls, value: Any) -> Any:
        """A team's own voters fix how many vote: ``voters`` is their count, and another count is
        refused rather than silently ignored."""
        if not isinstance(value, dict) or not value.get("voter_names"):
            return value
        names = tuple(value["voter_names"])
        given = value.get("voters")
        if given is not None and int(given) != len(names):
            raise ValueError(f"this team's voters are {', '.join(names)} ({len(names)}); "
                             f"drop voters={given} (it applies only to the built-in voter_1..voter_N)")
        return {**value, "voter_names": names, "voters": len(names)}

    @field_validator("faults", mode="before")
    @classmethod
    def _faults(cls, value: Any, info: ValidationInfo) -> Any:
        """``lie,silent`` (the first voters, in order) or ``voter_3=lie,voter_1=crash``."""
        names = info.data.get("voter_names")
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
            if names and len(items) > len(names):
                raise ValueError(f"{len(items)} faults for {len(names)} voters ({', '.join(names)})")
            out: dict[str, str] = {}
            for index, item in enumerate(items, start=1):
                name, sep, behaviour = item.partition("=")
                positional = names[index - 1] if names else f"voter_{index}"
                key, what = (name.strip(), behaviour.strip()) if sep else (positional, name)
                if what not in {b.value for b in Behaviour}:
                    raise ValueError(f"unknown fault {what!r}; choose from {', '.join(b.value for b in Behaviour)}")
                if key in out:
                    raise ValueError(f"{key} is given two faults ({out[key]}, {what}); give each voter one")
                out[key] = what
            return out
        return value or {}

    @model_validator(mode="after")
    def _fits(self) -> ConsensusConfig:
        names = self.names()
        unknown = sorted(set(self.faults) - set(names))
        if unknown:
            known = ", ".join(names) if self.voter_names else f"voter_1..voter_{self.voters}"
            raise ValueError(f"faults name unknown voters {unknown}; voters are {known}")
        f = len(self.faults)
        if self.mode == "pbft":
            pbft.check_size(self.voters, f)
        # bft takes more than f faults on purpose: then no round reaches n−f matching ballots and,
        # after 5 rounds, the plurality fallback decides (marked ``fallback``, lower confidence).
        if self.mode == "raft":
            byzantine = sorted(v for v, b in self.faults.items() if b not in (Behaviour.CRASH, Behaviour.SILENT,
                                                                                 Behaviour.DELAY))
            if byzantine:
                raise ValueError(f"raft tolerates crashes, not lies: {', '.join(byzantine)} would need pbft")
            if 2 * f + 1 > self.voters:
                raise ValueError(f"raft with {f} crashed voters needs n ≥ 2f+1 = {2 * f + 1} voters; got {self.voters}")
        return self

    def names(self) -> list[str]:
        if self.voter_names:
            return list(self.voter_names)
        return [f"voter_{i}" for i in range(1, self.voters + 1)]


def consensus_config(config: RunnableConfig | None) -> ConsensusConfig:
    """The run's options from ``configurable``; a ``ValueError`` with one clear line if invalid."""
    configurable = dict((config or {}).get("configurable") or {})
    try:
        checked = ConsensusConfig.model_validate(configurable)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"consensus option {where}: {message}" if where else f"consensus: {message}") from None
    if configurable.get("threshold") is not None and checked.mode != "qualified":
        raise ValueError(f"consensus option threshold: applies only to mode=qualified, not mode={checked.mode}; "
                         "drop --param threshold or use --param mode=qualified")
    return checked


# --- state -----------------------------------------------------------------------------------


class ConsensusState(WorkflowState, total=False):
    consensus: dict[str, Any]  # the validated plan
    round: int
    ballots: Annotated[dict[str, dict[str, Any]], merge_dicts]  # "r{round}/{voter}" -> record
    messages: Annotated[list[dict[str, Any]], operator.add]  # every protocol message sent
    protocol: Annotated[list[dict[str, Any]], operator.add]  # pbft/raft: one record per phase step
    rounds: Annotated[list[dict[str, Any]], operator.add]  # decide's record of each round
    decision: dict[str, Any]


class VoteInput(TypedDict, total=False):
    task: str
    data: str | None
    context: dict[str, Any]
    consensus: dict[str, Any]
    voter: str
    round: int
    previous: dict[str, Any]


def make_plan(voter_names: Sequence[str] | None = None) -> UpdateNode:
    """The ``plan`` node; ``voter_names``: a team's own voters (else ``voter_1`` … ``voter_N``)."""

    def plan(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return plan_run(state, config, voter_names)

    return plan


def plan(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """The built-in graph's ``plan`` node (voters ``voter_1`` … ``voter_N``)."""
    return plan_run(state, config)


def plan_run(state: dict[str, Any], config: RunnableConfig,
             voter_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Validate the options and fix the run's plan (kept in state: resume uses the same one)."""
    if state.get("consensus"):
        return {}
    if voter_names:
        conf = dict((config or {}).get("configurable") or {})
        config = {**(config or {}), "configurable": {**conf, "voter_names": list(voter_names)}}
    cfg = consensus_config(config)
    question = QUESTIONS[cfg.question]
    # The voters' track records from earlier runs on this database; ``reputation`` given as an
    # option overrides a voter's stored record (what-if runs, tests).
    stored = consensus_store.load_records(store(config), cfg.names())
    record = {**stored, **{k: tuple(v) for k, v in cfg.reputation.items()}}
    return {"consensus": cfg.model_dump(mode="json") | {"question_text": question.text,
                                                        "reputation": {k: list(v) for k, v in record.items()}},
            "round": 1}


def store(config: RunnableConfig | None) -> Any:
    """Where track records live: the run's SQLAlchemy saver (its engine), else the checkpoint URL."""
    saver = ((config or {}).get("configurable") or {}).get(CONFIG_KEY_CHECKPOINTER)
    if isinstance(getattr(saver, "engine", None), sa.Engine):
        return saver
    return settings_from_config(config).checkpoint_db


def fan_out(state: dict[str, Any], node: str = "vote", previous: dict[str, Any] | None = None) -> list[Send] | str:
    """One ``Send`` per voter for the current round; after a rejection (an approval gate on
    ``plan`` or ``vote`` said no) straight to ``finalize``, which reports it."""
    if rejected(state) or not state.get("consensus"):
        return "finalize"
    plan_ = state["consensus"]
    r = state.get("round", 1)
    return [Send(node, {"task": state.get("task"), "data": state.get("data"), "context": state.get("context") or {},
                        "consensus": plan_, "voter": voter, "round": r, "previous": previous or {}})
            for voter in ConsensusConfig.model_validate(plan_).names()]


# --- the ballot tool and the vote node -----------------------------------------------------


class BallotBox:
    ballot: dict[str, Any] | None = None


class SubmitBallotTool(TypedTool):
    """What a voter agent calls once it has checked the question with its tools."""

    name = "submit_ballot"
    description = ("Submit your ballot once you have checked the question with your tools: your answer "
                   "(choice), how sure you are (confidence 0-1) and the evidence — the tool facts you relied "
                   "on, as JSON: [{\"tool\": \"aggregate\", \"facts\": {\"groups.0.group\": \"North\"}}].")
    inputs = {
        "choice": {"type": "string", "description": "Your answer, as short as possible."},
        "confidence": {"type": "number", "description": "How sure you are, 0 to 1."},
        "evidence": {"type": "string", "nullable": True,
                     "description": "JSON list of {tool, facts} you relied on."},
        "rationale": {"type": "string", "nullable": True, "description": "One sentence: why."},
    }
    output_type = "string"

    def __init__(self, box: BallotBox) -> None:
        self.box = box
        super().__init__()

    def forward(self, choice: str, confidence: float, evidence: str | None = None,
                rationale: str | None = None) -> ToolResult:
        if not str(choice).strip():
            raise ValueError("choice must not be blank: give your answer")
        if not 0 <= float(confidence) <= 1:
            raise ValueError(f"confidence must lie between 0 and 1, got {confidence}")
        try:
            items = json.loads(evidence) if evidence else []
        except json.JSONDecodeError as exc:
            raise ValueError(f"evidence must be JSON like [{{\"tool\": ..., \"facts\": {{...}}}}]: {exc.msg}") from None
        if isinstance(items, dict):
            items = [items]
        parsed = [Evidence.model_validate(i).model_dump() for i in items]
        self.box.ballot = {"choice": choice, "confidence": float(confidence), "evidence": parsed,
                           "rationale": rationale or ""}
        return ToolResult(summary=f"Ballot recorded: {choice} (confidence {float(confidence):.2f}).",
                          facts={"choice": choice})


def voter_spec(question: Question, voter: str, previous: dict[str, Any],
               own: AgentSpec | None = None) -> AgentSpec:
    """The agent that votes as ``voter`` this round. ``own``: a team's voter — it keeps its role,
    instructions and tools, and is told the question and given the question's tool, so every
    ballot stays checkable against what that voter's tools returned."""
    revise = ""
    if previous:
        revise = (f" Round {previous['round']} tally: {json.dumps(previous['tally'])} — no agreement yet. "
                  "Check again and submit a ballot; change your choice only if the evidence supports it.")
    if own is not None:
        ask = (f" Question to vote on: {question.text} Check it with your tools (at least {question.tool}), "
               f"then call submit_ballot with your choice, confidence and the facts you relied on.{revise}")
        tools = own.tools if question.tool in own.tools else (*own.tools, question.tool)
        return own.model_copy(update={"instructions": own.instructions.rstrip() + ask, "tools": tools,
                                      "max_steps": max(own.max_steps or 0, 4)})
    return AgentSpec(
        name=voter, role=f"voter {voter.removeprefix('voter_')}",
        instructions=(f"Answer this question from the data: {question.text} Use {question.tool}, then call "
                      f"submit_ballot with your choice, confidence and the facts you relied on.{revise}"),
        tools=(question.tool,), max_steps=4)


def effective(cfg: ConsensusConfig, voter: str, round_: int) -> Behaviour | None:
    """The voter's fault this round; ``random`` draws one per round from the run's seed."""
    fault = cfg.faults.get(voter)
    if fault is Behaviour.RANDOM:
        rng = random.Random(f"{cfg.seed}:{voter}:{round_}")
        return rng.choice([None, Behaviour.SILENT, Behaviour.DELAY, Behaviour.LIE, Behaviour.EQUIVOCATE])
    return fault


def fabricate(ballot: Ballot, question: Question, observed: dict[str, dict[str, Any]]) -> Ballot:
    """A lying voter's ballot: a different, plausible answer with evidence made up to match."""
    facts = observed.get(question.tool, {})
    honest = ballot.choice
    if question.yes_no:
        wrong = "no" if honest == "yes" else "yes"
    else:
        alternatives = [str(v) for k, v in facts.items() if re.fullmatch(r"groups\.\d+\.group", k)]
        alternatives = [a for a in alternatives if a.casefold() != honest]
        wrong = alternatives[0] if alternatives else (str(int(honest) + 7) if honest.isdigit() else f"not {honest}")
    claimed = {k: facts.get(k) for k in question.evidence_keys if k in facts}
    claimed[question.answer_key] = (wrong == "yes") if question.yes_no else wrong
    return ballot.model_copy(update={"choice": normalize_choice(wrong),
                                     "confidence": 0.95,
                                     "evidence": (Evidence(tool=question.tool, facts=claimed),),
                                     "rationale": "fabricated (injected fault: lie)"})


COLUMN_KEYS = ("group_by", "metric", "column", "date_column", "customer_column")


def require_question_columns(question: Question, state: dict[str, Any], config: RunnableConfig) -> None:
    """Refuse to vote on a question the dataset cannot answer: a tool given a column the data
    lacks infers another one, and the voters would agree on the answer to a different question."""
    needed = [str(v) for k, v in question.context.items() if k in COLUMN_KEYS]
    if not needed:
        return
    settings = settings_from_config(config)
    workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config), roles=declared_roles(config))
    dataset = resolve_dataset(state, settings, workspace)
    columns = allowed_values(workspace, dataset)["columns"]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ValueError(f"question {question.name!r} ({question.text}) needs column(s) {', '.join(missing)}, "
                         f"which {dataset} does not have (columns: {', '.join(columns)}); choose another "
                         f"question (--param question=...) or dataset")


def check_question_data(configurable: dict[str, Any]) -> None:
    """Before any work (the CLI's ``check_config``): refuse a preset question whose columns the
    run's dataset lacks, naming them — else the voters would answer a different question and
    agree on it. A dataset that cannot be resolved here is left to the run's own checks."""
    cfg = consensus_config({"configurable": configurable})
    config: RunnableConfig = {"configurable": configurable}
    try:
        require_question_columns(QUESTIONS[cfg.question], {}, config)
    except (FileNotFoundError, PermissionError, OSError):
        return


def make_vote_node(voters: Mapping[str, AgentSpec] | None = None) -> UpdateNode:
    """The node every voter ``Send`` runs; ``voters``: a team's own voter agents by name."""
    own = dict(voters or {})

    def vote(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        cfg = ConsensusConfig.model_validate(state["consensus"])
        question = QUESTIONS[cfg.question]
        voter, r = state["voter"], int(state.get("round", 1))
        key = f"r{r}/{voter}"
        behaviour = effective(cfg, voter, r)
        record: dict[str, Any] = {"voter": voter, "round": r, "fault": behaviour.value if behaviour else None,
                                  "attempt": node_attempt()}
        if behaviour is Behaviour.CRASH:  # down: it never runs, never answers
            record.update(status="crashed", ballot=None)
            return {"ballots": {key: record}, "progress": [NodeProgress(
                node=voter, status="completed", duration_s=0.0, detail="crashed (injected fault)").model_dump()]}
        box = BallotBox()
        spec = voter_spec(question, voter, state.get("previous") or {}, own.get(voter))
        context = {**(state.get("context") or {}), **question.context}
        require_question_columns(question, {**state, "context": context}, config)
        update = make_agent_node(spec, node=voter, extra_tools=lambda _ctx: [SubmitBallotTool(box)])(
            {**state, "context": context}, config)
        steps = update["steps"]
        observed = tool_observations(steps)
        final: dict[str, Any] = next((s for s in reversed(steps) if s.get("tool") == "final_answer"), {})
        if box.ballot is not None:
            ballot = Ballot(voter=voter, round=r, **box.ballot)
            source = "submit_ballot"
        else:  # the agent answered without a ballot: read its answer from its own tool observation
            choice = answer_of(question, observed.get(question.tool, {}))
            if choice is None:
                ballot, source = None, "none: no ballot and no observation that answers the question"
            else:
                facts = {k: observed[question.tool][k] for k in question.evidence_keys if k in observed[question.tool]}
                ballot = Ballot(voter=voter, round=r, choice=choice, confidence=final.get("confidence") or 0.5,
                                evidence=(Evidence(tool=question.tool, facts=facts),),
                                rationale="read from the voter's own tool observation (it did not call submit_ballot)")
                source = "tool observation"
        honest = ballot
        if ballot is not None and behaviour in (Behaviour.LIE, Behaviour.EQUIVOCATE):
            ballot = fabricate(ballot, question, observed)
        messages = deliveries(cfg, voter, r, honest, ballot, behaviour)
        sent = ballot if behaviour is not Behaviour.EQUIVOCATE else honest
        status = "no ballot" if ballot is None else "withheld" if behaviour is Behaviour.SILENT else "voted"
        record.update(status=status, source=source,
                      ballot=sent.model_dump(mode="json") if sent is not None else None,
                      told_others=ballot.choice if behaviour is Behaviour.EQUIVOCATE and ballot else None,
                      problems=evidence_problems(ballot, observed) if ballot is not None else [],
                      observed=observed, withheld=behaviour is Behaviour.SILENT,
                      late=behaviour is Behaviour.DELAY)
        return {"ballots": {key: record}, "messages": messages, "steps": steps, "answers": update["answers"],
                "progress": update["progress"]}

    def voter_down(state: dict[str, Any], outcome: Failure) -> dict[str, Any]:
        """Out of retries (the run's own budget): the voter is down — a real crash fault — and
        the vote goes on without it (the one failure path of :mod:`relaygraph.nodes.failures`)."""
        cfg = ConsensusConfig.model_validate(state["consensus"])
        voter, r = state["voter"], int(state.get("round", 1))
        behaviour = effective(cfg, voter, r)
        record = {"voter": voter, "round": r, "fault": behaviour.value if behaviour else None,
                  "attempt": outcome.failure.attempt, "status": "failed", "ballot": None,
                  "error": outcome.failure.reason}
        return {**outcome.update(), "ballots": {f"r{r}/{voter}": record}}

    node = recording_failures(vote, who=lambda state: (state["voter"], state["voter"]), on_failure=voter_down)
    node.__name__ = "vote"
    return node


class StateTransport:
    """A :class:`~relaygraph.coordination.network.Transport` whose wire is graph state: every
    message sent becomes a record in ``messages`` (until the message hub carries them)."""

    def __init__(self, round_: int, late: bool = False) -> None:
        self.round, self.late = round_, late
        self.records: list[dict[str, Any]] = []

    def send(self, message: Message) -> None:
        self.records.append({"protocol": message.kind, "round": self.round, "src": message.src,
                             "dst": message.dst, "kind": message.kind, "digest": digest(dict(message.body)),
                             "late": self.late, "signature": message.signature, "body": dict(message.body)})


def deliveries(cfg: ConsensusConfig, voter: str, round_: int, honest: Ballot | None, told: Ballot | None,
               behaviour: Behaviour | None) -> list[dict[str, Any]]:
    """The voter's signed ballot messages to every peer, sent over a :class:`StateTransport`.

    Equivocation sends the honest ballot to even-numbered peers and the fabricated one to the
    others — two validly signed, conflicting ballots: the proof :func:`bft.resolve` looks for."""
    if honest is None or behaviour is Behaviour.SILENT:
        return []
    transport = StateTransport(round_, late=behaviour is Behaviour.DELAY)
    signer = keyring(cfg).signer(voter)
    signed: dict[str, tuple[dict[str, Any], str]] = {}  # one signature per distinct ballot
    for index, peer in enumerate(cfg.names(), start=1):
        if peer == voter:
            continue
        ballot = told if behaviour is Behaviour.LIE or (behaviour is Behaviour.EQUIVOCATE and index % 2) else honest
        assert ballot is not None  # a lying or equivocating voter always has its fabricated ballot
        if ballot.choice not in signed:
            body = {"round": round_, "ballot": ballot.model_dump(mode="json")}
            signed[ballot.choice] = (body, signer.sign("ballot", body))
        body, signature = signed[ballot.choice]
        transport.send(Message(voter, peer, "ballot", body, signature))
    return transport.records


_KEYRINGS: dict[tuple[int, tuple[str, ...]], Ed25519Keyring] = {}


def keyring(cfg: ConsensusConfig) -> Ed25519Keyring:
    """The run's Ed25519 keys (derived from its seed: a resumed run verifies the same way)."""
    key = (cfg.seed, tuple(cfg.names()))
    if key not in _KEYRINGS:
        _KEYRINGS[key] = Ed25519Keyring(cfg.names(), f"consensus:{cfg.seed}")
    return _KEYRINGS[key]


# --- decide ----------------------------------------------------------------------------------


def _span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current node (a no-op context when tracing is off)."""
    if not tracing.enabled():
        return contextlib.nullcontext()
    return tracing.tracer().start_as_current_span(name, attributes={
        k: (v if isinstance(v, (str, int, float, bool)) else json.dumps(v, default=str)) for k, v in attributes.items()})


def received(state: dict[str, Any], cfg: ConsensusConfig, round_: int) -> tuple[dict[str, Ballot], dict[str, str]]:
    """The round's ballots as the peers received them: verified signatures only, late ones
    dropped, equivocators (conflicting signed ballots) excluded with their proof."""
    ring = keyring(cfg)
    copies = []
    verified: dict[tuple[str, str, str], bool] = {}  # a voter signs one ballot for all peers: verify it once
    for m in state.get("messages") or []:
        if m.get("protocol") != "ballot" or m["round"] != round_ or m.get("late"):
            continue
        key = (m["src"], digest(m["body"]), m["signature"])
        if key not in verified:
            verified[key] = ring.verify(m["src"], "ballot", m["body"], m["signature"])
        if not verified[key]:
            continue
        copies.append((m["src"], m["dst"], Ballot.model_validate(m["body"]["ballot"])))
    ballots, proof = bft.resolve(copies)
    return ballots, proof


def evidence_proof(state: dict[str, Any], round_: int) -> dict[str, str]:
    return {rec["voter"]: "fabricated evidence: " + "; ".join(rec["problems"])
            for key, rec in (state.get("ballots") or {}).items()
            if key.startswith(f"r{round_}/") and rec.get("problems")}


def proofs(*sources: dict[str, str]) -> dict[str, str]:
    """Merge per-voter proofs (equivocation, fabricated evidence) into one line each."""
    out: dict[str, str] = {}
    for source in sources:
        for voter, why in source.items():
            out[voter] = f"{out[voter]}; {why}" if voter in out else why
    return out


def missing(state: dict[str, Any], cfg: ConsensusConfig, round_: int, ballots: dict[str, Ballot],
            equivocators: dict[str, str]) -> dict[str, str]:
    """Why each voter without a counted ballot has none (crash, withheld, late, none at all)."""
    records = state.get("ballots") or {}
    out = {}
    for voter in cfg.names():
        if voter in ballots or voter in equivocators:
            continue
        rec = records.get(f"r{round_}/{voter}") or {}
        if rec.get("status") == "crashed":
            out[voter] = f"crashed: cast no ballot in round {round_}"
        elif rec.get("status") == "failed":
            out[voter] = f"its agent failed in round {round_}: {rec.get('error', '')}"[:300]
        elif rec.get("withheld"):
            out[voter] = f"silent: withheld its ballot in round {round_}"
        elif rec.get("late"):
            out[voter] = f"delayed: its ballot arrived after round {round_} closed"
        else:
            out[voter] = f"no ballot in round {round_}"
    return out


def decide(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """Apply the mode's protocol to the ballots so far (one span per round or phase)."""
    cfg = ConsensusConfig.model_validate(state["consensus"])
    if cfg.mode in REPLICATED:
        return {}  # the ballots are in: ``protocol`` runs PBFT or Raft over them, one phase per step
    r = int(state.get("round", 1))
    with _span(f"consensus.round {r}", **{"relaygraph.consensus.mode": cfg.mode, "relaygraph.consensus.round": r}):
        if cfg.mode == "bft":
            outcome = bft_round(state, cfg, r)
        else:
            outcome = vote_once(state, cfg)
    update: dict[str, Any] = {"rounds": [outcome["round_record"]]}
    if outcome.get("done"):
        update["decision"] = outcome["decision"]
    else:
        update["round"] = r + 1
    update["messages"] = outcome.get("messages", [])
    return update


def vote_once(state: dict[str, Any], cfg: ConsensusConfig) -> dict[str, Any]:
    ballots, equivocators = received(state, cfg, 1)
    fabricated = evidence_proof(state, 1)
    counted = [b for v, b in ballots.items() if v not in fabricated]
    reputation = Reputation(record={k: (v[0], v[1]) for k, v in cfg.reputation.items()})
    result = tally(counted, VotingMode(cfg.mode), electorate=cfg.voters, threshold=cfg.threshold,
                   reputation=reputation)
    weights = ({b.voter: b.confidence * reputation.score(b.voter) for b in counted}
               if cfg.mode == VotingMode.WEIGHTED else None)
    suspects = {v: [why] for v, why in proofs(equivocators, fabricated).items()}
    for voter, why in missing(state, cfg, 1, ballots, equivocators).items():
        suspects.setdefault(voter, []).append(why)
    confidence = result_confidence(result, {b.voter: b.choice for b in counted})
    decision = {"decision": result.decision, "reason": result.reason, "tally": result.model_dump(mode="json"),
                "rounds": 1, "views": None, "fallback": False, "suspects": suspects, "confidence": confidence,
                **({"weights": weights} if weights is not None else {})}
    return {"done": True, "decision": decision,
            "round_record": {"round": 1, "tally": result.support, "decision": result.decision}}


def bft_round(state: dict[str, Any], cfg: ConsensusConfig, r: int) -> dict[str, Any]:
    rounds, excluded, why_missing = [], [], {}
    for k in range(1, r + 1):
        ballots, equivocators = received(state, cfg, k)
        rounds.append(ballots)
        excluded.append(proofs(equivocators, evidence_proof(state, k)))
        why_missing.update({f"silent in round {k}|{v}": why for v, why in missing(state, cfg, k, ballots,
                                                                                      equivocators).items()})
    outcome = bft.evaluate(cfg.names(), rounds, excluded=excluded)
    # The protocol only sees silence; the graph knows why (crashed, withheld, late, agent failed).
    suspects = {v: [why_missing.get(f"{w}|{v}", w) for w in whys] for v, whys in outcome.suspects.items()}
    last = outcome.rounds[-1]
    record = {"round": r, "tally": last.tally, "agreed": last.agreed, "excluded": last.excluded,
              "silent": last.silent, "needed": outcome.needed}
    if not outcome.done:
        return {"done": False, "round_record": record}
    backing = sum(1 for choice in last.counted.values() if choice == outcome.decision)
    confidence = decision_confidence(outcome.decision, last.counted, cfg.voters)  # in the deciding round
    reason = (f"{outcome.decision!r} backed by {backing} of {cfg.voters} (agreement needs {outcome.needed}) "
              f"in round {len(outcome.rounds)}"
              if not outcome.fallback_result else
              f"{outcome.fallback_result.reason} — no round reached the {outcome.needed} of {cfg.voters} matching "
              f"ballots BFT needs (more than f = {outcome.f} faulty voters?); confidence {confidence}")
    decision = {"decision": outcome.decision, "rounds": len(outcome.rounds), "views": None,
                "fallback": outcome.fallback, "suspects": suspects, "needed": outcome.needed,
                "f": outcome.f, "confidence": confidence, "reason": reason}
    return {"done": True, "decision": decision, "round_record": record}


#: At most this many protocol steps run as graph steps of their own; the last runs the rest
#: (a run's supersteps stay well inside LangGraph's default recursion limit).
MAX_PROTOCOL_STEPS = 16

Outcome = Callable[[], dict[str, Any]]


def protocol_run(state: dict[str, Any], cfg: ConsensusConfig) -> tuple[PhasedRun, Outcome]:
    """PBFT or Raft among the voters over the simulated network, seeded by the run's seed and
    built from the round-1 ballots in state — so a resumed run rebuilds the same one."""
    ballots = {key.split("/", 1)[1]: rec for key, rec in (state.get("ballots") or {}).items() if key.startswith("r1/")}
    names = cfg.names()
    own = {v: (Ballot.model_validate(rec["ballot"]) if rec.get("ballot") else None) for v, rec in ballots.items()}
    told = {v: (rec.get("told_others") or (b.choice if (b := own.get(v)) else None)) for v, rec in ballots.items()}
    faults = {v: Fault(behaviour=b, extra_delay=400.0) for v, b in cfg.faults.items()}
    fabricated = evidence_proof(state, 1)
    if cfg.mode == "pbft":
        return pbft_run(cfg, names, own, told, faults, fabricated)
    return raft_run(cfg, names, own, faults)


def pbft_run(cfg: ConsensusConfig, names: list[str], own: dict[str, Ballot | None], told: dict[str, str | None],
             faults: dict[str, Fault], fabricated: dict[str, str]) -> tuple[PhasedRun, Outcome]:
    # Replica-to-replica messages carry MAC authenticators (HMAC-SHA256), as in the PBFT paper's
    # normal case; the ballots they order are Ed25519-signed (see ``deliveries``).
    ring = HmacKeyring(names, f"consensus:{cfg.seed}")
    coalition = pbft.Coalition()
    replicas = []
    for v in names:
        mine = told.get(v) if cfg.faults.get(v) in (Behaviour.LIE,) else (b.choice if (b := own.get(v)) else None)
        requests = [mine] if mine else []

        # A replica prepares only what matches its own ballot (a replica without one: nothing new).
        def check(value: str, mine: str | None = mine) -> bool:
            return (mine is not None and value == mine) or value == pbft.NULL

        replicas.append(pbft.PbftReplica(v, names, ring, requests=requests, validate=check, timeout=60.0,
                                         coalition=coalition))
    honest = [r for r in replicas if r.id not in faults]
    sim = Simulation(replicas, seed=cfg.seed, conditions=Conditions(), faults=faults, record=False)

    def decided() -> bool:
        return all(1 in r.committed and r.committed[1] != pbft.NULL for r in honest) or \
            max(r.view for r in honest) > 2 * len(names)

    phased = PhasedRun(sim, phase=pbft_phases(sim), done=decided, until=60.0 * (2 ** (len(names) + 2)),
                       key=pbft_key)

    def outcome() -> dict[str, Any]:
        committed = [r.committed.get(1) for r in honest if r.committed.get(1) not in (None, pbft.NULL)]
        value = committed[0] if committed else None
        suspects: dict[str, list[str]] = {v: [why] for v, why in fabricated.items()}
        for r in honest:
            for who, whys in r.suspects.items():
                for why in sorted(whys):
                    if why not in suspects.setdefault(who, []):
                        suspects[who].append(why)
        sent_by = Counter(m["src"] for m in sim.wire)
        for v in names:
            if own.get(v) is None:
                suspects.setdefault(v, []).append("cast no ballot")
            elif sim.stats.by_src.get(v, 0) == 0 and sent_by[v]:  # it sent, too late to count
                suspects.setdefault(v, []).append(
                    f"delayed: sent {sent_by[v]} protocol messages, none of which reached a peer before the "
                    "replicas decided")
            elif sim.stats.by_src.get(v, 0) == 0:
                suspects.setdefault(v, []).append("silent: sent no protocol message at all")
        views = max(r.view for r in honest) if honest else 0
        reason = (f"{value!r} committed at sequence 1 by {len(committed)} of {len(honest)} replicas "
                  f"(2f+1 = {2 * replicas[0].f + 1} matching commits) after {views} view change(s)"
                  if value else f"no value committed after {views} view changes: honest ballots disagree")
        # the voters behind the committed value: an unflagged voter whose own ballot names it
        backers = {v: b.choice for v in names if (b := own.get(v)) is not None and v not in suspects}
        return {"decision": value, "rounds": 1, "views": views, "fallback": False, "suspects": suspects,
                "confidence": decision_confidence(value, backers, len(names)),
                "reason": reason, "f": replicas[0].f, "messages_sent": sim.stats.sent,
                "expected_messages_fault_free": pbft.expected_messages(len(names)),
                "committed_by": sorted(r.id for r in honest if r.committed.get(1) == value)}

    return phased, outcome


def pbft_key(message: Mapping[str, Any]) -> str:
    """A PBFT message's phase: its kind and view — ``prepare (view 0)``."""
    view = message["body"].get("view")
    return str(message["kind"]) if view is None else f"{message['kind']} (view {view})"


def pbft_phases(sim: Simulation) -> Callable[[], str]:
    """PBFT's phase: the newest (message kind, view) sent so far — ``prepare (view 0)``."""
    seen: set[str] = set()
    state: dict[str, Any] = {"read": 0, "phase": "start"}

    def phase() -> str:
        fresh = []
        for m in sim.wire[state["read"]:]:
            view = m["body"].get("view")
            key = m["kind"] if view is None else f"{m['kind']} (view {view})"
            if key not in seen:
                seen.add(key)
                fresh.append(key)
        if fresh:  # one event may open two (a new primary's NEW-VIEW, then its PRE-PREPARE): the first names it
            state["phase"] = fresh[0]
        state["read"] = len(sim.wire)
        return state["phase"]

    return phase


def raft_run(cfg: ConsensusConfig, names: list[str], own: dict[str, Ballot | None],
             faults: dict[str, Fault]) -> tuple[PhasedRun, Outcome]:
    """Ballots become entries of a Raft log, then the majority decision does; crashed voters
    restart afterwards and must catch up on the whole log from the leader. A client polls
    inside the simulation (so a replay repeats it): it submits to the current leader, appends
    the decision once every ballot is committed, then restarts the crashed voters."""
    observer = raft.RaftObserver()
    nodes = {v: raft.RaftNode(v, names, observer=observer) for v in names}
    sim = Simulation(list(nodes.values()), seed=cfg.seed, faults=faults)
    down = set(faults)
    crashed = [v for v in names if cfg.faults.get(v) is Behaviour.CRASH]
    ballots = [f"ballot:{v}:{b.choice}" for v in names if (b := own.get(v)) is not None and v not in down]
    wanted: list[str] = list(ballots)
    submitted: dict[str, int] = {}  # entry -> term of the leader that took it (retry after a change)
    progress: dict[str, Any] = {"result": None, "restarted": False, "target": 0}

    def committed_values() -> list[str]:
        return [value for _, (_, value) in sorted(observer.committed.items())]

    def committed_ballots() -> list[Ballot]:
        seen: dict[str, Ballot] = {}
        for value in committed_values():
            if value.startswith("ballot:"):
                _, v, choice = value.split(":", 2)
                mine = own[v]
                assert mine is not None  # only a voter with a ballot put one in the log
                seen.setdefault(v, Ballot(voter=v, choice=choice, confidence=mine.confidence))
        return list(seen.values())

    def submit() -> None:
        leaders = [n for n in nodes.values() if n.role == "leader" and sim.alive[n.id]]
        done = set(committed_values())
        if leaders:
            leader = max(leaders, key=lambda n: n.term)
            for entry in wanted:
                if entry not in done and submitted.get(entry) != leader.term \
                        and leader.submit(entry, sim.contexts[leader.id]):
                    submitted[entry] = leader.term

    def client() -> None:
        done = set(committed_values())
        if progress["result"] is None and set(ballots) <= done:
            progress["result"] = result = tally(committed_ballots(), VotingMode.MAJORITY, electorate=len(names))
            if result.decision is not None:  # the decision itself joins the ordered log
                wanted.append(f"decision:{result.decision}")
        elif progress["result"] is not None and set(wanted) <= done and crashed and not progress["restarted"]:
            progress["restarted"], progress["target"] = True, len(observer.committed)
            for v in crashed:
                sim.restart(v)
        submit()
        if not finished():
            sim.at(sim.now + 25, client)

    def caught_up() -> bool:
        return progress["restarted"] and all(nodes[v].commit_index >= progress["target"] for v in crashed)

    def finished() -> bool:
        return progress["result"] is not None and set(wanted) <= set(committed_values()) and (
            not crashed or caught_up())

    def phase() -> str:
        if progress["restarted"]:
            return "catch-up"
        term = max(n.term for n in nodes.values())
        if not any(n.role == "leader" and n.term == term for n in nodes.values()):
            return f"election (term {term + 1})" if term == 0 else f"election (term {term})"
        return f"{'decision' if progress['result'] is not None else 'replication'} (term {term})"

    sim.at(0, client)
    phased = PhasedRun(sim, phase=phase, done=finished, until=200_000)

    def outcome() -> dict[str, Any]:
        result = progress["result"] or tally(committed_ballots(), VotingMode.MAJORITY, electorate=len(names))
        target = progress["target"]
        log = committed_values()
        leader = max((n for n in nodes.values() if n.role == "leader"), key=lambda n: n.term, default=None)
        term = max(n.term for n in nodes.values())
        logged = {b.voter: b.choice for b in committed_ballots()}  # the ballots the majority replicated
        return {"decision": result.decision, "rounds": 1, "views": None, "terms": term, "fallback": False,
                "confidence": decision_confidence(result.decision, logged, len(names)),
                "suspects": {v: [f"{cfg.faults[v].value}: its ballot never reached the log"] for v in sorted(down)},
                "reason": f"Raft leader {leader.id if leader else '?'} (term {term}) committed "
                          f"{len(committed_ballots())} ballots; {result.reason}",
                "log": log,
                "caught_up": {v: nodes[v].applied[:target] == log[:target] and nodes[v].commit_index >= target
                              for v in crashed} if progress["restarted"] else {},
                "log_safety_violations": observer.violations + raft.log_matching_violations(list(nodes.values())),
                "messages_sent": sim.stats.sent}

    return phased, outcome


# The protocol runs of this process between two of their steps, by thread: the next step goes
# on from the live replicas when they are exactly at the state's last step (no replay); a
# resumed run, another process, a fork or any mismatch rebuilds them by replay instead.
_LIVE: dict[str, tuple[PhasedRun, Outcome]] = {}
_LIVE_LOCK = threading.Lock()
_LIVE_MAX = 64


def protocol(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """One phase of PBFT or Raft as one graph step.

    The protocol is rebuilt from the ballots in state and replayed to the end of the steps
    already checkpointed — every replayed step must send exactly the messages state holds for
    it (else :class:`ReplayDiverged`) — then runs its next phase. (Within one process the live
    replicas of the previous step are reused when they match state exactly: see ``_LIVE``.) The phase's messages and its
    record join state, so the next checkpoint holds the protocol's progress; a resumed run
    continues from the last checkpointed phase without asking any voter again.
    """
    cfg = ConsensusConfig.model_validate(state["consensus"])
    recorded = state.get("protocol") or []
    namespace = str(((config or {}).get("configurable") or {}).get("checkpoint_ns") or "")
    key = f"{thread_id(config)}|{namespace.rpartition('|')[0]}"  # this graph's run, not this task's
    with _LIVE_LOCK:
        live = _LIVE.pop(key, None)
    if live is None or [s.record() for s in live[0].steps] != recorded:
        live = protocol_run(state, cfg)
        sent: dict[int, list[dict[str, Any]]] = {}
        for m in state.get("messages") or []:
            if m.get("protocol") == cfg.mode and "step" in m:
                sent.setdefault(int(m["step"]), []).append(m)
        if recorded:
            live[0].replay([{**rec, "digest": wire_digest(sent.get(int(rec["step"]), []))} for rec in recorded])
    phased, outcome = live
    name = phased.current()
    with _span(f"{cfg.mode}.{name}", **{"relaygraph.consensus.mode": cfg.mode,
                                         "relaygraph.consensus.step": len(recorded) + 1}) as span:
        step = phased.step(last=len(recorded) + 1 >= MAX_PROTOCOL_STEPS)
        if span is not None:
            span.update_name(f"{cfg.mode}.{step.phase}")  # named by the messages the step holds
            span.set_attribute("relaygraph.consensus.messages", len(step.messages))
    update: dict[str, Any] = {
        "protocol": [step.record()],
        "messages": [{"protocol": cfg.mode, "step": step.index, "phase": step.phase, **m} for m in step.messages]}
    if not step.done:
        with _LIVE_LOCK:
            _LIVE[key] = live
            while len(_LIVE) > _LIVE_MAX:
                _LIVE.pop(next(iter(_LIVE)))
    else:
        decision = outcome()
        update["decision"] = decision
        update["rounds"] = [{"round": 1, "views": decision["views"], "terms": decision.get("terms"), "steps": step.index,
                             "messages": decision["messages_sent"]}]
    return update


def route_after_protocol(state: dict[str, Any]) -> str:
    return "finalize" if state.get("decision") or rejected(state) else "protocol"


def route_after_decide(state: dict[str, Any]) -> list[Any] | str:
    if state.get("decision") or rejected(state):
        return "finalize"
    if state["consensus"]["mode"] in REPLICATED:
        return "protocol"
    last = (state.get("rounds") or [{}])[-1]
    return fan_out(state, previous={"round": last.get("round"), "tally": last.get("tally")})


def settle_reputation(state: dict[str, Any], config: RunnableConfig | None) -> dict[str, dict[str, Any]]:
    """Record what this run adds to each voter's track record (once per thread) and report
    each voter's score before and after it. Nothing is recorded before the protocol ran."""
    cfg = ConsensusConfig.model_validate(state["consensus"])
    before = Reputation(record={k: (v[0], v[1]) for k, v in cfg.reputation.items()})
    decision = state.get("decision")
    if not decision:
        return {}
    choices: dict[str, str | None] = {}
    for key, rec in sorted((state.get("ballots") or {}).items()):  # a voter's last round counts
        if rec.get("ballot"):
            choices[rec["voter"]] = rec.get("told_others") or rec["ballot"]["choice"]
    suspects = set(decision.get("suspects") or {})
    runs = run_record(cfg.names(), choices, decision.get("decision"), suspects)
    consensus_store.record_run(store(config), thread_id=thread_id(config), mode=cfg.mode, question=cfg.question,
                               decision=decision.get("decision"), voters={
                                   v: {"choice": choices.get(v), "suspected": v in suspects,
                                       "agreed": runs[v][0], "counted": runs[v][1]} for v in cfg.names()})
    after = before.plus(runs)
    return {v: {"before": before.score(v), "after": after.score(v),
                "agreed": after.record.get(v, (0, 0))[0], "counted": after.record.get(v, (0, 0))[1]}
            for v in cfg.names()}


def consensus_result(state: dict[str, Any]) -> dict[str, Any]:
    """The consensus block of the result: decision, mode, rounds/views, messages, ballots…"""
    cfg = ConsensusConfig.model_validate(state["consensus"])
    decision = state.get("decision") or {}
    ballots = [{"key": k, **{f: rec.get(f) for f in ("voter", "round", "status", "fault", "source", "ballot",
                                                      "told_others", "problems", "withheld", "late")}}
               for k, rec in sorted((state.get("ballots") or {}).items())]
    sent = len(state.get("messages") or [])  # every message sent is a record in state: ballots, pbft, raft
    return {"question": QUESTIONS[cfg.question].text, "mode": cfg.mode, "voters": cfg.voters,
            "faults": {k: v for k, v in state["consensus"]["faults"].items()},
            "decision": decision.get("decision"), "reason": decision.get("reason"),
            "rounds": decision.get("rounds"), "views": decision.get("views"), "terms": decision.get("terms"),
            "messages_sent": sent, "fallback": bool(decision.get("fallback")),
            "suspects": decision.get("suspects") or {}, "ballots": ballots,
            "phases": [{k: p[k] for k in ("step", "phase", "messages", "time")} for p in state.get("protocol") or []],
            **{k: decision[k] for k in ("tally", "weights", "needed", "f", "confidence", "committed_by", "log", "caught_up",
                                        "expected_messages_fault_free", "log_safety_violations") if k in decision}}


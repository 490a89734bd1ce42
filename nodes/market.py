"""Contract-net market nodes: announce → call for bids → bid ×N → award → execute → verify → settle.

    announce ──► open_task ──Send×eligible──► bid (agent: estimate_cost → submit_bid)
                    ▲                             │ bids[task#round][bidder]
                    │                             ▼
                 settle ◄── verify ◄── execute ◄── award (auction → contract)
                 (paid | breach → re-auction to the others, reputation halved)

The auction logic is :mod:`relaygraph.coordination.auctions`; these nodes add the agents:

* each **bidder** is a ReAct agent that prices the task with ``estimate_cost`` — grounded in the
  data (the partition's real row count), the method's cost, its own load (rows it already won
  this run) and how well its capability matches — and submits with ``submit_bid``; the bid that
  counts is the one the agent submits, not the estimate;
* the **winner** executes the task with the method's data tool on its partition;
* a **verifier** agent checks the acceptance criteria with ``check_acceptance``, which recomputes
  the expected rows from the data and reads what the winner's tool calls really returned.

``configurable.order``: ``announced`` auctions the tasks one at a time as listed; ``regret`` has
every eligible bidder price every open task per pricing round (``bids["task#round@pricing"]``)
and auctions the task with the highest regret first (``coordination.auctions.next_by_regret``).

Bids live in state under ``bids["task#round"][bidder]``, written by one ``Send`` branch per
bidder, so a crash mid-auction keeps the bids already collected (LangGraph saves each finished
branch's writes) and ``resume`` asks only the bidders that had not answered.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from typing import Annotated, Any, Literal, TypedDict

import sqlalchemy as sa
from langchain_core.runnables import RunnableConfig
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from langgraph.types import Send
from pydantic import BaseModel, Field, field_validator, model_validator
from relaygraph.config.settings import settings_from_config
from relaygraph.coordination.auctions import (
    DEFAULT_REPUTATION,
    METHOD_COST,
    MIN_REPUTATION,
    AcceptanceCriterion,
    AuctionRules,
    Bid,
    Contract,
    Verification,
    eligible_bidders,
    estimate_cost,
    next_by_regret,
    regret,
    run_auction,
    settle,
)
from relaygraph.coordination.registry import Registry, Requirement, match_score
from relaygraph.nodes import market_store
from relaygraph.nodes.agent import (
    AgentSpec,
    make_agent_node,
    resolve_dataset,
    thread_id,
)
from relaygraph.nodes.approval import rejected
from relaygraph.nodes.failures import Failure, recording_failures
from relaygraph.nodes.params import RunParams, declared_roles
from relaygraph.nodes.protocols import Node, UpdateNode
from relaygraph.nodes.state import NodeProgress, WorkflowState, merge_dicts
from relaygraph.observability import tracing
from relaygraph.tools import ToolResult, TypedTool, Workspace, build_tools, roles
from relaygraph.tools import markdown as md
from relaygraph.tools.analytics import find_customer_column
from relaygraph.tools.frames import date_column, load

#: The capability each method needs (a task's requirement).
METHOD_CAPABILITY: dict[str, str] = {
    "profile_dataset": "profiling",
    "aggregate": "aggregation",
    "validate_dataset": "validation",
    "detect_outliers": "outlier_detection",
    "score_records": "scoring",
    "segment_customers": "segmentation",
}
#: Methods whose observation reports the rows it covered (what the verifier checks).
VERIFIABLE = ("validate_dataset", "score_records", "profile_dataset", "segment_customers")


def missing_columns(frame: Any, method: str) -> list[str]:
    """What the data lacks for ``method`` (empty when the method can run on it): the columns the
    method's tool looks for, described as it would when it raised."""
    missing = []
    measures = [r for r in roles.infer_roles(frame).values() if r.is_measure]
    if method in ("score_records", "detect_outliers", "aggregate") and not measures:
        missing.append("a numeric measure column")
    if method == "segment_customers":
        if find_customer_column(frame) is None:
            missing.append("a customer column (a text column named like customer/client/account/user, "
                           "or a repeating *_id column)")
        if date_column(frame) is None:
            missing.append("an order date column")
        if not any(r.role == "additive" for r in measures):
            missing.append("an additive spend column (a sum of money or quantity)")
    return missing


class MarketConfig(RunParams):
    """The run's market options (``configurable``; ``--param`` keys of the auction graph)."""

    auction: Literal["sealed", "vickrey", "english"] = "vickrey"
    tasks: int = Field(default=4, ge=1, le=32)  # partitions announced as tasks
    methods: list[str] = Field(default_factory=lambda: list(VERIFIABLE))
    reserve_factor: float = Field(default=2.5, gt=0, allow_inf_nan=False)  # reserve = factor × method's base cost
    decrement: float = Field(default=0.05, gt=0, allow_inf_nan=False)
    deadline_s: float = Field(default=300.0, gt=0, allow_inf_nan=False)
    min_reputation: float = Field(default=MIN_REPUTATION, ge=0, le=1)
    #: ``announced``: one task at a time, as listed. ``regret``: each round every eligible bidder
    #: prices every open task, and the task with the highest regret (second-lowest bid − lowest)
    #: is auctioned (see ``coordination.auctions.sequential_auctions``; bench/market.py).
    order: Literal["announced", "regret"] = "announced"
    #: ``TASK:late|fail|wrong[,TASK:...]``: the task's first winner breaches that way (a late
    #: delivery, a failed execution, a result that fails verification), so the re-auction,
    #: reputation and settlement paths can be seen on real data without scripted agents.
    breach: dict[str, Literal["late", "fail", "wrong"]] = Field(
        default_factory=dict, description="TASK:late|fail|wrong[,...]: the task's first winner breaches that way.")

    @field_validator("breach", mode="before")
    @classmethod
    def _breach(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        found: dict[str, str] = {}
        for item in (v.strip() for v in value.split(",") if v.strip()):
            task, sep, kind = item.partition(":")
            if not sep or not re.fullmatch(r"t[1-9]\d*", task.strip()) or kind.strip() not in ("late", "fail", "wrong"):
                raise ValueError(f"bad breach {item!r}: write TASK:late|fail|wrong, e.g. t1:late (tasks are t1, t2, …)")
            found[task.strip()] = kind.strip()
        return found

    @model_validator(mode="after")
    def _breach_tasks(self) -> MarketConfig:
        beyond = sorted(t for t in self.breach if int(t[1:]) > self.tasks)
        if beyond:
            raise ValueError(f"breach names {', '.join(beyond)}, but only t1–t{self.tasks} are announced "
                             f"(--param tasks={self.tasks})")
        return self

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, value: Any) -> Any:
        methods = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if isinstance(methods, list) and not methods:
            raise ValueError(f"no method given; choose one or more of {', '.join(VERIFIABLE)}")
        unknown = [m for m in methods if m not in VERIFIABLE]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(VERIFIABLE)}")
        return methods


def market_config(config: RunnableConfig | None) -> MarketConfig:
    configurable = (config or {}).get("configurable") or {}
    return MarketConfig.model_validate({k: v for k, v in configurable.items() if k in MarketConfig.model_fields})


def check_task_count(tasks: int, rows: int, dataset: str) -> None:
    """Refuse more tasks than the data has rows: the extra partitions would be empty tasks."""
    if tasks > rows:
        raise ValueError(f"--param tasks={tasks} asks for more partitions than {dataset} has rows "
                         f"({md.plural(rows, 'row')}); use --param tasks={max(rows, 1)} or fewer")


def check_market_data(configurable: dict[str, Any]) -> None:
    """Before any work (the CLI's ``check_config``): the options, and that the data has a row
    for every task. A dataset that cannot be resolved here is left to the run's own checks."""
    config: RunnableConfig = {"configurable": configurable}
    cfg = market_config(config)
    settings = settings_from_config(config)
    try:
        workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config), roles=declared_roles(config))
        dataset = resolve_dataset({}, settings, workspace)
        frame, _ = load(workspace, dataset)
    except (FileNotFoundError, PermissionError, OSError):
        return
    check_task_count(cfg.tasks, len(frame), dataset)


class Task(BaseModel):
    """An announced task: one method on one partition of the data."""

    id: str
    method: str
    partition: str
    rows: int
    requirement: Requirement
    reserve: float
    deadline_s: float


class MarketState(WorkflowState, total=False):
    tasks: list[dict[str, Any]]
    unsupported: list[dict[str, Any]]  # tasks the data cannot support (not announced), with what is missing
    bids: Annotated[dict[str, dict[str, Any]], merge_dicts]  # "task#round" -> bidder -> bid
    market: Annotated[dict[str, dict[str, Any]], merge_dicts]  # task id -> its auction's story
    ledger: Annotated[dict[str, dict[str, Any]], merge_dicts]  # reputation / load per agent
    current: dict[str, Any] | None


class BidInput(TypedDict, total=False):
    task: str
    data: str | None
    context: dict[str, Any]
    call: dict[str, Any]


def span(name: str, **attributes: Any) -> Any:
    """A child span of the current node for a market event (a no-op when tracing is off)."""
    return span_since(name, None, attributes)


def span_since(name: str, start_time: int | None, attributes: dict[str, Any]) -> Any:
    """:func:`span`, started at ``start_time`` (ns since the epoch) when it covers time before it
    was opened (a negotiation round: from its opening to its close)."""
    if not tracing.enabled():
        return contextlib.nullcontext()
    return tracing.tracer().start_as_current_span(name, start_time=start_time, attributes={
        k: (v if isinstance(v, (str, int, float, bool)) else json.dumps(v, default=str))
        for k, v in attributes.items() if v is not None})


def store(config: RunnableConfig | None, settings: Any) -> Any:
    """Where history goes: the run's SQLAlchemy saver (its engine), else the checkpoint URL."""
    saver = ((config or {}).get("configurable") or {}).get(CONFIG_KEY_CHECKPOINTER)
    return saver if isinstance(getattr(saver, "engine", None), sa.Engine) else settings.checkpoint_db


def elapsed(started: float) -> float:
    """Seconds since ``started`` (a ``time.perf_counter()`` reading), for progress lines."""
    return round(time.perf_counter() - started, 6)


def round_key(task_id: str, round_: int) -> str:
    return f"{task_id}#{round_}"


# --- tools -------------------------------------------------------------------------------------


class EstimateCostTool(TypedTool):
    """A bidder's cost for the announced task, from the data and its own situation."""

    name = "estimate_cost"
    description = ("Estimate what doing the announced task would cost you: counts the rows of the task's "
                   "partition in the data and prices them with the method's cost, your current load and "
                   "how well your capability matches. Returns the cost to bid.")
    inputs = {"task_id": {"type": "string", "description": "The announced task's id."}}
    output_type = "string"

    def __init__(self, task: Task, workspace: Workspace, dataset: str, capability_match: float,
                 load_rows: int) -> None:
        self.task, self.workspace, self.dataset = task, workspace, dataset
        self.match, self.load_rows = capability_match, load_rows
        self.inputs = {"task_id": {**self.inputs["task_id"], "enum": [task.id]}}
        super().__init__()

    def forward(self, task_id: str) -> ToolResult:
        if task_id != self.task.id:
            raise ValueError(f"no announced task {task_id!r}; the task is {self.task.id!r}")
        frame, _ = load(self.workspace, self.dataset, self.task.partition)
        cost = estimate_cost(len(frame), self.task.method, load_rows=self.load_rows, match=self.match)
        return ToolResult(
            summary=f"{self.task.method} on {md.plural(len(frame), 'row')} (partition {self.task.partition}) costs you "
                    f"{cost:g} (method {METHOD_COST[self.task.method]:g}/1k rows, capability match "
                    f"{self.match:g}, load {md.plural(self.load_rows, 'row')}).",
            facts={"task_id": task_id, "rows": len(frame), "method": self.task.method, "cost": cost,
                   "capability_match": self.match, "load_rows": self.load_rows},
            artifacts={"cost": f"{cost:g}"})


class BidBox:
    def __init__(self) -> None:
        self.bid: dict[str, Any] | None = None


class SubmitBidTool(TypedTool):
    name = "submit_bid"
    description = "Submit your bid for the announced task: the cost at which you will do it (lowest wins)."
    inputs = {
        "task_id": {"type": "string", "description": "The announced task's id."},
        "cost": {"type": "number", "description": "Your price for doing the task (work units)."},
    }
    output_type = "string"

    def __init__(self, task: Task, box: BidBox) -> None:
        self.task, self.box = task, box
        self.inputs = {**self.inputs, "task_id": {**self.inputs["task_id"], "enum": [task.id]}}
        super().__init__()

    def forward(self, task_id: str, cost: float) -> ToolResult:
        if task_id != self.task.id:
            raise ValueError(f"no announced task {task_id!r}; the task is {self.task.id!r}")
        cost = float(cost)
        if not cost >= 0 or cost == float("inf"):
            raise ValueError("a bid is a finite, non-negative cost")
        if self.box.bid is not None:
            raise ValueError("you have already bid on this task; one sealed bid per bidder")
        self.box.bid = {"cost": cost}
        return ToolResult(summary=f"Bid of {cost:g} recorded for {task_id}.", facts={"task_id": task_id, "cost": cost})


def executed_facts(steps: list[dict[str, Any]], method: str) -> dict[str, Any]:
    """What the winner's tool calls really did: the method's successful calls, their partition
    and the rows they reported (read from the recorded observation)."""
    calls = [s for s in steps if s.get("tool") == method and not s.get("error")]
    if not calls:
        return {"method_called": False}
    last = calls[-1]
    rows = (last.get("facts") or {}).get("rows")
    return {"method_called": True, "partition": (last.get("arguments") or {}).get("partition"),
            "rows": int(rows) if isinstance(rows, (int, float)) else None}


class CheckAcceptanceTool(TypedTool):
    name = "check_acceptance"
    description = ("Check the contract's acceptance criteria against the data: recomputes the partition's "
                   "rows and compares them with what the winner's tool calls returned.")
    inputs = {"task_id": {"type": "string", "description": "The contracted task's id."}}
    output_type = "string"

    def __init__(self, contract: Contract, task: Task, execution: dict[str, Any], workspace: Workspace,
                 dataset: str) -> None:
        self.contract, self.task, self.execution = contract, task, execution
        self.workspace, self.dataset = workspace, dataset
        self.inputs = {"task_id": {**self.inputs["task_id"], "enum": [task.id]}}
        super().__init__()

    def forward(self, task_id: str) -> ToolResult:
        if task_id != self.task.id:
            raise ValueError(f"no contract for {task_id!r}; the contract is for {self.task.id!r}")
        frame, _ = load(self.workspace, self.dataset, self.task.partition)
        facts = self.execution.get("facts") or {}
        observed = {"expected_rows": len(frame), **facts}
        checks = {
            "method_called": bool(facts.get("method_called")),
            "partition": facts.get("partition") == self.task.partition,
            "rows": facts.get("rows") == len(frame),
        }
        failed = [k for k, ok in checks.items() if not ok]
        verdict = "all acceptance criteria met" if not failed else f"failed: {', '.join(failed)}"
        return ToolResult(summary=f"{task_id}: {verdict} (expected {md.plural(len(frame), 'row')}, reported "
                                  f"{facts.get('rows')}).", facts={"task_id": task_id, "checks": checks,
                                                                   "observed": observed})


# --- nodes -------------------------------------------------------------------------------------


def announce(registry: Registry[AgentSpec]) -> UpdateNode:
    """Split the data into ``tasks`` partitions, one method each, priced with a reserve; load
    every bidder's reputation from earlier runs."""

    def announce_tasks(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        started = time.perf_counter()
        settings = settings_from_config(config)
        cfg = market_config(config)
        workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config), roles=declared_roles(config))
        dataset = resolve_dataset(state, settings, workspace)
        frame, _ = load(workspace, dataset)
        check_task_count(cfg.tasks, len(frame), dataset)
        tasks: list[dict[str, Any]] = []
        unsupported: list[dict[str, Any]] = []
        for k in range(1, cfg.tasks + 1):
            method = cfg.methods[(k - 1) % len(cfg.methods)]
            partition = f"{k}/{cfg.tasks}"
            part = load(workspace, dataset, partition)[0] if cfg.tasks > 1 else frame
            rows = len(part)
            missing = missing_columns(part, method)
            if missing:  # not announced: no agent could do it, so none should bid, win or breach
                unsupported.append({"id": f"t{k}", "method": method, "partition": partition, "rows": rows,
                                    "missing": missing})
                continue
            reserve = round(cfg.reserve_factor * METHOD_COST[method] * max(rows, 1) / 1000, 4)
            tasks.append(Task(id=f"t{k}", method=method, partition=partition, rows=rows,
                              requirement=Requirement(name=METHOD_CAPABILITY[method]), reserve=reserve,
                              deadline_s=cfg.deadline_s).model_dump())
        announced = span("auction.announce", **{
            "auction.dataset": dataset, "auction.tasks": [t["id"] for t in tasks],
            "auction.methods": {t["id"]: t["method"] for t in tasks},
            "auction.reserves": {t["id"]: t["reserve"] for t in tasks},
            "auction.unsupported": [u["id"] for u in unsupported] or None})
        with announced:  # the announcement itself, as a span of its own (the node's span also loads the data)
            pass
        names = [s.name for s in registry]
        stored = market_store.load_reputation(store(config, settings), names)
        reputation = {n: stored.get(n, DEFAULT_REPUTATION) for n in names}
        market = {t["id"]: {"status": "open", "round": 1, "excluded": [], "rounds": []} for t in tasks}
        detail = f"{len(tasks)} tasks announced on {dataset}" + (
            f"; {len(unsupported)} unsupported by the data ("
            + "; ".join(f"{u['id']} {u['method']}: no {', '.join(u['missing'])}" for u in unsupported) + ")"
            if unsupported else "")
        return {"tasks": tasks, "unsupported": unsupported, "market": market, "context": {"dataset": dataset},
                "ledger": {"reputation": reputation, "load": dict.fromkeys(names, 0)},
                "progress": [NodeProgress(node="announce", status="partial" if unsupported else "completed",
                                          duration_s=round(time.perf_counter() - started, 4),
                                          detail=detail).model_dump()]}

    announce_tasks.__name__ = "announce"
    return announce_tasks


def open_task(registry: Registry[AgentSpec]) -> UpdateNode:
    """The next open task with eligible bidders becomes ``current``; a task with none is closed
    with the outcome ``no_eligible_agent`` (and recorded)."""

    def call_for_bids(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        settings, cfg = settings_from_config(config), market_config(config)
        market, updates = state.get("market") or {}, {}
        reputation = (state.get("ledger") or {}).get("reputation") or {}
        candidates = []
        for raw in state.get("tasks") or []:
            task = Task.model_validate(raw)
            entry = market.get(task.id) or {}
            if entry.get("status") != "open":
                continue
            capable = [s.name for s in registry.find(task.requirement)]
            eligible = eligible_bidders(capable, reputation, exclude=entry.get("excluded") or [],
                                        min_reputation=cfg.min_reputation)
            if eligible:
                candidates.append({"task_id": task.id, "round": entry.get("round", 1), "eligible": eligible})
                if cfg.order == "announced":
                    break
                continue
            result = run_auction([], AuctionRules(kind=cfg.auction, reserve=task.reserve), eligible=[])
            market_store.record_auction(store(config, settings), thread_id=thread_id(config), task_id=task.id,
                                        round=entry.get("round", 1), kind=cfg.auction, outcome=result.outcome,
                                        winner=None, price=None, bids={}, duration_s=0.0, settlement=None,
                                        breach=None)
            breached = entry.get("excluded") or []
            if capable and set(capable) <= set(breached):  # they all had the capability, and all broke it
                updates[task.id] = {"status": "unallocated", "outcome": result.outcome, "reason": (
                    f"every capable agent breached this task ({', '.join(capable)}; needs {task.requirement}); "
                    "no one is left to re-auction it to")}
                continue
            low = {n: float(reputation.get(n, DEFAULT_REPUTATION)) for n in capable if n not in breached
                   and reputation.get(n, DEFAULT_REPUTATION) < cfg.min_reputation}
            reason = (f"{result.reason} (needs {task.requirement}; capable: {', '.join(capable) or 'none'}; "
                      f"excluded after breach: {', '.join(breached) or 'none'}; excluded by reputation below "
                      f"min_reputation {cfg.min_reputation:g}: "
                      f"{', '.join(f'{n} {v:g}' for n, v in low.items()) or 'none'})")
            if low:
                reason += (f" — to proceed, accept them with --param min_reputation={min(low.values()):g} "
                           "or clear the stored scores with `relaygraph agents reset-reputation "
                           "[NAME...]` (see `relaygraph agents`)")
            updates[task.id] = {"status": "unallocated", "outcome": result.outcome, "reason": reason}
        if not candidates:
            return {"current": None, "market": updates}
        if cfg.order == "announced":
            return {"current": {**candidates[0], "started": time.time()}, "market": updates}
        # regret order: this pricing round asks for bids on every open task, under keys of its own
        pricing = int((state.get("ledger") or {}).get("pricing") or 0) + 1
        for c in candidates:
            c["key"] = f"{round_key(c['task_id'], c['round'])}@{pricing}"
        return {"current": {"candidates": candidates, "pricing": pricing, "started": time.time()},
                "market": updates, "ledger": {"pricing": pricing}}

    call_for_bids.__name__ = "open_task"
    return call_for_bids


def route_bids(state: dict[str, Any]) -> list[Send] | str:
    """One ``Send`` per eligible bidder of the current task — in regret order, per eligible
    bidder of every open task (bids already recorded are kept)."""
    current = state.get("current")
    if not current or rejected(state):
        return "finalize"
    load_rows = (state.get("ledger") or {}).get("load") or {}
    reputation = (state.get("ledger") or {}).get("reputation") or {}
    sends = []
    for candidate in current.get("candidates") or [current]:
        task = next(t for t in state["tasks"] if t["id"] == candidate["task_id"])
        context = {"dataset": (state.get("context") or {}).get("dataset"), "task_id": task["id"],
                   "partition": task["partition"], "method": task["method"]}
        key = candidate.get("key") or round_key(task["id"], candidate["round"])
        sends += [Send("bid", {"task": state.get("task"), "data": state.get("data"), "context": context,
                               "call": {"task": task, "round": candidate["round"], "bidder": bidder, "key": key,
                                        "load_rows": int(load_rows.get(bidder, 0)),
                                        "reputation": float(reputation.get(bidder, DEFAULT_REPUTATION))}})
                  for bidder in candidate["eligible"]]
    return sends


def make_bid_node(registry: Registry[AgentSpec]) -> UpdateNode:
    """The node every bid call runs: the bidder's agent estimates and bids.

    A bidder whose agent fails for good (on the run's own retry budget, through the one failure
    path of :mod:`relaygraph.nodes.failures`) makes no bid; the auction goes on without it.
    """

    def bid(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        call = state["call"]
        task = Task.model_validate(call["task"])
        spec = registry.get(call["bidder"])
        settings = settings_from_config(config)
        workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config), roles=declared_roles(config))
        dataset = resolve_dataset(state, settings, workspace)
        match = match_score(task.requirement.satisfied_by(spec.capabilities), task.requirement)
        box = BidBox()
        bidder = spec.model_copy(update={
            "tools": (),
            "instructions": (f"{spec.instructions} A task is announced: {task.method} on partition "
                             f"{task.partition}. Estimate your cost with estimate_cost, then submit your bid "
                             f"with submit_bid. The lowest bid wins; you are paid by the auction's rule.")})
        tools = lambda _ctx: [EstimateCostTool(task, workspace, dataset, match, call["load_rows"]),
                              SubmitBidTool(task, box)]
        key = call.get("key") or round_key(task.id, call["round"])
        record: dict[str, Any] = {"bidder": spec.name, "reputation": call["reputation"],
                                  "load_rows": call["load_rows"], "capability_match": match}
        # Named by the bidder, so a trace shows who bid what on which task (every bid node is "node bid").
        with span(f"bid {spec.name}", **{"auction.task": task.id, "auction.round": call["round"],
                                         "auction.bidder": spec.name, "auction.load_rows": call["load_rows"],
                                         "auction.capability_match": match}) as bid_span:
            update = make_agent_node(bidder, node=f"bid_{spec.name}", extra_tools=tools)(state, config)
            estimate = next(((s.get("facts") or {}).get("cost") for s in reversed(update["steps"])
                             if s.get("tool") == "estimate_cost" and not s.get("error")), None)
            if box.bid is None:
                record |= {"status": "no_bid", "reason": "the agent did not submit a bid", "estimate": estimate}
            else:
                record |= {"status": "bid", "cost": box.bid["cost"], "estimate": estimate}
            if bid_span is not None:
                bid_span.set_attribute("auction.bid.status", record["status"])
                for attribute, value in (("auction.bid.amount", record.get("cost")), ("auction.estimate", estimate)):
                    if value is not None:
                        bid_span.set_attribute(attribute, float(value))
        return {"steps": update["steps"], "bids": {key: {spec.name: record}}}

    def no_bid(state: dict[str, Any], outcome: Failure) -> dict[str, Any]:
        call = state["call"]
        task = Task.model_validate(call["task"])
        spec = registry.get(call["bidder"])
        match = match_score(task.requirement.satisfied_by(spec.capabilities), task.requirement)
        record = {"bidder": spec.name, "reputation": call["reputation"], "load_rows": call["load_rows"],
                  "capability_match": match, "status": "no_bid", "reason": outcome.failure.reason}
        key = call.get("key") or round_key(task.id, call["round"])
        return {**outcome.update(), "bids": {key: {spec.name: record}}}

    def who(state: dict[str, Any]) -> tuple[str, str]:
        name = state["call"]["bidder"]
        return name, f"bid_{name}"

    node = recording_failures(bid, who=who, on_failure=no_bid)
    node.__name__ = "bid"
    return node


def choose_by_regret(current: dict[str, Any], bids: dict[str, dict[str, Any]]
                     ) -> tuple[dict[str, Any], dict[str, float | str]]:
    """The pricing round's task to auction (:func:`~relaygraph.coordination.auctions.next_by_regret`
    on every open task's bids) as ``current``, and each task's regret. The other tasks' bids are
    not used: the next pricing round asks again, at the loads this award changes."""
    offers = {c["task_id"]: [Bid(bidder=n, cost=b["cost"]) for n, b in sorted((bids.get(c["key"]) or {}).items())
                             if b.get("status") == "bid"] for c in current["candidates"]}
    chosen = next_by_regret(offers) or current["candidates"][0]["task_id"]
    candidate = next(c for c in current["candidates"] if c["task_id"] == chosen)
    return ({**candidate, "pricing": current["pricing"], "started": current["started"]},
            {t: round(regret(b), 6) if math.isfinite(regret(b)) else str(regret(b)) for t, b in offers.items()})


def award(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """Run the auction on the bids collected; on award, the typed contract and the winner's load."""
    started = time.perf_counter()
    cfg = market_config(config)
    settings = settings_from_config(config)
    current, regrets = state["current"], None
    if "candidates" in current:  # regret order: auction the open task with the most to lose
        current, regrets = choose_by_regret(current, state.get("bids") or {})
    task = Task.model_validate(next(t for t in state["tasks"] if t["id"] == current["task_id"]))
    collected = (state.get("bids") or {}).get(current.get("key") or round_key(task.id, current["round"]), {})
    bids = [Bid(bidder=name, cost=b["cost"], reputation=b["reputation"])
            for name, b in sorted(collected.items()) if b.get("status") == "bid"]
    result = run_auction(bids, AuctionRules(kind=cfg.auction, reserve=task.reserve, decrement=cfg.decrement),
                         eligible=current["eligible"])
    with span("auction.award", **{"auction.task": task.id, "auction.round": current["round"],
                                  "auction.order": cfg.order, "auction.regret": regrets,
                                  "auction.kind": cfg.auction, "auction.outcome": result.outcome,
                                  "auction.winner": result.winner, "auction.price": result.price,
                                  "auction.bids": {b.bidder: b.cost for b in bids}}) as award_span:
        for clock in result.rounds:  # english: one event per clock round in which someone dropped out
            if award_span is not None:
                award_span.add_event("auction.clock", {"price": clock.price, "round": clock.round,
                                                       "active": ",".join(clock.active)})
    entry = (state.get("market") or {}).get(task.id) or {}
    story = {"round": current["round"], "auction": result.model_dump(), "order": cfg.order,
             "pricing": current.get("pricing"), "regret": regrets,
             "bids": {n: b.get("cost") for n, b in collected.items()},
             "no_bids": {n: b.get("reason") for n, b in collected.items() if b.get("status") != "bid"}}
    if result.outcome != "awarded":
        duration = round(time.time() - current["started"], 4)
        market_store.record_auction(store(config, settings), thread_id=thread_id(config), task_id=task.id,
                                    round=current["round"], kind=cfg.auction, outcome=result.outcome, winner=None,
                                    price=None, bids={b.bidder: b.cost for b in bids}, duration_s=duration,
                                    settlement=None, breach=None)
        return {"market": {task.id: {"status": "unallocated", "outcome": result.outcome, "reason": result.reason,
                                     "rounds": [*entry.get("rounds", []), story]}}, "current": None}
    assert result.winner is not None and result.price is not None  # an awarded auction has both
    contract = Contract(
        task_id=task.id, winner=result.winner, price=result.price, kind=cfg.auction, round=current["round"],
        deadline_s=task.deadline_s, acceptance=(
            AcceptanceCriterion(name="method_called", description=f"{task.method} ran without error", expected=True),
            AcceptanceCriterion(name="partition", description="on the contracted partition", expected=task.partition),
            AcceptanceCriterion(name="rows", description="reported rows equal the partition's rows in the data",
                                expected=task.rows)))
    load_rows = dict((state.get("ledger") or {}).get("load") or {})
    load_rows[result.winner] = load_rows.get(result.winner, 0) + task.rows
    return {"market": {task.id: {"contract": contract.model_dump(), "status": "contracted",
                                 "pending": story}},
            "ledger": {"load": load_rows}, "current": current,
            "progress": [NodeProgress(node="award", status="completed", duration_s=elapsed(started),
                                      detail=f"{task.id} → {result.winner} at {result.price:g} "
                                             f"({result.reason})").model_dump()]}


def route_award(state: dict[str, Any]) -> str:
    if rejected(state):
        return "finalize"
    return "execute" if state.get("current") else "open_task"


def contract_of(state: dict[str, Any]) -> tuple[Task, Contract]:
    current = state["current"]
    task = Task.model_validate(next(t for t in state["tasks"] if t["id"] == current["task_id"]))
    return task, Contract.model_validate(state["market"][task.id]["contract"])


def failure_cause(task: Task, state: dict[str, Any], config: RunnableConfig) -> Literal["agent", "data"]:
    """Whether a failed execution is down to the data: the method's tool, run on the contracted
    partition with its defaults, fails too (then no agent could have done it) — else the agent."""
    settings = settings_from_config(config)
    workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config), roles=declared_roles(config))
    dataset = resolve_dataset(state, settings, workspace)
    [tool] = build_tools([task.method], workspace)
    try:
        tool.forward(dataset=dataset, partition=task.partition)
    except Exception:  # noqa: BLE001 - any failure of the plain call is the data's
        return "data"
    return "agent"


def verdict_of(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The verifier's last successful ``check_acceptance`` call, from its step's typed facts (so a
    verify task replayed after a kill, or an agent that failed after checking, keeps its verdict)."""
    checked = [s for s in steps if s.get("tool") == "check_acceptance" and not s.get("error")]
    if not checked:
        return None
    facts = checked[-1].get("facts") or {}
    verification = Verification(checks=facts.get("checks") or {}, observed=facts.get("observed") or {})
    return verification.model_dump() | {"passed": verification.passed}


def on_the_failure_path(run: UpdateNode, agent: str, node: str) -> Node:
    """``run`` on the agents' one failure path (:func:`recording_failures`): an error before the
    run's last attempt raises (the node's RetryPolicy runs it again); on the last attempt it comes
    back as the :class:`Failure`, for the market to settle as what it is."""
    return recording_failures(run, who=lambda _state: (agent, node), on_failure=lambda _state, failure: failure)


def make_execute_node(registry: Registry[AgentSpec]) -> UpdateNode:
    """The winner does the task with the method's data tool on its partition.

    Its agent gets the run's ``max_retries`` attempts (compiled with ``agent_retry_policy``); a
    failure on the last one is the winner's breach (``execution.error``, settled as ``failure``),
    with a failed ``progress`` entry but not a run error: the task goes back to the others.
    """

    def execute(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        task, contract = contract_of(state)
        spec = registry.get(contract.winner)
        worker = spec.model_copy(update={
            "role": f"{spec.name} executing its contract", "tools": (task.method,),
            "instructions": f"You won the contract for {task.id}. Run {task.method} on partition {task.partition} "
                            f"of the dataset and report what it found."})
        context = {**(state.get("context") or {}), "partition": task.partition, "task_id": task.id}
        node = f"execute_{task.id}"
        work = on_the_failure_path(make_agent_node(worker, node=node), spec.name, node)
        started = time.perf_counter()
        with span(f"execute {task.id}", **{"auction.task": task.id, "auction.executor": spec.name,
                                            "auction.method": task.method, "auction.partition": task.partition,
                                            "auction.price": contract.price}) as execute_span:
            outcome = work({**state, "context": context}, config)
            if isinstance(outcome, Failure):
                steps, error, answer = outcome.steps, outcome.failure.reason, ""
                progress = outcome.update()["progress"]
            else:
                steps, error, answer, progress = outcome["steps"], None, outcome["answers"][spec.name], []
            if execute_span is not None and error is not None:
                execute_span.set_attribute("auction.execution.error", error[:300])
        duration = round(time.perf_counter() - started, 4)
        calls = [s for s in steps if s.get("tool") == task.method]
        if error is None and calls and all(s.get("error") for s in calls):  # its tool raised every time
            error = f"{task.method} raised: {calls[-1]['error']}"
        cause = failure_cause(task, state, config) if error else None
        execution = {"agent": spec.name, "error": error, "cause": cause, "duration_s": duration,
                     "facts": executed_facts(steps, task.method), "answer": answer[:600]}
        return {"steps": steps, "progress": progress, "market": {task.id: {"execution": execution}},
                "answers": {task.id: answer} if answer else {}}

    return execute


def make_verify_node(verifier: AgentSpec) -> UpdateNode:
    """The verifier agent checks the acceptance criteria with its tool (skipped after a failure:
    there is no result to verify).

    Its agent gets the run's ``max_retries`` attempts; a verifier that fails for good is a run
    error (not the winner's doing), and the task is settled on what it had checked, if anything —
    ``unverified`` when it checked nothing.
    """

    def verify(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        task, contract = contract_of(state)
        execution = state["market"][task.id]["execution"]
        if execution.get("error"):
            return {"market": {task.id: {"verification": None, "verifier_error": None}}}
        settings = settings_from_config(config)
        workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config), roles=declared_roles(config))
        dataset = resolve_dataset(state, settings, workspace)
        tool = lambda _ctx: [CheckAcceptanceTool(contract, task, execution, workspace, dataset)]
        context = {**(state.get("context") or {}), "task_id": task.id}
        node = f"verify_{task.id}"
        check = on_the_failure_path(make_agent_node(verifier, node=node, extra_tools=tool), verifier.name, node)
        outcome = check({**state, "context": context}, config)
        if isinstance(outcome, Failure):  # the verifier's failure, not the winner's: settled as unverified
            return {**outcome.update(), "market": {task.id: {"verification": verdict_of(outcome.steps),
                                                              "verifier_error": outcome.failure.reason}}}
        return {"steps": outcome["steps"],
                "market": {task.id: {"verification": verdict_of(outcome["steps"]), "verifier_error": None}}}

    return verify


def make_settle_node() -> UpdateNode:
    """Pay or name the breach; a breach re-opens the task for the others and halves the
    breaker's reputation. Every round is written to the history tables."""

    def settle_contract(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        started = time.perf_counter()
        settings, cfg = settings_from_config(config), market_config(config)
        task, contract = contract_of(state)
        entry = state["market"][task.id]
        execution = entry["execution"]
        raw = entry.get("verification")
        verification = Verification(checks=raw["checks"], observed=raw.get("observed") or {}) if raw else None
        reputation = dict((state.get("ledger") or {}).get("reputation") or {})
        before = reputation.get(contract.winner, DEFAULT_REPUTATION)
        error, duration_s = execution.get("error"), execution["duration_s"]
        cause: Literal["agent", "data"] = "data" if execution.get("cause") == "data" else "agent"
        injected = cfg.breach.get(task.id) if contract.round == 1 else None  # --param breach: first winner only
        if injected == "fail":
            error, cause = f"injected failure (--param breach={task.id}:fail)", "agent"
        elif injected == "late":
            duration_s = max(duration_s, contract.deadline_s + 1)
        elif injected == "wrong":
            verification = Verification(checks={**(verification.checks if verification else {}),
                                                "injected_wrong_result": False},
                                        observed=verification.observed if verification else {})
        settlement = settle(contract, before, error=error, duration_s=duration_s, verification=verification,
                            cause=cause, verifier_error=entry.get("verifier_error"))
        if injected:
            settlement = settlement.model_copy(update={
                "reason": f"{settlement.reason} (injected by --param breach={task.id}:{injected})"})
        reputation[contract.winner] = settlement.reputation_after
        story = {**entry["pending"], "contract": contract.model_dump(), "execution": execution,
                 "verification": raw, "settlement": settlement.model_dump()}
        duration = round(time.time() - state["current"]["started"], 4)
        market_store.record_auction(
            store(config, settings), thread_id=thread_id(config), task_id=task.id, round=contract.round,
            kind=cfg.auction, outcome="awarded", winner=contract.winner, price=contract.price,
            bids={k: v for k, v in story["bids"].items() if v is not None}, duration_s=duration,
            settlement=settlement.status, breach=settlement.breach, reputation_after=settlement.reputation_after,
            counted_breach=settlement.status == "breach" and settlement.cause != "data")
        update: dict[str, Any] = {"rounds": [*entry.get("rounds", []), story], "pending": None}
        ledger: dict[str, Any] = {"reputation": reputation}
        if settlement.status == "paid":
            update |= {"status": "settled", "outcome": "paid", "winner": contract.winner, "price": contract.price}
        elif settlement.status == "unverified":  # re-auctioning cannot help: the same verifier would check it
            update |= {"status": "settled", "outcome": "unverified", "winner": contract.winner, "price": None,
                       "reason": settlement.reason}
        else:
            load_rows = dict((state.get("ledger") or {}).get("load") or {})
            load_rows[contract.winner] = max(0, load_rows.get(contract.winner, 0) - task.rows)
            ledger["load"] = load_rows
            update |= {"status": "open", "round": contract.round + 1,
                       "excluded": [*entry.get("excluded", []), contract.winner]}
        detail = (f"{task.id}: {settlement.status} — {settlement.reason}"
                  + ("" if settlement.status != "breach" else "; re-auctioned to the others"))
        return {"market": {task.id: update}, "ledger": ledger, "current": None,
                "progress": [NodeProgress(node="settle", status="completed", duration_s=elapsed(started),
                                          detail=detail).model_dump()]}

    settle_contract.__name__ = "settle"
    return settle_contract


def summarize(state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The market's answer lines and its summary (per task, totals, reputation)."""
    market = state.get("market") or {}
    lines, tasks = [], {}
    paid = 0.0
    for raw in state.get("tasks") or []:
        entry = market.get(raw["id"]) or {}
        rounds = entry.get("rounds") or []
        breaches = [r["settlement"]["winner"] + ": " + r["settlement"]["breach"]
                    for r in rounds if (r.get("settlement") or {}).get("status") == "breach"]
        tasks[raw["id"]] = {"method": raw["method"], "partition": raw["partition"], "rows": raw["rows"],
                            "reserve": raw["reserve"], "status": entry.get("status"),
                            "outcome": entry.get("outcome"), "winner": entry.get("winner"),
                            "price": entry.get("price"), "rounds": rounds, "breaches": breaches,
                            "reason": entry.get("reason")}
        if entry.get("outcome") == "paid":
            paid += entry["price"]
            lines.append(f"✓ {raw['id']} {raw['method']} [{raw['partition']}, {md.plural(raw['rows'], 'row')}] → "
                         f"{entry['winner']} at {entry['price']:g} (reserve {raw['reserve']:g})"
                         + (f"; after breach by {', '.join(breaches)}" if breaches else ""))
        else:
            lines.append(f"✗ {raw['id']} {raw['method']} [{raw['partition']}]: {entry.get('outcome')} — "
                         f"{entry.get('reason')}")
    unsupported = list(state.get("unsupported") or [])
    for u in unsupported:
        lines.append(f"✗ {u['id']} {u['method']} [{u['partition']}]: unsupported by the data — no "
                     f"{', '.join(u['missing'])}; not announced")
    done = sum(1 for t in tasks.values() if t["outcome"] == "paid")
    total = len(tasks) + len(unsupported)
    lines.append(f"{done}/{total} tasks settled" + (f" ({len(unsupported)} unsupported by the data)"
                                                     if unsupported else "") + f"; total paid {paid:g} work units.")
    summary = {"tasks": tasks, "unsupported": unsupported, "settled": done, "total": total,
               "total_paid": round(paid, 4),
               "reputation": (state.get("ledger") or {}).get("reputation") or {},
               "load_rows": (state.get("ledger") or {}).get("load") or {}}
    return "\n".join(lines), summary

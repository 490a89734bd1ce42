"""Consensus workflow: N voter agents answer a checkable question; a protocol decides.

    START ─► plan ─┬─Send─► vote(voter_1) ─┐
                   ├─Send─► vote(voter_2) ─┼─► decide ─┬─► finalize ─► END
                   └─Send─► vote(voter_N) ─┘           ├─(bft, no agreement: next round)─► vote…
                                                       └─(pbft, raft)─► protocol ⟲ (one phase per step) ─► finalize

Options (``configurable``; ``relaygraph run consensus --param mode=pbft --param voters=7
--param faults=lie,silent``): ``mode`` (majority, qualified, unanimous, weighted, bft, pbft,
raft), ``voters`` (N), ``faults`` (behaviours for the first voters, or ``voter_3=lie,…``),
``threshold`` (qualified), ``question`` (top_region, invalid_rows, publishable), ``seed``,
``reputation`` (a what-if override of the stored track records). See
:mod:`relaygraph.nodes.consensus`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from relaygraph.nodes.approval import with_approval
from relaygraph.nodes.consensus import (
    MAX_VOTERS,
    ConsensusState,
    VoteInput,
    check_question_data,
    consensus_config,
    consensus_result,
    decide,
    fan_out,
    make_plan,
    make_vote_node,
    protocol,
    route_after_decide,
    route_after_protocol,
    settle_reputation,
)
from relaygraph.nodes.contracts import AgentSpec, ConsensusResult
from relaygraph.nodes.failures import agent_retry_policy
from relaygraph.nodes.results import (
    ResultFields,
    extend_result,
    result_update,
    run_result,
    with_result_fields,
)
from relaygraph.nodes.state import RunInput
from relaygraph.nodes.team_params import ConsensusParams
from relaygraph.observability.instrument_langchain import TracedStateGraph

DESCRIPTION = "N voter agents answer a checkable question; voting, BFT rounds, PBFT or Raft decide, faults injectable."
DEFAULT_TASK = "Decide together, from the data, the answer to the consensus question."


PARAMS = ConsensusParams


def check_config(configurable: dict[str, Any]) -> None:
    """Bad options fail here, before any agent runs (the CLI calls it up front)."""
    consensus_config({"configurable": configurable})
    check_question_data(configurable)  # the question's columns exist in the dataset (exit 2 if not)


def finalize(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """The shared result extended by the consensus block; the voters' track records updated."""
    base = run_result(state, config)
    if not state.get("consensus"):  # stopped before the plan (rejected at an approval)
        return result_update(extend_result(base, ConsensusResult))
    block = consensus_result(state) | {"reputation": settle_reputation(state, config)}
    decided = block["decision"]
    answer = (f"{block['question']} → {decided!r} ({block['mode']}, {block['voters']} voters"
              f"{', fallback' if block['fallback'] else ''}). {block['reason']}" if decided is not None
              else f"{block['question']} → no decision ({block['mode']}). {block['reason']}")
    status = base.status
    if decided is None and status == "completed":
        status = "partial"  # the agents ran, the protocol did not decide: say so
    if base.status == "rejected":
        answer = f"{base.answer}\n\n{answer}"
    result = extend_result(base.model_copy(update={"answer": answer, "status": status}), ConsensusResult,
                           consensus=block)
    return result_update(result)


def consensus_team(
    voters: Sequence[AgentSpec] | None = None,
    *,
    state_schema: type[Any] = ConsensusState,
    input_schema: type[Any] = RunInput,
    result_schema: type[ConsensusResult] | None = None,
    result_fields: ResultFields | None = None,
    approve_before: list[str] | None = None,
) -> StateGraph:
    """The consensus pattern: voter agents answer the configured question from the data and a
    protocol decides (``configurable``: mode, faults, question, …).

    ``voters``: your own voter agents (1–25, unique names). Each keeps its role, instructions
    and tools; it is told the question and also given the question's tool (``aggregate`` or
    ``validate_dataset``) and ``submit_ballot``, so its ballot is checked against what its own
    tools returned, like a built-in voter's. Faults and reputation name them (``faults=lie`` is
    the first of them; track records are kept by name). None: ``voter_1`` … ``voter_N``, built
    per round from the question (``configurable.voters``). Also yours: extra state keys
    (``state_schema``, a subclass of :class:`ConsensusState`) and result fields
    (``result_schema``, a subclass of :class:`ConsensusResult`, filled by ``result_fields(state)``).
    """
    team = list(voters or ())
    names = [v.name for v in team]
    if voters is not None and not 1 <= len(team) <= MAX_VOTERS:
        raise ValueError(f"A consensus team needs 1 to {MAX_VOTERS} voters; got {len(team)}.")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Voter names must be unique: {', '.join(duplicates)}.")
    retry = agent_retry_policy()  # the run's own budget: configurable.max_retries
    builder = TracedStateGraph(state_schema, input_schema=input_schema)
    builder.add_node("plan", make_plan(names or None))
    builder.add_node("vote", make_vote_node({v.name: v for v in team}), input_schema=VoteInput, retry_policy=retry)
    builder.add_node("decide", decide)
    builder.add_node("protocol", protocol)
    builder.add_node("finalize", with_result_fields(finalize, result_schema, result_fields, ConsensusResult))
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["vote", "finalize"])
    builder.add_edge("vote", "decide")
    builder.add_conditional_edges("decide", route_after_decide, ["vote", "protocol", "finalize"])
    builder.add_conditional_edges("protocol", route_after_protocol, ["protocol", "finalize"])
    builder.add_edge("finalize", END)
    return with_approval(builder, approve_before)


def build_graph(approve_before: list[str] | None = None) -> StateGraph:
    """The uncompiled graph (nodes: plan, vote, decide, protocol, finalize)."""
    return consensus_team(approve_before=approve_before)


graph = build_graph().compile(name="consensus")

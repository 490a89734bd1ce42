"""relaygraph.observability: tracing, usage and cost, stored spans and their exports.

One module per job, imported top-down (no cycles):

    semconv ─► usage ─► trace_store ─► tracing ─► instrument_langchain   (LangGraph/LangChain runs)
    messages ────────────────────────────────┴─► instrument_smolagents  (agents, steps, LLM, tools)
                                                 instrument_http       (traceparent on LLM calls)
    trace_store ─► trace_export                                         (tree, Jaeger JSON, OTLP JSON)

Importing the package registers the LangChain callback handler (``instrument_langchain``),
which acts only on runs of relaygraph's graphs (``INSTRUMENTED`` in their metadata) and leaves
every other LangChain/LangGraph run in the process alone; tracing itself is configured from the
settings on the first such run (``tracing.ensure_configured``) or explicitly (``tracing.configure``).

Why hand-written instrumentation (evaluated 2026-11-30, against the sequential graph on the
offline policy and a one-agent graph calling a fake OpenAI server; each library installed
in a separate venv, trees printed and compared; versions: openinference-instrumentation-
smolagents 0.1.43, -langchain 0.1.80, opentelemetry-util-genai 1.3b0,
opentelemetry-instrumentation-httpx 0.66b2):

* ``openinference-instrumentation-langchain``: one CHAIN span per graph and per node (named
  ``sequential``, ``extract``; ``session.id`` set) — but its spans never become the current
  OTel context in LangGraph's worker threads, so with the smolagents instrumentor as well the
  sequential run came out as **5 traces** (the graph, and each agent as its own root) where
  ours is one. No attempts, steps, checkpoint ids or usage rollups on node spans. Not adopted:
  it breaks "parents across thread pools".
* ``openinference-instrumentation-smolagents``: ``{agent}.run`` → ``Step N`` → LLM
  (``OpenAIModel.generate``) and tool spans (``ProfileDatasetTool``), tokens on LLM and agent
  spans. Same depth as ours, but (a) it wraps only ``Model`` subclasses that exist when
  ``instrument()`` runs — relaygraph's offline policy (defined later) got no LLM spans at all;
  (b) it reported ``llm.token_count.prompt = 0`` for the offline policy, which reports no
  tokens (ours: absent/None, never a made-up 0); (c) no cost or per-node rollups, no GenAI
  ``gen_ai.*`` names. Not adopted; its span kinds and ``llm.token_count.*`` keys are what we
  emit too, so Phoenix shows the same.
* ``opentelemetry-instrumentation-httpx``: the global ``instrument()`` saw plain
  ``httpx.Client`` calls but **not** the OpenAI SDK's ``DefaultHttpxClient`` (no span, no
  ``traceparent``), which is what smolagents' ``OpenAIServerModel`` and langchain-openai use;
  ``instrument_client()`` on that client raised ``IndexError`` in the wrapper on the first
  request. Not adopted; ``instrument_http`` injects ``traceparent`` with an httpx event hook
  on the SDK's own client (tested: the server sees the chat span as parent).
* ``opentelemetry-util-genai``: not an instrumentation (running a graph with it installed
  changes nothing); a beta helper (``TelemetryHandler.inference(...)``) for writing one.
  Its message types are the same ``{role, parts: [text | tool_call | tool_call_response]}``
  shape ``messages.py`` produces, but it decides content capture from its own variable
  (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``), while ours is
  ``RELAYGRAPH_TRACE_CONTENT``, and our chat spans open lazily inside a ReAct step and feed
  usage rollups. Not adopted while it is 1.x beta; ``messages.py`` is the small part we share.

What only our code does: node spans with attempt, step and the checkpoint ids they started
from and produced (from the saver's listener or the runner's checkpoint stream); usage and
cost rolled up per step, agent, node and run; one trace per run across LangGraph's and
smolagents' thread pools; Send branches named by their branch id.
"""

from relaygraph.observability import instrument_langchain as instrument_langchain

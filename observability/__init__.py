"""relaygraph.observability: tracing, usage and cost, stored spans and their exports.

One module per job, imported top-down (no cycles):

    semconv ─► usage ─► trace_store ─► tracing ─► instrument_langchain   (LangGraph/LangChain runs)
    messages ────────────────────────────────┴─► instrument_smolagents  (agents, steps, LLM, tools)
                                                 instrument_http       (traceparent on LLM calls)
    trace_store ─► trace_export                                         (tree, Jaeger JSON, OTLP JSON)

Importing the package registers the LangChain callback handler (``instrument_langchain``),
which is inert until a run starts; tracing itself is configured from the settings on the
first run (``tracing.ensure_configured``) or explicitly (``tracing.configure``).
"""

from relaygraph.observability import instrument_langchain as instrument_langchain

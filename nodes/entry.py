"""What an entry node of a root graph checks before a new run starts in it.

LangGraph does not validate a graph's input schema on ``invoke``, and a new input on a finished
thread is merged into the finished state. The CLI refuses both before it starts
(``cli/runner.refuse_reuse``, :class:`~relaygraph.nodes.state.RunInput`); Python and
``langgraph dev`` callers get the same rules here, from the approval gate every node is wrapped
in (:func:`relaygraph.nodes.approval.gate`). Kept apart from the gate: it is a rule about starting
runs, not about approvals.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph._internal._constants import CONFIG_KEY_CHECKPOINT_NS, CONFIG_KEY_RESUMING, NS_SEP
from relaygraph.config.settings import settings_from_config
from relaygraph.tools.workspace import dataset_name_problem


class ThreadFinishedError(ValueError):
    """A new input on a thread whose run already ended (Python or ``langgraph dev``).

    LangGraph would merge the input into the finished state, and the old run's result and
    approvals would stand in for the new run (a rejected thread stayed rejected without running
    anything). The CLI refuses the same before it starts (``cli/runner.refuse_reuse``)."""


def check_new_run(state: dict[str, Any], config: RunnableConfig, entry: bool) -> None:
    """What an entry node of the root graph checks when a new input starts a run (not a resume,
    not a fork's continuation), before it runs: LangGraph does not validate a graph's input
    schema on ``invoke``, so Python and ``langgraph dev`` callers get the CLI's rules here.

    * a ``data`` or ``configurable.dataset`` outside the data directory: :class:`ValueError` (the
      sandbox rule of :class:`~relaygraph.nodes.state.RunInput`), before a tool is asked to read it;
    * a thread that already holds a result: :class:`ThreadFinishedError`;
    * a ``configurable`` setting a run may not set (``trace_content``, ``data_dir``, ...): the
      one-line error of :func:`~relaygraph.config.settings.settings_from_config`, before the first
      node's work rather than at whichever node reads the settings first.
    """
    if not entry:
        return
    settings_from_config(config)
    conf = (config or {}).get("configurable") or {}
    if conf.get(CONFIG_KEY_RESUMING) or str(conf.get(CONFIG_KEY_CHECKPOINT_NS) or "").rpartition(NS_SEP)[0]:
        return
    for field, name in (("data", state.get("data")), ("configurable.dataset", conf.get("dataset"))):
        problem = dataset_name_problem(name)
        if problem:
            raise ValueError(f"{field} {problem}")
    result = state.get("result")
    if not result:
        return
    thread = conf.get("thread_id")
    status = result.get("status") if isinstance(result, dict) else None
    raise ThreadFinishedError(
        f"Thread {thread!r} already ran to its end (status {status}); a new input would be merged into that "
        "finished run. Start the new run on another thread_id, or fork one of its checkpoints "
        f"(`relaygraph fork {thread}`, or `graph.update_state` on an earlier checkpoint).")

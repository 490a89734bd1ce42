"""What a tool returns: a typed :class:`ToolResult`, and the text a model reads from it.

    forward() ──► ToolResult(summary, facts, artifacts) ──► Observation (a str: what the model reads)
                                                                 └── .result: the ToolResult itself

smolagents hands a model a string observation (``str(tool_output)``), and with
``output_type="string"`` it would also turn the tool's return value into a plain ``AgentText``,
throwing the structure away. :class:`TypedTool` keeps both: it returns an :class:`Observation`,
a ``str`` whose text is the rendered, length-limited result and which still carries the
:class:`ToolResult`. The agent node reads ``.result`` (facts and artifacts, untruncated and
never re-parsed); the model reads the text.
"""

from __future__ import annotations

import json
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field
from smolagents import Tool
from smolagents.agent_types import handle_agent_input_types

#: How many characters of a rendered result a model sees when nothing else is configured.
DEFAULT_OBSERVATION_CHARS = 4000


class ToolResult(BaseModel):
    """One tool call's outcome.

    * ``summary`` — one line a human (and a model) can read;
    * ``facts`` — the structured findings, JSON-ready (numbers, names, nested tables);
    * ``artifacts`` — named outputs later steps build on (``dataset`` for the cleaned file,
      ``report``, ``chart``, ``enriched_dataset``): file names as the workspace displays them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    summary: str
    facts: dict[str, Any] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict)

    def render(self, limit: int = DEFAULT_OBSERVATION_CHARS) -> str:
        """The model's view: the summary line, then compact JSON artifacts and facts, cut at ``limit``."""
        parts = [self.summary]
        if self.artifacts:  # before the facts: a cut must not hide the file the next step needs
            parts.append("artifacts: " + json.dumps(self.artifacts, separators=(",", ":")))
        if self.facts:
            parts.append("facts: " + json.dumps(self.facts, separators=(",", ":"), default=str))
        return truncate("\n".join(parts), limit)


def truncate(text: str, limit: int) -> str:
    """Keep the head of a long text, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [truncated {len(text) - limit} chars]"


class Observation(str):
    """The text a model reads (a ``str``), carrying the typed :class:`ToolResult` it came from."""

    result: ToolResult

    def __new__(cls, result: ToolResult, limit: int = DEFAULT_OBSERVATION_CHARS) -> Self:
        text = super().__new__(cls, result.render(limit))
        text.result = result
        return text


class TypedTool(Tool):
    """A smolagents tool whose ``forward`` returns a :class:`ToolResult`.

    ``__call__`` renders it as an :class:`Observation` of at most ``observation_chars`` and skips
    smolagents' output conversion (which would rebuild a plain ``AgentText`` and drop
    ``.result``); inputs are still converted as smolagents would.
    """

    output_type = "string"
    observation_chars: int = DEFAULT_OBSERVATION_CHARS
    #: The JSON-schema inputs smolagents reads: set in each tool's class body; an instance may
    #: replace them with its own narrowed copy (enums of the run's known values).
    inputs: dict[str, dict[str, Any]]

    def __call__(self, *args: Any, sanitize_inputs_outputs: bool = False, **kwargs: Any) -> Any:
        if sanitize_inputs_outputs:
            args, kwargs = handle_agent_input_types(*args, **kwargs)
        output = super().__call__(*args, sanitize_inputs_outputs=False, **kwargs)
        if isinstance(output, ToolResult):
            return Observation(output, self.observation_chars)
        return output


def result_of(output: Any) -> ToolResult | None:
    """The typed result behind a tool's return value, if it has one."""
    return output.result if isinstance(output, Observation) else None

"""Agents declared in a file: the same :class:`AgentSpec` as in Python, from YAML or TOML.

    # agents.yaml                          # agents.toml
    agents:                                [[agents]]
      - name: inspect                      name = "inspect"
        role: weather data inspector       role = "weather data inspector"
        instructions: Profile the file.    instructions = "Profile the file."
        tools: [profile_dataset]           tools = ["profile_dataset"]

Each entry is validated as an ``AgentSpec`` (unknown keys and unknown tool names are errors
that name the entry), so a typo fails when the file is loaded, not mid-run.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from relaygraph.nodes.contracts import AgentSpec


class SpecFileError(ValueError):
    """An agents file that cannot be read or has an invalid entry; the message names it."""


def load_agents(path: str | Path) -> tuple[AgentSpec, ...]:
    """The agents declared in ``path`` (``.yaml``/``.yml`` or ``.toml``), in file order.

    Register custom tools (:func:`relaygraph.tools.register_tool`) before loading a file that
    names them.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data: Any = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise SpecFileError(f"Cannot read agents file {path}: {str(exc).splitlines()[0]}") from None
    entries = data.get("agents") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise SpecFileError(f"Agents file {path} needs a non-empty 'agents' list.")
    specs = []
    for index, entry in enumerate(entries, start=1):
        if isinstance(entry, dict) and isinstance(entry.get("tools"), list):
            entry = {**entry, "tools": tuple(entry["tools"])}
        try:
            specs.append(AgentSpec.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "entry"
            name = entry.get("name", f"#{index}") if isinstance(entry, dict) else f"#{index}"
            raise SpecFileError(f"Agents file {path}, agent {name}: {where}: {first['msg']}") from None
    return tuple(specs)

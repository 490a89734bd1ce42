"""Versioned capabilities and a registry that finds agents by them.

An agent declares what it can do as ``Capability(name, version)``; a task asks for a
``Requirement(name, min_version)``. Matching is by name and a PEP 440 version comparison
(``packaging.version`` — the comparison pip uses — rather than a hand-rolled tuple parse, so
``"1.10" > "1.9"`` and pre-releases order correctly).

The registry is generic over what it holds (an ``AgentSpec`` in practice): it only needs a
name and capabilities, so this module stays free of LangGraph and of the node layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, field_validator


def _valid_version(value: str) -> str:
    try:
        Version(value)
    except InvalidVersion as exc:
        raise ValueError(f"not a version: {value!r} (use e.g. '1.2')") from exc
    return value


class Capability(BaseModel):
    """Something an agent can do, at a version (``trend_analysis`` 2.1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: str = "1.0"

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        return _valid_version(value)

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class Requirement(BaseModel):
    """What a task needs: a capability at ``min_version`` or later."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    min_version: str = "1.0"

    @field_validator("min_version")
    @classmethod
    def _version(cls, value: str) -> str:
        return _valid_version(value)

    def satisfied_by(self, capabilities: Iterable[Capability]) -> Capability | None:
        """The matching capability (highest version first), or None."""
        found = [c for c in capabilities if c.name == self.name
                 and Version(c.version) >= Version(self.min_version)]
        return max(found, key=lambda c: Version(c.version), default=None)

    def __str__(self) -> str:
        return f"{self.name}>={self.min_version}"


def match_score(capability: Capability | None, requirement: Requirement) -> float:
    """How well a capability fits (0 none, 1 exact minimum, up to 1.5 for a major version more).

    Used by cost estimates: a more capable agent works a little faster on the same task.
    """
    if capability is None:
        return 0.0
    have, need = Version(capability.version), Version(requirement.min_version)
    return min(1.5, 1.0 + 0.25 * (have.major - need.major) + 0.05 * max(0, have.minor - need.minor)
               * (have.major == need.major))


class Declares(Protocol):
    name: str
    capabilities: tuple[Capability, ...]


T = TypeVar("T", bound=Declares)


class Registry(Generic[T]):
    """Agents by name; ``find`` returns those meeting every requirement, in name order."""

    def __init__(self, items: Iterable[T] = ()) -> None:
        self._items: dict[str, T] = {}
        for item in items:
            self.register(item)

    def register(self, item: T) -> T:
        existing = self._items.get(item.name)
        if existing is not None and existing != item:
            raise ValueError(f"agent {item.name!r} is already registered with a different declaration")
        self._items[item.name] = item
        return item

    def __iter__(self) -> Iterator[T]:
        return iter(sorted(self._items.values(), key=lambda i: i.name))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def get(self, name: str) -> T:
        if name not in self._items:
            raise KeyError(f"no agent {name!r}; registered: {', '.join(sorted(self._items)) or 'none'}")
        return self._items[name]

    def find(self, *requirements: Requirement) -> list[T]:
        return [item for item in self if all(r.satisfied_by(item.capabilities) for r in requirements)]

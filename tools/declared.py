"""Column roles a user declares, which win over inference (:mod:`relaygraph.tools.roles`).

Inference reads names and values, and some columns defeat it: an additive ``balance_change``
reads like a balance (a level), a numeric ``store_id`` written as ``store`` reads like a measure.
A declaration (``--param roles=balance_change:additive,store:identifier``, ``configurable.roles``,
or ``Workspace(..., roles=...)``) settles it.

Declarations travel with the frame (``frame.attrs``): :func:`relaygraph.tools.frames.load`
attaches the run's, and every function that infers a role from a frame reads them, so no call
site can forget to pass them. This module has no dependencies, so the workspace, the loaders and
the parameter schemas can all validate a declaration the same way.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from typing import Literal

Role = Literal["identifier", "category", "time", "additive", "non_additive", "level", "text"]
ROLES: tuple[str, ...] = typing.get_args(Role)
#: Where a frame carries its declared roles (``frame.attrs[ATTRS_KEY]``: column -> role).
ATTRS_KEY = "relaygraph_declared_roles"


class DeclaredRoleError(ValueError):
    """A declaration naming an unknown role or column; the message lists what exists."""


def parse_roles(value: str | Mapping[str, str] | None) -> dict[str, Role]:
    """``"col:role,col:role"`` or a mapping, checked: ``{column: role}``.

    A column name may contain ``:``; the role is what follows the last one.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        pairs: list[tuple[str, str]] = []
        for item in value.split(","):
            if not item.strip():
                continue
            column, sep, role = item.rpartition(":")
            if not sep or not column.strip():
                raise DeclaredRoleError(f"roles expects COLUMN:ROLE pairs separated by commas, got {item.strip()!r} "
                                        f"(e.g. roles=balance_change:additive,store:identifier).")
            pairs.append((column.strip(), role.strip()))
    elif isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        raise DeclaredRoleError(f"roles must be COLUMN:ROLE pairs or a {{column: role}} mapping, got {value!r}.")
    declared: dict[str, Role] = {}
    for column, role in pairs:
        name = role.lower().replace("-", "_")
        if name not in ROLES:
            raise DeclaredRoleError(f"unknown role {role!r} for column {column!r}; roles: {', '.join(ROLES)}.")
        declared[column] = typing.cast(Role, name)
    return declared


def check_columns(declared: Mapping[str, str], columns: Iterable[object], dataset: str = "the dataset") -> None:
    """Every declared column exists, else a :class:`DeclaredRoleError` naming it and listing the columns."""
    names = [str(c) for c in columns]
    unknown = [c for c in declared if c not in names]
    if unknown:
        raise DeclaredRoleError(f"roles declares column {unknown[0]!r}, which {dataset} does not have; "
                                f"columns: {', '.join(names)}.")

"""The sandbox every data tool works in.

Agents choose paths, and a model can choose badly (or be steered by a prompt). So tools never
open a path themselves: they ask the :class:`Workspace`, which only hands out paths inside the
configured data directory (read) and this run's output directory (read/write).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from types import MappingProxyType

from relaygraph.config.ids import validate_thread_id
from relaygraph.tools.declared import parse_roles

DATA_SUFFIXES = (".csv", ".parquet", ".pq")


class PathNotAllowed(ValueError):
    """A tool was asked to touch a path outside the data/output directories."""


#: Said wherever a dataset name is refused up front: how to analyse a file that lives elsewhere.
ELSEWHERE_HINT = "to analyse a file elsewhere, pass it with --data FILE (it is copied into the run's folder)"


def dataset_name_problem(name: str | None) -> str | None:
    """Why ``name`` cannot name a dataset, judged on the name alone (no file system, nothing
    opened); ``None`` when it may. A dataset named in a run's input or ``configurable`` is a path
    *relative to the data directory*: an absolute path, ``~`` or a ``..`` part would leave it, so
    the input and param models refuse it (the tools would refuse it later)."""
    if name is None:
        return None
    raw = str(name).strip()
    if not raw:
        return "is empty: give a CSV/Parquet file name from the data directory"
    pure = PurePath(raw)
    if pure.is_absolute() or raw.startswith("~") or PurePath(os.path.normpath(raw)).parts[:1] == ("..",):
        return (f"{raw!r} is outside the data directory: give a file name relative to it (RELAYGRAPH_DATA_DIR); "
                + ELSEWHERE_HINT)
    return None


@dataclass(frozen=True)
class Workspace:
    """Where tools may read (``data_dir``) and write (``output_dir/run_id``).

    ``run_id`` is the thread id; one that is not a single safe path component (``..``, a
    separator, a control character) is refused with :class:`~relaygraph.config.ids.InvalidThreadId`.
    ``roles`` are the run's declared column roles (``{column: role}`` or ``"col:role,..."``): every
    dataset the tools load carries them, and they win over inferred roles.
    """

    data_dir: Path
    output_dir: Path
    run_id: str = "default"
    roles: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        validate_thread_id(self.run_id)
        object.__setattr__(self, "roles", MappingProxyType(parse_roles(self.roles)))
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())
        object.__setattr__(self, "output_dir", Path(self.output_dir).expanduser().resolve())

    @property
    def run_dir(self) -> Path:
        """This run's output folder (created on first use)."""
        path = self.output_dir / self.run_id
        if path.resolve().parent != self.output_dir:  # a symlinked run folder pointing elsewhere
            raise PathNotAllowed(f"Run folder {path} does not resolve inside {self.output_dir}.")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _inside(self, path: Path) -> bool:
        return path.is_relative_to(self.data_dir) or path.is_relative_to(self.output_dir)

    def confine(self, name: str) -> list[Path]:
        """Where ``name`` may be found, each resolved inside the sandbox — else :class:`PathNotAllowed`.

        Only resolves paths (symlinks included); never opens or creates anything, so the CLI can
        apply the sandbox rule before any work and before any file outside it is read."""
        if not name or not str(name).strip():
            raise PathNotAllowed("No dataset path given: pass a CSV/Parquet file name from the data directory.")
        raw = Path(str(name).strip()).expanduser()
        run_dir = self.output_dir / self.run_id
        candidates = [raw] if raw.is_absolute() else [run_dir / raw, self.data_dir / raw, self.output_dir / raw]
        resolved = [c.resolve() for c in candidates]
        if not all(self._inside(r) for r in resolved):
            raise PathNotAllowed(
                f"Refused path {name!r}: tools may only read inside {self.data_dir} or {self.output_dir}."
            )
        return resolved

    def resolve_input(self, name: str) -> Path:
        """A readable data file: relative names are looked up in the run folder, then data_dir."""
        candidates = self.confine(name)
        self.run_dir  # noqa: B018 - created on first use, as before
        for resolved in candidates:
            if resolved.is_file():
                if resolved.suffix.lower() not in DATA_SUFFIXES:
                    raise PathNotAllowed(f"{name!r} is not a CSV or Parquet file.")
                return resolved
        raise FileNotFoundError(
            f"No dataset {name!r} in {self.data_dir} or this run's outputs; "
            f"available: {', '.join(self.list_datasets()) or 'none'}."
        )

    def resolve_output(self, name: str) -> Path:
        """A writable path inside this run's output folder."""
        raw = Path(str(name).strip())
        if raw.is_absolute() or not raw.name:
            raise PathNotAllowed(f"Refused output path {name!r}: give a plain file name.")
        resolved = (self.run_dir / raw).resolve()
        if not resolved.is_relative_to(self.run_dir):
            raise PathNotAllowed(f"Refused output path {name!r}: it leaves the run's output folder.")
        resolved.parent.mkdir(parents=True, exist_ok=True)
        return resolved

    def list_datasets(self) -> list[str]:
        """Data files the tools may read, as names relative to their root."""
        found: list[str] = []
        for root in (self.data_dir, self.run_dir):
            if root.is_dir():
                found += sorted(
                    str(p.relative_to(root)) for p in root.rglob("*") if p.suffix.lower() in DATA_SUFFIXES
                )
        return found

    def display(self, path: Path) -> str:
        """A path as agents and reports should see it (relative to a root when possible)."""
        for root in (self.run_dir, self.data_dir, self.output_dir):
            if path.is_relative_to(root):
                return str(path.relative_to(root))
        return str(path)

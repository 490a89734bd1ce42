"""Rules of the source tree that import-linter cannot see (it checks module-level imports too,
but does not know *where* an import sits or what a module reads).

- No import of a project module inside a function: that is how cycles used to hide. An optional
  third-party dependency (llama_cpp, uvicorn) may still be imported late, with a comment saying so.
- Only ``config/settings.py`` reads the environment: one settings model for everything a run sets.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

NOT_SOURCE = {".venv", "venv", ".git", "build", "dist", "tests", "bench", "persistence"}
PROJECT = ("relaygraph", "langgraph.checkpoint.sqlalchemy")

#: file → why it may still offend. Each entry must still offend (a fixed file leaves the list).
LATE_IMPORTS_PENDING: dict[str, str] = {}
ENVIRONMENT_READERS = {
    "config/settings.py": "the settings model",
    "providers/local_llm/server.py": "passes the environment through to the model server's process",
}


def _sources() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO)
        if rel.parts[0] in NOT_SOURCE or rel.parts[0].startswith("."):
            continue
        found[rel.as_posix()] = ast.parse(path.read_text(encoding="utf-8"), str(rel))
    assert "cli/main.py" in found and "graphs/sequential.py" in found
    return found


def _late_project_imports(tree: ast.Module) -> list[str]:
    late = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            late += [f"{func.name}:{node.lineno} {n}" for n in names
                     if any(n == p or n.startswith(p + ".") for p in PROJECT)]
    return late


def test_no_project_module_is_imported_inside_a_function() -> None:
    offenders = {path: late for path, tree in _sources().items() if (late := _late_project_imports(tree))}
    assert set(offenders) - set(LATE_IMPORTS_PENDING) == set(), offenders
    fixed = set(LATE_IMPORTS_PENDING) - set(offenders)
    assert not fixed, f"no late imports left in {fixed}: remove them from LATE_IMPORTS_PENDING"


def _reads_environment(tree: ast.Module) -> list[int]:
    """Lines using ``os.environ`` / ``os.getenv`` / ``environ`` imported from os."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                a.name in ("environ", "getenv") for a in node.names):
            lines.append(node.lineno)
    return lines


def test_only_the_settings_model_reads_the_environment() -> None:
    readers = {path: lines for path, tree in _sources().items() if (lines := _reads_environment(tree))}
    assert set(readers) - set(ENVIRONMENT_READERS) == set(), (
        f"read configuration through relaygraph.config.settings, not os.environ: {readers}")

"""Checkpoint database URLs: accept what people type, hand SQLAlchemy what it needs.

``sqlite:///checkpoints.db``, ``postgresql://user@host/db`` and ``mysql://`` /
``mariadb://`` are accepted; the driver is chosen here (pysqlite/aiosqlite, psycopg 3,
PyMySQL/aiomysql) so users never have to know SQLAlchemy's ``dialect+driver`` syntax.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from langgraph.checkpoint.sqlalchemy.errors import MissingDriverError, UnsupportedDatabaseURL

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

EXPECTED = (
    "expected sqlite:///PATH (e.g. sqlite:///checkpoints.db), "
    "postgresql://USER@HOST:5432/DB or mysql://USER@HOST:3306/DB (mariadb:// also works)"
)

# backend -> (sync driver, async drivers in order of preference, extra to install)
_DRIVERS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "sqlite": ("pysqlite", ("aiosqlite",), "langgraph-checkpoint-sqlalchemy"),
    "postgresql": ("psycopg", ("psycopg",), "langgraph-checkpoint-sqlalchemy[postgres]"),
    "mysql": ("pymysql", ("asyncmy", "aiomysql"), "langgraph-checkpoint-sqlalchemy[mysql]"),
    "mariadb": ("pymysql", ("asyncmy", "aiomysql"), "langgraph-checkpoint-sqlalchemy[mysql]"),
}
_MODULES = {"pysqlite": "sqlite3"}

_ALIASES = {"postgres": "postgresql", "postgresql": "postgresql", "sqlite": "sqlite",
            "mysql": "mysql", "mariadb": "mariadb"}


def _usable(driver: str) -> bool:
    if importlib.util.find_spec(_MODULES.get(driver, driver)) is None:
        return False
    if driver == "aiomysql":
        # aiomysql 0.3.x calls a PyMySQL helper that PyMySQL 1.2 replaced with a string,
        # so every bytes parameter fails (aio-libs/aiomysql#1080); asyncmy has no such bug.
        from pymysql import converters

        return callable(getattr(converters, "escape_bytes_prefixed", None))
    return True


def backend_of(url: str | URL) -> str:
    """``sqlite``, ``postgresql``, ``mysql`` or ``mariadb`` for a URL (raises if unknown)."""
    return _ALIASES[_parse(url).get_backend_name()]


def _parse(url: str | URL) -> URL:
    if isinstance(url, URL):
        parsed = url
    else:
        text = str(url).strip()
        if "://" not in text:
            raise UnsupportedDatabaseURL(
                f"checkpoint database URL {text!r} has no scheme: {EXPECTED}"
            )
        try:
            parsed = make_url(text)
        except ArgumentError as exc:
            raise UnsupportedDatabaseURL(
                f"cannot parse checkpoint database URL {redact(text)!r} ({exc}): {EXPECTED}"
            ) from None
    if parsed.get_backend_name() not in _ALIASES:
        raise UnsupportedDatabaseURL(
            f"unsupported checkpoint database scheme {parsed.drivername!r} in "
            f"{redact(parsed)!r}: {EXPECTED}"
        )
    return parsed


def normalize_url(url: str | URL, *, async_: bool = False) -> URL:
    """The SQLAlchemy URL (with driver) for ``url``; raises with the accepted forms.

    Why here: a missing driver or an unknown scheme must fail with one clear sentence
    before SQLAlchemy produces a multi-line traceback about entry points.
    """
    parsed = _parse(url)
    backend = _ALIASES[parsed.get_backend_name()]
    sync_driver, async_drivers, extra = _DRIVERS[backend]
    candidates = async_drivers if async_ else (sync_driver,)
    driver = next((d for d in candidates if _usable(d)), None)
    if driver is None:
        raise MissingDriverError(
            f"the {backend} checkpoint backend needs the {candidates[0]!r} package"
            f"{' (async)' if async_ else ''}: pip install '{extra}' {candidates[0]}"
        )
    result = parsed.set(drivername=f"{backend}+{driver}")
    if backend in ("mysql", "mariadb") and "charset" not in result.query:
        result = result.update_query_dict({"charset": "utf8mb4"})
    return result


def sqlite_folder_missing(url: URL) -> Path | None:
    """The folder a SQLite file URL points into when that folder does not exist, else None.

    Why not create it: a typo in a URL (``sqlite:///tmp/chekpoints/x.db``) would silently put
    run state in a new place; the caller reports the folder instead (see ``make_engine``).
    """
    if url.get_backend_name() != "sqlite" or is_memory_sqlite(url) or url.query.get("uri"):
        return None
    database = str(url.database)
    if database.startswith("file:"):
        return None
    folder = Path(database).expanduser().absolute().parent
    return None if folder.is_dir() else folder


def is_memory_sqlite(url: URL) -> bool:
    """True for ``sqlite://`` and ``sqlite:///:memory:`` (one connection must be shared)."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def redact(url: str | URL) -> str:
    """The URL with any password hidden, for error messages and logs."""
    try:
        parsed = url if isinstance(url, URL) else make_url(str(url))
    except ArgumentError:
        return "<unparsable URL>"
    return parsed.render_as_string(hide_password=True)

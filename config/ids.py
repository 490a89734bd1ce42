"""Thread ids: the one check every entry point applies before a thread id is used.

A thread id names a folder (``output_dir/<thread>/``, where the run's tools write) and rows in
the checkpoint database, and it comes from callers: the CLI, Python, ``langgraph dev``. So it
must be one safe path component: ``fork --thread-id ..`` once wrote into the parent of the output
directory. Rather than rewrite a bad id (two ids could then share one folder), it is refused.
"""

from __future__ import annotations

import unicodedata

MAX_THREAD_ID_CHARS = 200


class InvalidThreadId(ValueError):
    """A thread id that cannot safely name a folder or a database row."""


def validate_thread_id(value: object) -> str:
    """``value`` if it is a usable thread id, else :class:`InvalidThreadId` saying why."""
    if not isinstance(value, str) or not value:
        raise InvalidThreadId("A thread id must be a non-empty string.")
    shown = ascii(value)
    if len(value) > MAX_THREAD_ID_CHARS:
        raise InvalidThreadId(f"Thread id {shown[:40]}… is longer than {MAX_THREAD_ID_CHARS} characters.")
    if value in (".", ".."):
        raise InvalidThreadId(f"Thread id {shown} is refused: it names a directory, not a thread.")
    if value.startswith("."):
        # ``.hidden`` would make a hidden output folder that ``ls`` does not show
        raise InvalidThreadId(f"Thread id {shown} is refused: it starts with '.' (a hidden folder).")
    if "/" in value or "\\" in value:
        raise InvalidThreadId(f"Thread id {shown} is refused: it contains a path separator.")
    for char in value:
        category = unicodedata.category(char)
        if category == "Cc":
            raise InvalidThreadId(f"Thread id {shown} is refused: it contains a control character.")
        if category == "Cs":
            raise InvalidThreadId(f"Thread id {shown} is refused: it contains a lone surrogate.")
    if value != value.strip():
        raise InvalidThreadId(f"Thread id {shown} is refused: it starts or ends with whitespace.")
    return value

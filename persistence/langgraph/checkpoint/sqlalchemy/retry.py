"""When the checkpoint database goes away for a moment: what is retried, for how long, and what then.

A PostgreSQL backend terminated by an administrator (``pg_terminate_backend``), a MariaDB
``KILL``, a restart or failover, a network blip: the connection in hand is dead, but the
database is back a moment later. Every operation the savers run is safe to run again -
reads, and writes that are idempotent upserts (``INSERT ... ON CONFLICT DO NOTHING/UPDATE``,
``ON DUPLICATE KEY UPDATE``) or deletes - so such an error is retried on a fresh connection
(the dead one is invalidated; the engine pre-pings pooled ones) with exponential backoff,
for at most ``RetryPolicy.reconnect_within_s`` seconds. When the database is still away
after that, :class:`ConnectionLostError` says so in one line: check the database, then
resume the run, which continues from its last committed checkpoint.

Deadlocks and serialization failures (the other transient class) are retried at once, a
few times, as before.

:class:`Attempts` is the one policy both drivers share - ``retrying`` (threads, ``Engine``)
and ``aretrying`` (asyncio, ``AsyncEngine``) differ only in how they sleep, like httpx's
``Client``/``AsyncClient`` over one base.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from langgraph.checkpoint.sqlalchemy.errors import ConnectionLostError

import sqlalchemy as sa

T = TypeVar("T")
logger = logging.getLogger(__name__)

#: Default bound on retrying a lost connection, seconds (``RetryPolicy.reconnect_within_s``).
DEFAULT_RECONNECT_WITHIN_S = 20.0

# PostgreSQL SQLSTATEs: serialization failure, deadlock; admin/crash shutdown, starting up.
_PG_CONFLICT = frozenset({"40001", "40P01"})
_PG_GONE = frozenset({"57P01", "57P02", "57P03"})
# MySQL/MariaDB error numbers: deadlock, lock wait timeout.
_MYSQL_CONFLICT = frozenset({1205, 1213})
# Too many connections, server shutdown, aborted connection, network read/write errors,
# connection killed (MariaDB), client: cannot connect, server gone away, lost connection,
# lost during handshake, disconnected by the server; login refused (access denied, account
# locked): the credentials worked when the saver connected, so mid-run this is a database
# in the middle of a restart or failover.
_MYSQL_GONE = frozenset(
    {1040, 1045, 1053, 1152, 1158, 1159, 1160, 1161, 1927, 2002, 2003, 2006, 2013, 2055, 4031, 4151}
)


def _driver_error(exc: BaseException) -> BaseException:
    orig = getattr(exc, "orig", None) if isinstance(exc, sa.exc.DBAPIError) else None
    return orig if isinstance(orig, BaseException) else exc


def _mysql_errno(err: BaseException) -> int | None:
    args = getattr(err, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def is_conflict(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the transaction was rolled back; run it again."""
    err = _driver_error(exc)
    if not _is_dbapi(err):
        return False
    if getattr(err, "sqlstate", None) in _PG_CONFLICT:
        return True
    return _mysql_errno(err) in _MYSQL_CONFLICT


def is_connection_lost(exc: BaseException) -> bool:
    """The connection died or cannot be opened (terminated, killed, refused, reset).

    Not a bad statement, a constraint or a value the server refuses: those fail the same
    way every time and are raised at once.
    """
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.InvalidRequestError) and not isinstance(exc, sa.exc.DBAPIError):
        # "Can't reconnect until invalid transaction is rolled back": raised by a statement
        # (a ``finally``'s cleanup) on a connection that died earlier in the transaction; the
        # error it was raised while handling says why.
        cause = exc.__cause__ or exc.__context__
        return cause is not None and cause is not exc and is_connection_lost(cause)
    err = _driver_error(exc)
    if isinstance(err, ConnectionError):  # a socket reset an async driver did not wrap
        return True
    if not _is_dbapi(err):
        return False
    sqlstate = getattr(err, "sqlstate", None)
    module = type(err).__module__
    if module.startswith("psycopg"):
        if sqlstate is None:  # client-side: connect failed, connection lost or closed
            return type(err).__name__ in ("OperationalError", "InterfaceError")
        return sqlstate.startswith("08") or sqlstate in _PG_GONE
    if module.startswith(("pymysql", "asyncmy", "aiomysql", "MySQLdb")):
        if type(err).__name__ == "InterfaceError":  # PyMySQL: "(0, '')", a closed connection
            return True
        return _mysql_errno(err) in _MYSQL_GONE
    return False


def _is_dbapi(err: BaseException) -> bool:
    """A DBAPI driver's exception (PEP 249 ``Error``), by shape: no driver is imported here."""
    return any(cls.__name__ == "Error" and cls.__module__ != "builtins" for cls in type(err).__mro__)


def is_transient(exc: BaseException) -> bool:
    """Safe to run the whole operation again: a conflict or a lost connection."""
    return is_conflict(exc) or is_connection_lost(exc)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How both savers ride out a database that is briefly unreachable.

    * ``reconnect_within_s`` - for how long an operation whose connection was lost is
      retried on fresh connections before :class:`ConnectionLostError` (default 20 s:
      a PostgreSQL or MariaDB restart on one machine takes a few seconds; 0 retries once
      at once, then gives up).
    * ``first_delay_s``/``max_delay_s`` - the backoff: the first retry after about
      ``first_delay_s``, each wait doubling (with jitter: 50-100% of it) up to ``max_delay_s``.
    * ``conflict_attempts`` - runs of a transaction that hits a deadlock or serialization
      failure (retried at once).
    """

    reconnect_within_s: float = DEFAULT_RECONNECT_WITHIN_S
    first_delay_s: float = 0.05
    max_delay_s: float = 2.0
    conflict_attempts: int = 3

    def __post_init__(self) -> None:
        if self.reconnect_within_s < 0 or self.first_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("RetryPolicy times must be >= 0 seconds")
        if self.conflict_attempts < 1:
            raise ValueError("RetryPolicy.conflict_attempts must be at least 1")


DEFAULT_RETRY = RetryPolicy()


class _Outages:
    """When each database's current outage began: the first lost connection not followed by
    a success. A loss after a quiet spell longer than the bound is a new outage (a continuing
    one fails at least every ``max_delay_s``), so an old outage never shortens a new one's wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_url: dict[str, tuple[float, float]] = {}  # url -> (began, last loss)

    def begin(self, url: object, bound_s: float) -> float:
        now, key = time.monotonic(), str(url)
        with self._lock:
            began, last = self._by_url.get(key, (now, now))
            if now - last > max(bound_s, 2.0):
                began = now
            self._by_url[key] = (began, now)
            return began

    def end(self, url: object) -> None:
        if not self._by_url:  # the common case, on every operation: no outage anywhere
            return
        with self._lock:
            self._by_url.pop(str(url), None)


_OUTAGES = _Outages()


class Attempts:
    """One operation's retries: whether the error in hand is retried, and after how long.

    ``delay_after(exc)`` returns the seconds to wait before the next run, or None when
    ``exc`` must be raised as it is; it raises :class:`ConnectionLostError` when the
    connection stayed lost past the bound.
    """

    __slots__ = ("conflicts", "lost", "policy", "started", "url", "what")

    def __init__(
        self, policy: RetryPolicy, what: str, url: object = None, started: float | None = None
    ) -> None:
        self.policy = policy
        self.what = what
        self.url = url
        self.started = time.monotonic() if started is None else started
        self.conflicts = 0
        self.lost = 0

    def succeeded(self) -> None:
        """The operation got through: any outage of its database is over."""
        _OUTAGES.end(self.url)

    def delay_after(self, exc: BaseException) -> float | None:
        policy = self.policy
        if is_conflict(exc):
            self.conflicts += 1
            return 0.0 if self.conflicts < policy.conflict_attempts else None
        if not is_connection_lost(exc):
            return None
        # The bound is per outage, not per operation: operations that meet the same outage
        # one after another (a ledger write, then a read, then a checkpoint) share it.
        since = _OUTAGES.begin(self.url, self.policy.reconnect_within_s)
        waited = time.monotonic() - min(self.started, since)
        if self.lost == 0:
            delay = 0.0  # the first retry at once: usually only the pooled connection died
        else:
            delay = min(policy.max_delay_s, policy.first_delay_s * 2 ** (self.lost - 1))
            delay *= 0.5 + random.random() / 2
        if self.lost > 0 and waited + delay > policy.reconnect_within_s:
            raise ConnectionLostError.after(
                what=self.what, url=self.url, waited_s=waited, cause=_driver_error(exc)
            ) from exc
        self.lost += 1
        logger.log(  # the first loss of an operation is worth a line; its retries are not
            logging.WARNING if self.lost == 1 else logging.DEBUG,
            "checkpoint database connection lost during %s (%s); retrying in %.2fs "
            "(%.1fs of %.1fs into the outage)",
            self.what, _first_line(_driver_error(exc)), delay, waited, self.policy.reconnect_within_s,
        )
        return delay


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def retrying(policy: RetryPolicy, what: str, fn: Callable[[], T], url: object = None) -> T:
    """``fn()``, run again on a conflict or a lost connection as ``policy`` allows.

    ``Attempts`` is made only once something failed: this wraps every put and read, and
    the first try nearly always succeeds.
    """
    started = time.monotonic()
    attempts: Attempts | None = None
    while True:
        try:
            result = fn()
            _OUTAGES.end(url)  # Attempts.succeeded
            return result
        except Exception as exc:
            if attempts is None:
                attempts = Attempts(policy, what, url, started)
            delay = attempts.delay_after(exc)
            if delay is None:
                raise
        if delay:
            time.sleep(delay)


async def aretrying(
    policy: RetryPolicy, what: str, fn: Callable[[], Awaitable[T]], url: object = None
) -> T:
    """Async ``retrying``."""
    attempts = Attempts(policy, what, url)
    while True:
        try:
            result = await fn()
            attempts.succeeded()
            return result
        except Exception as exc:
            delay = attempts.delay_after(exc)
            if delay is None:
                raise
        if delay:
            await asyncio.sleep(delay)

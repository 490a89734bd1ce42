"""The LangGraph checkpointer conformance suite (langgraph-checkpoint-conformance 0.0.2).

All 81 tests (base + every extended capability) must run and pass, for the async saver on
SQLite, PostgreSQL and MariaDB, and for the sync saver through its async methods, which
run the sync implementation in a worker thread (an adapter by construction).
"""

from __future__ import annotations

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import CapabilityReport
from langgraph.checkpoint.sqlalchemy import AsyncSQLAlchemySaver, SQLAlchemySaver

ALL_TESTS = 81
CAPABILITIES = {"put", "put_writes", "get_tuple", "list", "delete_thread",
                "delete_for_runs", "copy_thread", "prune"}


def assert_full_conformance(report: CapabilityReport) -> None:
    failures = [f for r in report.results.values() for f in r.failures]
    assert report.passed_all(), failures
    # passed_all() is also true when nothing ran: check every capability was detected
    # and all 81 tests actually executed.
    assert {name for name, r in report.results.items() if r.detected} == CAPABILITIES
    ran = sum(r.tests_passed + r.tests_failed for r in report.results.values())
    assert ran == ALL_TESTS, f"{ran} conformance tests ran, expected {ALL_TESTS}"


async def test_async_saver_conformance(any_url: str) -> None:
    @checkpointer_test(name="AsyncSQLAlchemySaver")
    async def factory():
        async with AsyncSQLAlchemySaver.from_conn_string(any_url) as saver:
            yield saver

    assert_full_conformance(await validate(factory))


async def test_sync_saver_conformance(any_url: str) -> None:
    @checkpointer_test(name="SQLAlchemySaver")
    async def factory():
        with SQLAlchemySaver.from_conn_string(any_url) as saver:
            yield saver

    assert_full_conformance(await validate(factory))


@pytest.mark.mysql
async def test_async_saver_conformance_mariadb_scheme(mysql_url: str) -> None:
    """``mariadb://`` URLs select SQLAlchemy's MariaDB dialect; same contract."""
    url = mysql_url.replace("mysql://", "mariadb://", 1)

    @checkpointer_test(name="AsyncSQLAlchemySaver-mariadb")
    async def factory():
        async with AsyncSQLAlchemySaver.from_conn_string(url) as saver:
            yield saver

    assert_full_conformance(await validate(factory))

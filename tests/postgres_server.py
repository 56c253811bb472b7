"""The pytest side of the test run's PostgreSQL server (issue 11): the fixtures.

``postgres_url`` (session): ``$ASYNCFETCH_TEST_POSTGRES_URL`` when set, else a
throwaway server (tests/postgres_cluster.py: ``initdb`` in a temporary
directory, ``pg_ctl`` on a Unix socket there only) started for the run and
stopped at its end; the variable is exported meanwhile, so the CLI's
subprocesses see it. ``postgres_database_url``: a new, empty database for one
test, dropped after it.

A server that cannot start fails every test that asks for it (an error with
the step that failed and the server's log), never skips it: a skipped backend
is a backend nobody tested.

:func:`pytest_assertrepr_compare` (imported into tests/conftest.py) shows a
failed comparison with a :class:`PostgresUrl` masked: pytest's own diff of two
strings would print the password.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator

import asyncpg
import pytest

from .postgres_cluster import (
    ENV,
    PostgresStartError,
    PostgresUrl,
    on_server,
    throwaway_cluster,
    with_database,
)

__all__ = ["postgres_database_url", "postgres_url", "pytest_assertrepr_compare"]


def pytest_assertrepr_compare(op: str, left: object, right: object) -> list[str] | None:
    """A failed comparison with a :class:`PostgresUrl` shows both sides masked
    (pytest's own diff of two strings would print the password)."""
    if not isinstance(left, PostgresUrl) and not isinstance(right, PostgresUrl):
        return None
    return [f"{left!r} {op} {right!r}", "(a database URL: its password is not shown)"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[PostgresUrl]:
    """The URL of a PostgreSQL server for this test run: ``$ASYNCFETCH_TEST_POSTGRES_URL``
    when set, else a throwaway server started now and stopped at the end of the run.

    A server that cannot start fails every test that asks for it (an error, not
    a skip), with the step that failed and the server's log.
    """
    given = os.environ.get(ENV)
    if given:
        yield PostgresUrl(given)
        return
    try:
        with throwaway_cluster() as cluster:
            os.environ[ENV] = cluster.url
            try:
                yield cluster.url
            finally:
                os.environ.pop(ENV, None)
    except PostgresStartError as exc:
        pytest.fail(f"the test PostgreSQL server could not start: {exc}", pytrace=False)


@pytest.fixture
def postgres_database_url(postgres_url: PostgresUrl) -> Iterator[PostgresUrl]:
    """A new, empty database on the test server for one test, dropped after it."""
    name = "asyncfetch_test_" + secrets.token_hex(6)
    on_server(postgres_url, f"CREATE DATABASE {name}")
    try:
        yield with_database(postgres_url, name)
    finally:
        _drop(postgres_url, name)


def _drop(url: str, name: str) -> None:
    """Drop a test's database. ``WITH (FORCE)`` ends the test's own sessions left
    open (a killed run's); a session of another role (an autovacuum worker on a
    server of your own) cannot be ended by the test role: wait for it a little,
    then leave the database behind rather than fail a test that passed."""
    for _ in range(50):
        try:
            on_server(url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
            time.sleep(0.1)
        else:
            return

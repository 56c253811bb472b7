"""PostgreSQL's own faults (issue 11): a server that cannot be reached, a
login refused, an unknown database, a database another run is writing, a
page the server rejects. Each is one line naming the database with its
password masked, and the database is left as it was before.

The behaviours both backends share run in the backend-parametrised sink
suite; these need a real PostgreSQL (tests/postgres_server.py starts one).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from asyncfetch import SinkLockedError, SinkOpenError, SinkWriteError
from asyncfetch._sink import open_sink

from ..postgres_cluster import PostgresUrl, with_database

pytestmark = pytest.mark.anyio


def password_of(url: str) -> str:
    password = urlsplit(url).password
    assert password
    return password


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def open_error(url: str) -> Exception:
    with pytest.raises((SinkOpenError, SinkLockedError)) as raised:
        async with open_sink(url):
            pass
    return raised.value


def one_line_without(message: str, *secrets: str) -> None:
    assert "\n" not in message
    for secret in secrets:
        assert secret not in message
    assert ":***@" in message  # the database is named, its password masked


async def test_a_refused_tcp_connection_is_one_line_without_the_password() -> None:
    url = f"postgresql://me:tcp-secret@127.0.0.1:{free_port()}/db"
    error = await open_error(url)
    assert isinstance(error, SinkOpenError)
    assert error.usage  # before any request: the CLI exits 2
    one_line_without(str(error), "tcp-secret")
    assert "cannot connect" in str(error)


async def test_no_server_on_the_socket_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql://me:socket-secret@/db?host={tmp_path}"
    error = await open_error(url)
    assert isinstance(error, SinkOpenError)
    one_line_without(str(error), "socket-secret")
    assert "cannot connect" in str(error)


async def test_a_wrong_password_is_refused_in_one_line(postgres_url: PostgresUrl) -> None:
    wrong = with_password(postgres_url, "not-the-password")
    error = await open_error(wrong)
    assert isinstance(error, SinkOpenError)
    one_line_without(str(error), "not-the-password", password_of(postgres_url))
    assert "login refused" in str(error)
    assert "password authentication failed" in str(error)


async def test_a_wrong_password_given_as_a_parameter_is_not_shown(
    postgres_url: PostgresUrl,
) -> None:
    parts = urlsplit(postgres_url)
    netloc = f"{parts.username}@{parts.netloc.rpartition('@')[2]}"
    query = parts.query + "&password=wrong-query-password"
    error = await open_error(urlunsplit(parts._replace(netloc=netloc, query=query)))
    assert isinstance(error, SinkOpenError)
    assert "\n" not in str(error)
    assert "wrong-query-password" not in str(error)
    assert "password authentication failed" in str(error)


async def test_an_unknown_database_is_one_line(postgres_url: PostgresUrl) -> None:
    error = await open_error(with_database(postgres_url, "no_such_database"))
    assert isinstance(error, SinkOpenError)
    one_line_without(str(error), password_of(postgres_url))
    assert 'database "no_such_database" does not exist' in str(error)


async def test_a_second_run_on_the_same_database_is_refused(
    postgres_database_url: PostgresUrl,
) -> None:
    async with open_sink(postgres_database_url) as first:
        run = await first.begin_run(
            list_name="users", kind="users", per_page=50, base_url="http://x", whole=True
        )
        await first.write_page(run, 1, [{"id": "1", "updated_at": 10}], requests=1)
        error = await open_error(postgres_database_url)
        assert isinstance(error, SinkLockedError)
        assert error.usage  # the CLI exits 2
        one_line_without(str(error), password_of(postgres_database_url))
        assert "another asyncfetch run is writing this database" in str(error)
        # The first run goes on undisturbed.
        await first.write_page(run, 2, [{"id": "2", "updated_at": 10}], requests=2)
        await first.finish_run(run, complete=True, requests=2)
    # Released when the first closes.
    async with open_sink(postgres_database_url) as again:
        assert await again._query("SELECT count(*) FROM users") == [(2,)]


async def test_readers_are_not_locked_out(postgres_database_url: PostgresUrl) -> None:
    async with open_sink(postgres_database_url):
        reader = await asyncpg.connect(postgres_database_url)
        try:
            assert await reader.fetchval("SELECT count(*) FROM sync_runs") == 0
        finally:
            await reader.close()


HOLDER = """
import asyncio, sys
from asyncfetch._sink import open_sink

async def main():
    async with open_sink(sys.argv[1]):
        print("open", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


def test_a_run_killed_with_sigkill_releases_its_lock(postgres_database_url: PostgresUrl) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), postgres_database_url],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "open\n"
        error = asyncio.run(open_error(postgres_database_url))
        assert isinstance(error, SinkLockedError)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()

    async def reopen() -> None:
        # The server sees the connection close and drops the session's lock.
        for _ in range(100):
            try:
                async with open_sink(postgres_database_url):
                    return
            except SinkLockedError:
                await asyncio.sleep(0.05)
        pytest.fail("the killed run's lock was never released")

    asyncio.run(reopen())


async def test_a_page_the_server_rejects_leaves_the_database_as_it_was(
    postgres_database_url: PostgresUrl,
) -> None:
    async with open_sink(postgres_database_url) as sink:
        run = await sink.begin_run(
            list_name="users", kind="users", per_page=2, base_url="http://x", whole=True
        )
        await sink.write_page(run, 1, [{"id": "1", "updated_at": 10}], requests=1)
        before = await sink._query("SELECT id, data::text FROM users ORDER BY id")
        progress = await sink._query("SELECT next_page, items, pages FROM sync_runs")
        # jsonb holds no NUL character: the server rejects the whole page.
        bad_page = [{"id": "2", "updated_at": 10}, {"id": "3", "name": "a\u0000b"}]
        with pytest.raises(SinkWriteError) as raised:
            await sink.write_page(run, 2, bad_page, requests=2)
        assert "\n" not in str(raised.value)
        assert password_of(postgres_database_url) not in str(raised.value)
        assert await sink._query("SELECT id, data::text FROM users ORDER BY id") == before
        assert await sink._query("SELECT next_page, items, pages FROM sync_runs") == progress
        assert await sink._query("SELECT count(*) FROM sync_staging WHERE page = 2") == [(0,)]
        # The connection is still usable: the same page, fixed, goes in.
        await sink.write_page(run, 2, [{"id": "2", "updated_at": 10}], requests=3)
        assert await sink._query("SELECT next_page FROM sync_runs") == [(3,)]


async def test_data_is_jsonb_and_timestamps_are_timestamptz(
    postgres_database_url: PostgresUrl,
) -> None:
    async with open_sink(postgres_database_url) as sink:
        run = await sink.begin_run(
            list_name="users", kind="users", per_page=50, base_url="http://x", whole=True
        )
        record = {"id": "7", "email": "a@b.c", "updated_at": 1700000000, "custom": {"n": 2**62}}
        await sink.write_page(run, 1, [record], requests=1)
        rows = await sink._query(
            "SELECT pg_typeof(data)::text, pg_typeof(updated_at)::text, "
            "data->'custom'->>'n', data->>'email', extract(epoch FROM updated_at)::bigint "
            "FROM users"
        )
    assert rows == [("jsonb", "timestamp with time zone", str(2**62), "a@b.c", 1700000000)]


async def test_a_page_is_one_statement_that_takes_repeated_ids_and_both_tables(
    postgres_database_url: PostgresUrl,
) -> None:
    """PostgreSQL writes a page in one statement (arrays unnested on the server): an
    id twice in a page is taken once, the later copy winning at the same
    ``updated_at``, and a page holding users and leads fills both tables."""
    async with open_sink(postgres_database_url) as sink:
        run = await sink.begin_run(
            list_name="users?tag_id=1", kind="users", per_page=4, base_url="http://x", whole=False
        )
        page = [
            {"id": "u1", "type": "user", "name": "first copy", "updated_at": 10},
            {"id": "l1", "type": "contact", "name": "lead", "updated_at": 10},
            {"id": "u1", "type": "user", "name": "second copy", "updated_at": 10},
            {"id": "u2", "type": "user", "name": "other", "updated_at": 10},
        ]
        await sink.write_page(run, 1, page, requests=1)
        await sink.finish_run(run, complete=True, requests=1)
        assert await sink._query("SELECT id, name FROM users ORDER BY id") == [
            ("u1", "second copy"),
            ("u2", "other"),
        ]
        assert await sink._query("SELECT id, name FROM contacts") == [("l1", "lead")]
        members = await sink._query("SELECT position, id FROM list_members ORDER BY position")
        assert members == [(1, "u1"), (2, "l1"), (3, "u1"), (4, "u2")]
        assert await sink._query("SELECT next_page, items, pages FROM sync_runs") == [(2, 4, 1)]

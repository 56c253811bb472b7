"""``asyncfetch ... --db postgresql://...`` as a real process against a real
PostgreSQL (tests/postgres_server.py): the lists land, and every way the
database can refuse is one line on stderr without the password, exit 2,
before any request is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from asyncfetch._sink import open_sink
from asyncfetch.testing import ServerConfig, ServerThread

from ..helpers import users_with_tag
from ..postgres_cluster import PostgresUrl, with_database
from .test_cli import run_cli

TOKEN = "cli-secret-token-pg"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(ServerConfig(users=300, latency_ms=5, token=TOKEN)) as running:
        yield running


def sync(server: ServerThread, url: str, *args: str) -> tuple[int, str, str]:
    result = run_cli(
        *(args or ("users",)), "--db", url, "--base-url", server.base_url, "--token", TOKEN,
        "--per-page", "50",
    )  # fmt: skip
    return result.returncode, result.stdout, result.stderr


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    async def read() -> list[tuple[object, ...]]:
        connection = await asyncpg.connect(url)
        try:
            return [tuple(row) for row in await connection.fetch(sql)]
        finally:
            await connection.close()

    return asyncio.run(read())


def password_of(url: str) -> str:
    password = urlsplit(url).password
    assert password
    return password


def test_users_and_a_tag_land_in_postgresql(
    server: ServerThread, postgres_database_url: PostgresUrl
) -> None:
    tag_id = server.workspace.largest_tag_id
    server.stats.reset()
    code, out, err = sync(server, postgres_database_url)
    assert code == 0, err
    stored = rows(postgres_database_url, "SELECT id FROM users ORDER BY id")
    assert sorted(str(u["id"]) for u in server.workspace.users) == sorted(str(r[0]) for r in stored)
    code, out, err = sync(server, postgres_database_url, "users", "--tag-id", tag_id)
    assert code == 0, err
    assert password_of(postgres_database_url) not in out + err
    members = rows(
        postgres_database_url,
        f"SELECT id FROM list_members WHERE list = 'users?tag_id={tag_id}' ORDER BY position",
    )
    # users_with_tag: users and leads; list_members keeps the list's own order.
    assert [r[0] for r in members] == [
        str(u["id"]) for u in users_with_tag(server.workspace, tag_id)
    ]


def test_a_wrong_password_exits_2_in_one_line_before_any_request(
    server: ServerThread, postgres_database_url: PostgresUrl
) -> None:
    parts = urlsplit(postgres_database_url)
    netloc = f"{parts.username}:wrong-pg-password@{parts.netloc.rpartition('@')[2]}"
    wrong = urlunsplit(parts._replace(netloc=netloc))
    server.stats.reset()
    code, out, err = sync(server, wrong)
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith("asyncfetch: error: postgresql://asyncfetch:***@")
    assert "password authentication failed" in err
    assert "wrong-pg-password" not in out + err
    assert server.stats.requests == 0


def test_an_unreachable_server_exits_2_in_one_line(server: ServerThread) -> None:
    code, _, err = sync(server, "postgresql://me:unreachable-pw@127.0.0.1:1/db")
    assert code == 2
    assert err == (
        "asyncfetch: error: postgresql://me:***@127.0.0.1:1/db: cannot connect: "
        "connection refused (is the server running, on that host and port?)\n"
    )


def test_an_unknown_database_exits_2_in_one_line(
    server: ServerThread, postgres_url: PostgresUrl
) -> None:
    code, out, err = sync(server, with_database(postgres_url, "nowhere"))
    assert code == 2
    assert err.count("\n") == 1, err
    assert 'database "nowhere" does not exist' in err
    assert password_of(postgres_url) not in out + err


def test_a_database_another_run_writes_exits_2(
    server: ServerThread, postgres_database_url: PostgresUrl
) -> None:
    async def while_held() -> tuple[int, str, str]:
        async with open_sink(postgres_database_url):
            return await asyncio.to_thread(sync, server, postgres_database_url)

    server.stats.reset()
    code, out, err = asyncio.run(while_held())
    assert code == 2
    assert err.count("\n") == 1, err
    assert "another asyncfetch run is writing this database" in err
    assert password_of(postgres_database_url) not in out + err
    assert server.stats.requests == 0
    # Nothing was written by the refused run.
    assert rows(postgres_database_url, "SELECT count(*) FROM sync_runs") == [(0,)]

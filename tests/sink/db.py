"""Reading a sink's database in tests, whatever its backend, without the sink's lock.

``query`` reads a database another process may be writing (a sync being
killed): SQLite through a read-only connection (WAL lets it read while the
writer writes); PostgreSQL through a connection of its own (asyncpg, on an
event loop in a thread of its own, so a test already inside a loop can call
it), with the ``?`` parameters numbered and the timestamps returned as SQLite
stores them (``2024-01-02 03:04:05``, UTC), so one assertion fits both.
``dump`` is every table a test compares, in a stable order.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sqlite3
import threading
from typing import Any

import asyncpg
import orjson

__all__ = ["RECORD_COLUMNS", "dump", "query"]

# The columns of a record table that two equal syncs agree on: every one but
# first_seen_at and last_seen_at, the wall-clock times of the writes.
RECORD_COLUMNS = "id, data, email, user_id, name, created_at, updated_at, deleted_at"


def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` (``?`` parameters) on the database at ``url``."""
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite://")
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()
    if url.startswith(("postgresql:", "postgres:")):
        return _postgres_query(url, sql, args)
    raise AssertionError(f"no reader for {url.split(':')[0]}")


def _postgres_query(url: str, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    counter = iter(range(1, len(args) + 1))
    numbered = re.sub(r"\?", lambda _: f"${next(counter)}", sql)

    async def read() -> list[tuple[Any, ...]]:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            rows = await connection.fetch(numbered, *args)
        finally:
            await connection.close()
        return [tuple(_as_sqlite(value) for value in row) for row in rows]

    result: list[list[tuple[Any, ...]]] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(read()))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def _as_sqlite(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return value


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """What two syncs of the same lists must agree on: every record table (but
    the write times), the memberships, and each list's last complete run's
    items and pages."""
    # ``data`` parsed: PostgreSQL's jsonb keeps the values, not the keys' order.
    tables = {
        table: [
            (key, orjson.loads(data), *rest)
            for key, data, *rest in query(url, f"SELECT {RECORD_COLUMNS} FROM {table} ORDER BY id")
        ]
        for table in ("users", "contacts", "companies")
    }
    tables["list_members"] = query(
        url, "SELECT list, position, id FROM list_members ORDER BY list, position"
    )
    tables["last_runs"] = query(
        url,
        "SELECT list, items, pages, status FROM sync_runs AS r WHERE id = "
        "(SELECT max(id) FROM sync_runs WHERE list = r.list) ORDER BY list",
    )
    return tables

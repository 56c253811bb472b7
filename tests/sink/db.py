"""Reading a sink's database in tests, whatever its backend, without the sink's lock.

``query`` reads a database another process may be writing (a sync being
killed): SQLite through a read-only connection (WAL lets it read while the
writer writes). ``dump`` is every table a test compares, in a stable order.
"""

from __future__ import annotations

import sqlite3
from typing import Any

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
    raise AssertionError(f"no reader for {url.split(':')[0]}")


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """What two syncs of the same lists must agree on: every record table (but
    the write times), the memberships, and each list's last complete run's
    items and pages."""
    tables = {
        table: query(url, f"SELECT {RECORD_COLUMNS} FROM {table} ORDER BY id")
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

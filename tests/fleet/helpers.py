"""What the fleet tests check a workspace's tables against: the server's own data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from asyncfetch.testing import ListKey, ServerThread

from ..sink.db import query

__all__ = ["assert_tables_exact", "fleet_toml"]


def fleet_toml(path: Path, workspaces: list[dict[str, Any]]) -> Path:
    """A FLEET.toml with one ``[[workspace]]`` table per dict."""
    lines = []
    for table in workspaces:
        lines.append("[[workspace]]")
        for key, value in table.items():
            shown = (
                "[" + ", ".join(f'"{each}"' for each in value) + "]"
                if isinstance(value, list)
                else f'"{value}"'
                if isinstance(value, str)
                else str(value)
            )
            lines.append(f"{key} = {shown}")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


_TABLES = {"user": "users", "contact": "contacts", "lead": "contacts", "company": "companies"}


def _table(url: str, schema: str | None, table: str) -> str:
    return f'"{schema}".{table}' if url.startswith("postgres") and schema else table


def assert_tables_exact(
    url: str, server: ServerThread, lists: list[str], *, schema: str | None = None
) -> None:
    """Every list's members in the database are the server's list, in its order,
    each once; every record table holds exactly the server's records of the
    lists synced, with the server's data."""
    expected: dict[str, dict[str, Any]] = {"users": {}, "companies": {}, "contacts": {}}
    for name in lists:
        collection = name.partition("?")[0]
        by, _, value = name.partition("?")[2].partition("=")
        served = server.workspace.items(ListKey(collection, by, value))
        members = query(
            url,
            f"SELECT position, id FROM {_table(url, schema, 'list_members')} "
            "WHERE list = ? ORDER BY position",
            name,
        )
        assert [row[1] for row in members] == [item["id"] for item in served], name
        for item in served:
            # Each record to its own type's table (a tag's leads to contacts).
            expected[_TABLES.get(str(item.get("type")), collection)][item["id"]] = item
    for table, records in expected.items():
        rows = query(url, f"SELECT id, data FROM {_table(url, schema, table)} ORDER BY id")
        assert len(rows) == len({row[0] for row in rows}), f"{table}: a record twice"
        assert {row[0]: orjson.loads(row[1]) for row in rows} == records, table

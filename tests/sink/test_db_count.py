"""The count check of a run continued from the database: a list that ends short
of its ``total_count`` fails the run, continued or not (exit 1, the previous
membership kept, nothing marked deleted). A raw server: the bundled one never
ends a list short."""

from __future__ import annotations

import asyncio
import sys

import orjson
import pytest
from aiohttp import web

from ..helpers import RawServer
from .db import query

pytestmark = pytest.mark.anyio

TOKEN = "count-token-4242"


async def _cli(*args: str) -> tuple[int, str]:
    """The CLI in a process of its own, without blocking this loop (the raw server's)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asyncfetch", *args, "--token", TOKEN,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_a_continued_run_of_a_list_that_ends_short_fails_and_keeps_the_members(
    raw_server: RawServer, sink_url: str
) -> None:
    # 9 users on 3 pages of 3. Run 1: complete. Run 2: page 2 fails (stopped
    # after page 1). Run 3 continues at page 2, and page 3 comes back empty:
    # 6 of 9. It said "complete" (exit 0), swapped in 6 members and marked
    # the 3 unseen users deleted: the count check skipped continued runs.
    state = {"fail_page": 0, "empty_page": 0}

    async def handler(request: web.Request) -> web.Response:
        number = int(request.query.get("page", "1"))
        if number == state["fail_page"]:
            return web.json_response(
                {"type": "error.list", "errors": [{"code": "server_error", "message": "x"}]},
                status=500,
            )
        users = (
            []
            if number == state["empty_page"]
            else [{"type": "user", "id": f"u{number}-{i}", "updated_at": 1} for i in range(3)]
        )
        nxt = str(request.url.with_query(page=str(number + 1))) if number < 3 else None
        pages = {"type": "pages", "page": number, "per_page": 3, "total_pages": 3, "next": nxt}
        return web.Response(
            body=orjson.dumps(
                {"type": "user.list", "total_count": 9, "users": users, "pages": pages}
            ),
            content_type="application/json",
        )

    base = await raw_server(handler)
    args = ("users", "--db", sink_url, "--base-url", base, "--per-page", "3", "--retries", "1")
    everyone = [f"u{page}-{i}" for page in (1, 2, 3) for i in range(3)]
    code, stderr = await _cli(*args)
    assert code == 0, stderr
    state["fail_page"] = 2
    code, stderr = await _cli(*args)
    assert code == 1, stderr
    assert query(sink_url, "SELECT status, next_page FROM sync_runs ORDER BY id")[-1] == (
        "failed",
        2,
    )
    state.update(fail_page=0, empty_page=3)
    code, stderr = await _cli(*args)
    assert code == 1, stderr
    assert stderr.count("\n") == 1
    assert "ended after 6 records" in stderr
    members = query(sink_url, "SELECT id FROM list_members WHERE list = 'users' ORDER BY position")
    assert [row[0] for row in members] == everyone
    assert query(sink_url, "SELECT id FROM users WHERE deleted_at IS NOT NULL") == []
    assert query(sink_url, "SELECT status FROM sync_runs ORDER BY id")[-1] == ("failed",)

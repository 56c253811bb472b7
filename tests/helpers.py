"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import os
import select
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import IO, Any

import orjson
from aiohttp import web

from asyncfetch.testing import IntercomServer, Workspace

MakeServer = Callable[..., Awaitable[IntercomServer]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RawServer = Callable[[Handler], Awaitable[str]]
"""The ``raw_server`` fixture: ``await raw_server(handler)`` answers every GET with ``handler``."""
"""The ``make_server`` fixture: ``await make_server(**ServerConfig fields)``."""


class TaskWatch:
    """Remembers the tasks alive when made; ``started()`` lists the client-side ones begun
    since and still alive (the bundled server's connection tasks, which share the loop in
    these tests, do not count)."""

    def __init__(self) -> None:
        self._before = asyncio.all_tasks()

    def started(self) -> set[asyncio.Task[Any]]:
        new = asyncio.all_tasks() - self._before - {asyncio.current_task()}  # type: ignore[operator]
        return {task for task in new if not _is_server_task(task)}


def _is_server_task(task: asyncio.Task[Any]) -> bool:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", "")
    code = getattr(coro, "cr_code", None)
    filename = code.co_filename if code is not None else ""
    return (
        "aiohttp/web_" in filename
        or "asyncfetch/testing/_server" in filename
        or name.startswith("BaseSelectorEventLoop._accept_connection")
    )


def ids(items: Iterable[Mapping[str, Any]]) -> list[str]:
    return [str(item["id"]) for item in items]


def users_with_tag(workspace: Workspace, tag_id: str) -> list[Mapping[str, Any]]:
    """The users and leads carrying ``tag_id``, read from each record's own ``tags``,
    in creation order (the order of the page-numbered list)."""
    people = [*workspace.users, *workspace.contacts]
    carrying = [p for p in people if any(t["id"] == tag_id for t in p["tags"]["tags"])]
    return sorted(carrying, key=lambda p: int(p["created_at"]))


def scroll_order(people: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The order of the scroll fallback for users and leads: the users, then the leads."""
    listed = list(people)
    return [p for p in listed if p["type"] == "user"] + [
        p for p in listed if p["type"] == "contact"
    ]


def page_body(
    request: web.Request, *, total: int, per_page: int = 2, with_total: bool = True
) -> bytes:
    number = int(request.query.get("page", "1"))
    items = [{"type": "user", "id": f"u{(number - 1) * per_page + i}"} for i in range(per_page)]
    nxt = str(request.url.with_query(page=str(number + 1))) if number < total else None
    pages: dict[str, object] = {"type": "pages", "page": number, "per_page": per_page, "next": nxt}
    if with_total:
        pages["total_pages"] = total
    return orjson.dumps(
        {"type": "user.list", "total_count": total * per_page, "users": items, "pages": pages}
    )


def error_body(code: str, message: str, *, key: str = "code") -> bytes:
    return orjson.dumps(
        {"type": "error.list", "request_id": "req-42", "errors": [{key: code, "message": message}]}
    )


def read_lines_until(stream: IO[str], marker: str, *, timeout: float = 30.0) -> str:
    """Read a child process's text ``stream`` until a line holding ``marker`` (or
    end of file, or ``timeout`` seconds without it); return what was read."""
    deadline = time.monotonic() + timeout
    read = ""
    fd = stream.fileno()
    while marker not in read:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        read += chunk.decode()
    return read

"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from asyncfetch._server import IntercomServer
from asyncfetch._workspace import Workspace

MakeServer = Callable[..., Awaitable[IntercomServer]]
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
        or "asyncfetch/_server" in filename
        or name.startswith("BaseSelectorEventLoop._accept_connection")
    )


def ids(items: Iterable[Mapping[str, Any]]) -> list[str]:
    return [str(item["id"]) for item in items]


def users_with_tag(workspace: Workspace, tag_id: str) -> list[Mapping[str, Any]]:
    """The workspace's users carrying ``tag_id``, read from each user's own ``tags``."""
    return [u for u in workspace.users if any(t["id"] == tag_id for t in u["tags"]["tags"])]

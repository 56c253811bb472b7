"""``write_pages``: a list's pages into a sink, the fetch running ahead of the writes.

Between the fetch and the writer sits a bounded queue of ``buffer`` pages
(two by default): while a page is written (in a worker thread for SQLite, on
the connection for PostgreSQL) the engine keeps its window of requests
running and the next pages wait in the queue, so a write costs the fetch
nothing until the queue is full, and memory stays bounded by the window plus
the queue. Writes are per page, never per record.

Pages fetched before a failure are still written (they are good, and the
rerun continues after them); then the failure is raised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from typing import Any

import anyio

from .._core._engine import Page
from ._base import Sink, SinkRun

__all__ = ["write_pages"]


async def write_pages(
    sink: Sink,
    run: SinkRun,
    pages: AsyncIterator[Page[Any]],
    *,
    requests: Callable[[], int],
    on_written: Callable[[Page[Any]], None] | None = None,
    buffer: int = 2,
) -> None:
    """Write every page of ``pages`` into ``run``, each in its own transaction
    with the run's progress. ``requests()`` is the number of requests sent so
    far (recorded with each page); ``on_written`` is called after each page is
    committed. A failure of the fetch is raised after the pages fetched before
    it are written."""
    if buffer < 1:
        raise ValueError("buffer must be at least 1")
    send, receive = anyio.create_memory_object_stream[Page[Mapping[str, Any]]](buffer)
    failure: list[Exception] = []

    async def fetch() -> None:
        async with send:
            try:
                if hasattr(pages, "aclose"):
                    async with aclosing(pages):  # type: ignore[type-var]
                        async for page in pages:
                            await send.send(page)
                else:
                    async for page in pages:
                        await send.send(page)
            except Exception as exc:  # raised after the queue is written
                failure.append(exc)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(fetch)
            async with receive:
                async for page in receive:
                    await sink.write_page(run, page.number, page.items, requests=requests())
                    if on_written is not None:
                        on_written(page)
    except BaseExceptionGroup as group_error:
        # One failure (the writer's; the fetch's are caught above): raise it as itself.
        if len(group_error.exceptions) == 1:
            raise group_error.exceptions[0] from None
        raise
    if failure:
        raise failure[0]

"""``write_pages``: a list's pages into a sink, the fetch running ahead of the writes.

Between the fetch and the writer sits a bounded queue of ``buffer`` pages
(eight by default): while a page is written (in a worker thread for SQLite, on
the connection for PostgreSQL) the engine keeps its window of requests
running and the next pages wait in the queue, so a write costs the fetch
nothing until the queue is full, and memory stays bounded by the window plus
the queue. Writes are per page, never per record.

When the writer comes back to the queue and finds several pages waiting, it
writes them (up to ``batch``) in ONE transaction with the run's progress at
the last of them (``Sink.write_batch``): a commit per batch instead of per
page, which is what a write costs most. Exactly once still holds, as the
progress always matches the pages committed; a ``kill -9`` loses at most the
batch being committed, which the rerun fetches again. A lone page is written
at once, as before: batching adds no wait.

Pages fetched before a failure are still written (they are good, and the
rerun continues after them); then the failure is raised. A batch the database
refuses is written again page by page, so its pages before the bad one land.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from typing import Any

import anyio

from .._core._engine import Page
from .._exceptions import SinkWriteError
from ._base import Sink, SinkRun

__all__ = ["write_pages"]


async def write_pages(
    sink: Sink,
    run: SinkRun,
    pages: AsyncIterator[Page[Any]],
    *,
    requests: Callable[[], int],
    on_written: Callable[[Page[Any]], None] | None = None,
    buffer: int = 8,
    batch: int = 8,
) -> None:
    """Write every page of ``pages`` into ``run``, each committed with the run's
    progress; the pages waiting together in the queue (at most ``batch``) in
    one transaction. ``requests()`` is the number of requests sent so far
    (recorded with the progress); ``on_written`` is called after each page is
    committed. A failure of the fetch is raised after the pages fetched before
    it are written."""
    if buffer < 1:
        raise ValueError("buffer must be at least 1")
    if batch < 1:
        raise ValueError("batch must be at least 1")
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
                    waiting = [page]
                    while len(waiting) < batch:
                        try:
                            waiting.append(receive.receive_nowait())
                        except (anyio.WouldBlock, anyio.EndOfStream):
                            break
                    await _write(sink, run, waiting, requests())
                    if on_written is not None:
                        for each in waiting:
                            on_written(each)
    except BaseExceptionGroup as group_error:
        # One failure (the writer's; the fetch's are caught above): raise it as itself.
        if len(group_error.exceptions) == 1:
            raise group_error.exceptions[0] from None
        raise
    if failure:
        raise failure[0]


async def _write(sink: Sink, run: SinkRun, pages: list[Page[Any]], requests: int) -> None:
    """``pages`` in one transaction; if the database refuses the batch (nothing
    of it is committed), page by page, so the good pages before the bad one land
    and the bad one's error is raised (every page written alone: no error)."""
    try:
        await sink.write_batch(
            run, [(page.number, page.items) for page in pages], requests=requests
        )
    except SinkWriteError:
        if len(pages) == 1:
            raise
        for page in pages:
            await sink.write_page(run, page.number, page.items, requests=requests)

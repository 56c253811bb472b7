"""Write a listing to a file page by page: shared by the CLI and the demo.

Page by page, not item by item: a page's items are encoded and written in
one call, and the progress (pages, items, the byte offset where the last
complete page ends) is reported after a page, which is what a checkpoint
records and a resume trusts: after every page when pages come slowly, at
most every ``SAVE_INTERVAL`` seconds when they come fast (a checkpoint is a
file written and renamed: per page, it cost the CLI as much CPU as the rest
of the page together on 5-item pages), and always on the way out.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .. import Item, ListChanges, Listing, Page
from ._formats import JsonLines, OutputFormat

__all__ = ["SAVE_INTERVAL", "BinaryWriter", "ExportSummary", "Progress", "export", "export_jsonl"]

SAVE_INTERVAL = 0.02
"""Seconds between two calls of ``export``'s ``on_written`` (a checkpoint: a file
written and renamed, ~0.4 ms here): when pages come faster than this, the
progress of several goes out in one call; slower, every page's does."""


class BinaryWriter(Protocol):
    """Where an export writes: a binary file, or anything with these two methods."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Progress:
    """Where an export stands after a whole page: ``pages`` and ``items`` written in
    all (a resumed run's earlier ones included), filling ``offset`` bytes."""

    pages: int
    items: int
    offset: int


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export did: ``pages`` and ``items`` written by this run, wall
    ``seconds``, and what was seen of the list changing meanwhile."""

    pages: int
    items: int
    seconds: float
    changes: ListChanges

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds > 0 else 0.0


async def export(
    pages: AsyncIterable[Page[Any]],
    out: BinaryWriter,
    fmt: OutputFormat,
    *,
    changes: ListChanges,
    resume_from: Progress | None = None,
    on_page: Callable[[Page[Any]], None] | None = None,
    on_written: Callable[[Progress], None] | None = None,
    save_interval: float = SAVE_INTERVAL,
) -> ExportSummary:
    """Write every page of ``pages`` to ``out`` in ``fmt``, in order.

    Each page goes out in one ``write`` once it is whole, so a failure leaves
    the file holding whole earlier pages only. The write is a plain blocking
    call: a page is tens of kilobytes into the OS's buffers, cheaper than a hop
    to a worker thread, and the window's requests keep running meanwhile.

    ``resume_from`` continues a file that already holds that much (no header
    then). ``on_written`` is called with the progress after a page once the
    file is flushed, so a checkpoint taken there never claims more than the
    file holds: after each page when pages come ``save_interval`` seconds
    apart or more; when they come faster, after the first page in each
    interval, and on every way out (a failure, a cancellation, the end) with
    the last page's progress, so that only a ``kill -9`` can leave the
    checkpoint behind, by at most ``save_interval``'s worth of pages, fetched
    again on resume. ``on_page`` after each page, for progress.
    """
    started = time.perf_counter()
    done = resume_from or Progress(pages=0, items=0, offset=0)
    pages_now = items_now = 0
    offset = done.offset
    written = done.items
    # The header goes out with the first page, so that nothing touches the
    # file before a page has arrived.
    header = fmt.header() if resume_from is None else b""
    # The progress not yet handed to on_written, and when it last was.
    unsaved: Progress | None = None
    saved_at = -math.inf
    clock = time.monotonic
    try:
        async for page in pages:
            items = page.items
            data = fmt.page(items, written_before=written)
            if header:
                data, header = header + data, b""
            offset += out.write(data)
            written += len(items)
            pages_now += 1
            items_now += len(items)
            if on_written is not None:
                unsaved = Progress(pages=done.pages + pages_now, items=written, offset=offset)
                now = clock()
                if now - saved_at >= save_interval:
                    out.flush()
                    saving, unsaved, saved_at = unsaved, None, now
                    on_written(saving)
            if on_page is not None:
                on_page(page)
    except BaseException:
        # A failure or Ctrl-C: the last whole page's progress, once the file holds
        # it. A flush or save that fails (a full disk) leaves the earlier
        # checkpoint, which claims less than the file holds, and the first error.
        if unsaved is not None:
            assert on_written is not None
            with contextlib.suppress(OSError):
                out.flush()
                on_written(unsaved)
        raise
    if unsaved is not None:
        assert on_written is not None
        out.flush()
        on_written(unsaved)
    out.write(header + fmt.footer(written=written))
    out.flush()
    return ExportSummary(
        pages=pages_now, items=items_now, seconds=time.perf_counter() - started, changes=changes
    )


async def export_jsonl(
    listing: Listing[Item],
    out: BinaryWriter,
    *,
    on_page: Callable[[Page[Any]], None] | None = None,
) -> ExportSummary:
    """Write every item of ``listing`` to ``out`` as JSON Lines, then close the listing."""
    async with listing:
        return await export(
            listing.pages(), out, JsonLines(), changes=listing.changes, on_page=on_page
        )

"""Write a listing to a file page by page: shared by the CLI and the demo.

Page by page, not item by item: a page's items are encoded and written in
one call, and the progress (pages, items, the byte offset where the last
complete page ends) is reported after each page, which is what a checkpoint
records and a resume trusts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .. import Item, ListChanges, Listing, Page
from ._formats import JsonLines, OutputFormat

__all__ = ["BinaryWriter", "ExportSummary", "Progress", "export", "export_jsonl"]


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
) -> ExportSummary:
    """Write every page of ``pages`` to ``out`` in ``fmt``, in order.

    Each page goes out in one ``write`` once it is whole, so a failure leaves
    the file holding whole earlier pages only. The write is a plain blocking
    call: a page is tens of kilobytes into the OS's buffers, cheaper than a hop
    to a worker thread, and the window's requests keep running meanwhile.

    ``resume_from`` continues a file that already holds that much (no header
    then). ``on_written`` is called after each page is written and flushed,
    so a checkpoint taken there never claims more than the file holds;
    ``on_page`` after each page, for progress.
    """
    started = time.perf_counter()
    done = resume_from or Progress(pages=0, items=0, offset=0)
    pages_now = items_now = 0
    offset = done.offset
    written = done.items
    # The header goes out with the first page, so that nothing touches the
    # file before a page has arrived.
    header = fmt.header() if resume_from is None else b""
    async for page in pages:
        data = fmt.page(page.items, written_before=written)
        if header:  # the first page of a new file: no copy of the others for an empty one
            data, header = header + data, b""
        offset += out.write(data)
        written += len(page.items)
        pages_now += 1
        items_now += len(page.items)
        if on_written is not None:
            out.flush()
            on_written(Progress(pages=done.pages + pages_now, items=written, offset=offset))
        if on_page is not None:
            on_page(page)
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

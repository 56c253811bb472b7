"""Write a listing to JSON Lines, page by page: shared by the CLI and the demo."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import orjson

from ._engine import ListChanges, Page
from ._intercom import Item
from ._listing import Listing

__all__ = ["BinaryWriter", "ExportSummary", "export_jsonl"]


class BinaryWriter(Protocol):
    """Where an export writes: a binary file, or anything with these two methods."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export did: ``pages`` and ``items`` written, wall ``seconds``, and what
    was seen of the list changing meanwhile."""

    pages: int
    items: int
    seconds: float
    changes: ListChanges

    @property
    def requests_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds > 0 else 0.0


async def export_jsonl(
    listing: Listing[Item],
    out: BinaryWriter,
    *,
    on_page: Callable[[Page[Item]], None] | None = None,
) -> ExportSummary:
    """Write every item of ``listing`` to ``out``, one JSON object per line, in API order.

    Each page goes out in one ``write`` once it is complete, so a failure
    leaves the file holding whole earlier pages only. The write is a plain
    blocking call: a page is tens of kilobytes into the OS's buffers, cheaper
    than a hop to a worker thread, and the window's requests keep running
    meanwhile. ``on_page`` is called after each page is written.
    """
    started = time.perf_counter()
    pages = items = 0
    line = orjson.OPT_APPEND_NEWLINE
    dumps = orjson.dumps
    async with listing:
        async for page in listing.pages():
            out.write(b"".join([dumps(item, option=line) for item in page.items]))
            pages += 1
            items += len(page.items)
            if on_page is not None:
                on_page(page)
    out.flush()
    return ExportSummary(
        pages=pages, items=items, seconds=time.perf_counter() - started, changes=listing.changes
    )

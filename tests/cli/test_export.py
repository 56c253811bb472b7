"""How often ``export`` hands its progress to ``on_written`` (the checkpoint): at
most every ``save_interval`` seconds, and always with the last whole page on the
way out, a failure or a cancellation included, once the file holds it."""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import AsyncGenerator

import orjson
import pytest

from asyncfetch import ListChanges, Page
from asyncfetch._cli._export import Progress, export
from asyncfetch._cli._formats import JsonLines

PAGES = 30
PER_PAGE = 3


class Flushed(io.BytesIO):
    """A file that remembers how much of it was flushed when each progress came."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed = 0

    def flush(self) -> None:
        super().flush()
        self.flushed = self.tell()


async def pages(fail_after: int | None = None) -> AsyncGenerator[Page[dict[str, int]], None]:
    for number in range(1, PAGES + 1):
        if number - 1 == fail_after:
            raise RuntimeError(f"page {number} failed")
        items = [{"id": (number - 1) * PER_PAGE + i} for i in range(PER_PAGE)]
        yield Page(number=number, items=items, total_pages=PAGES, total_count=PAGES * PER_PAGE)
        await asyncio.sleep(0)


def recorder(out: Flushed) -> tuple[list[Progress], object]:
    saved: list[Progress] = []

    def on_written(progress: Progress) -> None:
        # The checkpoint never claims more than the file holds.
        assert progress.offset <= out.flushed
        saved.append(progress)

    return saved, on_written


def whole(pages_written: int, out: Flushed) -> Progress:
    data = out.getvalue()
    lines = data.split(b"\n")[: pages_written * PER_PAGE]
    offset = sum(len(line) + 1 for line in lines)
    assert [orjson.loads(line)["id"] for line in lines] == list(range(pages_written * PER_PAGE))
    return Progress(pages=pages_written, items=pages_written * PER_PAGE, offset=offset)


@pytest.mark.anyio
async def test_pages_slower_than_the_interval_are_each_saved() -> None:
    out = Flushed()
    saved, on_written = recorder(out)
    await export(pages(), out, JsonLines(), changes=ListChanges(), on_written=on_written,
                 save_interval=0.0)  # fmt: skip
    assert [p.pages for p in saved] == list(range(1, PAGES + 1))
    assert saved[-1] == whole(PAGES, out)


@pytest.mark.anyio
async def test_pages_faster_than_the_interval_are_saved_once_at_the_end() -> None:
    out = Flushed()
    saved, on_written = recorder(out)
    await export(pages(), out, JsonLines(), changes=ListChanges(), on_written=on_written,
                 save_interval=math.inf)  # fmt: skip
    # The first page opens the interval; the rest go out together at the end.
    assert [p.pages for p in saved] == [1, PAGES]
    assert saved[-1] == whole(PAGES, out)


@pytest.mark.anyio
async def test_a_failure_saves_the_last_whole_page_first() -> None:
    out = Flushed()
    saved, on_written = recorder(out)
    with pytest.raises(RuntimeError, match="page 13 failed"):
        await export(pages(fail_after=12), out, JsonLines(), changes=ListChanges(),
                     on_written=on_written, save_interval=math.inf)  # fmt: skip
    assert [p.pages for p in saved] == [1, 12]
    assert saved[-1] == whole(12, out)


@pytest.mark.anyio
async def test_a_cancellation_saves_the_last_whole_page_first() -> None:
    out = Flushed()
    saved, on_written = recorder(out)
    written = asyncio.Event()

    def on_page(page: Page[object]) -> None:
        if page.number == 7:
            written.set()

    async def slow() -> AsyncGenerator[Page[dict[str, int]], None]:
        async for page in pages():
            yield page
            if page.number == 7:
                await asyncio.Event().wait()  # never set: the export is cancelled here

    task = asyncio.ensure_future(
        export(
            slow(),
            out,
            JsonLines(),
            changes=ListChanges(),
            on_page=on_page,
            on_written=on_written,
            save_interval=math.inf,
        )
    )
    await written.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [p.pages for p in saved] == [1, 7]
    assert saved[-1] == whole(7, out)

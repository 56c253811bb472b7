"""A live progress display on stderr for the CLI and the demo.

One bar per list: pages done of total, items, and for the whole client
requests per second, retries and 429s so far, with an ETA. It is updated once
per page, never per item.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ._engine import Page
from ._http import FetchStats

__all__ = ["OnPage", "ProgressBoard", "progress_board"]

OnPage = Callable[[Page[Any]], None]


class ProgressBoard:
    """Bars for the lists of one run; ``track(name)`` gives a list its per-page callback."""

    def __init__(self, progress: Progress | None, stats: Callable[[], FetchStats]) -> None:
        self._progress = progress
        self._stats = stats
        self._started = time.perf_counter()

    def track(self, name: str, *, done_pages: int = 0) -> OnPage | None:
        progress = self._progress
        if progress is None:
            return None
        task = progress.add_task(name, total=None, completed=done_pages, items=0, net="")
        items = 0

        def on_page(page: Page[Any]) -> None:
            nonlocal items
            items += len(page.items)
            if page.total_pages:
                progress.update(task, total=max(page.total_pages, page.number))
            stats = self._stats()
            elapsed = time.perf_counter() - self._started
            net = (
                f"{stats.requests / elapsed if elapsed else 0:.0f} req/s · "
                f"{stats.retries} retries · {stats.statuses[429]} 429s"
            )
            progress.update(task, completed=page.number, items=items, net=net)

        return on_page


@contextlib.contextmanager
def progress_board(*, enabled: bool, stats: Callable[[], FetchStats]) -> Iterator[ProgressBoard]:
    """A ``ProgressBoard`` drawing on stderr while the block runs, or a silent one."""
    if not enabled:
        yield ProgressBoard(None, stats)
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("pages · {task.fields[items]} items · {task.fields[net]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    with progress:
        yield ProgressBoard(progress, stats)

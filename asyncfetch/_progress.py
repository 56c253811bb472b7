"""A progress bar on stderr for the CLI and the demo: pages done of total, items, ETA."""

from __future__ import annotations

import contextlib
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

__all__ = ["page_progress"]

OnPage = Callable[[Page[Any]], None]


@contextlib.contextmanager
def page_progress(*, enabled: bool, description: str = "fetching") -> Iterator[OnPage | None]:
    """Yield a per-page callback that advances a progress bar, or ``None`` when disabled."""
    if not enabled:
        yield None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("pages · {task.fields[items]} items"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    task = progress.add_task(description, total=None, items=0)
    items = 0

    def on_page(page: Page[Any]) -> None:
        nonlocal items
        items += len(page.items)
        if page.number == 1 and page.total_pages:
            progress.update(task, total=page.total_pages)
        progress.update(task, advance=1, items=items)

    with progress:
        yield on_page

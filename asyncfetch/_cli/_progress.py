"""A live progress display on stderr for the CLI and the demo.

One row per list: its name, a bar, pages done of total, items, ETA; sized to
fit an 80-column terminal, the narrowest a user is likely to have. Below the
rows, one line for the whole client (requests per second, retries and 429s
so far, time elapsed) and, while the client is waiting for something, what it
waits for and how long is left: a rate-limit pause or an open scroll can stop
every request for seconds to a minute, and a bar that just stops looks hung.

The rows are updated once per page, never per item. The client line is drawn
at rich's refresh rate from counters the client keeps anyway.

Waits are learnt from the library's log records: the code that pauses logs
an INFO line carrying ``extra={"asyncfetch_wait": (what, seconds)}`` (see
`_ratelimit.RateBudget.acquire` and `_scroll.Scroll.pages`), so the library
needs no callback for a display it knows nothing about. While the board is
shown, it also sends the ``asyncfetch`` logger's stderr lines (``-v``)
through rich's console, which prints them above the bars instead of through
them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from rich.console import Console, Group, RenderableType
from rich.file_proxy import FileProxy
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from .. import FetchStats, Page
from ._wording import count

__all__ = ["WAIT_ATTRIBUTE", "OnPage", "ProgressBoard", "progress_board"]

OnPage = Callable[[Page[Any]], None]

#: The log record attribute that announces a wait: ``(what is awaited, seconds)``.
WAIT_ATTRIBUTE: Final = "asyncfetch_wait"

# Widths that keep a row within 80 columns: name 20, bar 12, pages 17
# ("12345/12345 pages"), items 13, "ETA 0:00:00" 11, and 4 separating spaces.
_NAME_WIDTH: Final = 20
_BAR_WIDTH: Final = 12
# A wait shorter than this is not worth a line.
_SHOWN_WAIT: Final = 1.0


class ProgressBoard:
    """Bars for the lists of one run; ``track(name)`` gives a list its per-page callback."""

    def __init__(self, progress: Progress | None, stats: Callable[[], FetchStats]) -> None:
        self._progress = progress
        self._stats = stats
        self._started = time.monotonic()
        self._waiting: tuple[str, float, float] | None = None  # what, seconds, until

    def track(self, name: str, *, done_pages: int = 0) -> OnPage | None:
        progress = self._progress
        if progress is None:
            return None
        task = progress.add_task(
            _fit(name, _NAME_WIDTH), total=None, completed=done_pages, items=count(0, "item")
        )
        items = 0

        def on_page(page: Page[Any]) -> None:
            nonlocal items
            items += len(page.items)
            total = max(page.total_pages, page.number) if page.total_pages else None
            progress.update(task, total=total, completed=page.number, items=count(items, "item"))

        return on_page

    def waiting(self, what: str, seconds: float) -> None:
        """Show that every request waits ``seconds`` for ``what`` (from now)."""
        self._waiting = (what, seconds, time.monotonic() + seconds)

    def status(self) -> RenderableType:
        """The client's line, and the wait line while a wait lasts."""
        stats = self._stats()
        now = time.monotonic()
        elapsed = now - self._started
        line = Text(
            f"{stats.requests / elapsed if elapsed > 0 else 0:.0f} req/s · "
            f"{count(stats.retries, 'retry', 'retries')} · {stats.statuses[429]} 429s · "
            f"{_clock(elapsed)} elapsed",
            style="dim",
            no_wrap=True,
            overflow="ellipsis",
        )
        if self._waiting is not None:
            what, seconds, until = self._waiting
            left = until - now
            if left > 0 and seconds >= _SHOWN_WAIT:
                wait = Text(
                    f"waiting for {what}: {math.ceil(left)} s left of {seconds:.0f} s",
                    style="yellow",
                    no_wrap=True,
                    overflow="ellipsis",
                )
                return Group(line, wait)
        return line


class _Board(Progress):
    """rich's Progress with the board's status lines under the rows."""

    def __init__(
        self,
        *columns: str | ProgressColumn,
        board: Callable[[], ProgressBoard | None],
        **options: Any,
    ) -> None:
        self._board = board  # before super(): rich renders once while it initialises
        super().__init__(*columns, **options)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        board = self._board()
        if board is not None:
            yield board.status()


class _PagesColumn(ProgressColumn):
    """``37/100 pages`` (``37/? pages`` before the total is known)."""

    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{task.total:.0f}"
        return Text(f"{task.completed:.0f}/{total} pages", no_wrap=True)


class _EtaColumn(ProgressColumn):
    """``ETA 0:01:05``; ``ETA -:--:--`` until there is a speed to go by."""

    max_refresh = 0.5

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text("done", style="green", no_wrap=True)
        remaining = task.time_remaining
        shown = "-:--:--" if remaining is None else _clock(remaining)
        return Text(f"ETA {shown}", no_wrap=True)


class _WaitHandler(logging.Handler):
    """Passes the waits announced in log records on to the board."""

    def __init__(self, board: ProgressBoard) -> None:
        super().__init__(logging.INFO)
        self._board = board

    def emit(self, record: logging.LogRecord) -> None:
        wait = getattr(record, WAIT_ATTRIBUTE, None)
        if wait is not None:
            what, seconds = wait
            self._board.waiting(what, float(seconds))


@contextlib.contextmanager
def progress_board(*, enabled: bool, stats: Callable[[], FetchStats]) -> Iterator[ProgressBoard]:
    """A ``ProgressBoard`` drawing on stderr while the block runs, or a silent one."""
    if not enabled:
        yield ProgressBoard(None, stats)
        return
    boards: list[ProgressBoard] = []
    progress = _Board(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(bar_width=_BAR_WIDTH),
        _PagesColumn(),
        TextColumn("{task.fields[items]}", markup=False),
        _EtaColumn(),
        console=Console(stderr=True),
        board=lambda: boards[0] if boards else None,
    )
    board = ProgressBoard(progress, stats)
    boards.append(board)
    # Logging first: rich swaps sys.stderr for its own proxy while the bars show.
    with _logging_through(progress.console, board), progress:
        yield board


@contextlib.contextmanager
def _logging_through(console: Console, board: ProgressBoard) -> Iterator[None]:
    """While the bars are shown: the ``asyncfetch`` logger's stderr lines go through
    ``console`` (printed above the bars), and its announced waits reach ``board``."""
    logger = logging.getLogger("asyncfetch")
    proxy = FileProxy(console, sys.stderr)
    redirected = [
        handler
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler)
        and handler.stream in (sys.stderr, sys.__stderr__)
    ]
    streams = [handler.setStream(proxy) for handler in redirected]
    listener = _WaitHandler(board)
    logger.addHandler(listener)
    level = logger.level
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)  # the waits are INFO records
    try:
        yield
    finally:
        logger.setLevel(level)
        logger.removeHandler(listener)
        for handler, stream in zip(redirected, streams, strict=True):
            handler.setStream(stream)
        proxy.flush()


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _clock(seconds: float) -> str:
    whole = int(max(seconds, 0))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"

"""``sync_list``: one list into a sink, started or continued, exactly once.

The whole of a list's run against the database, written once for everyone who
syncs: the CLI's ``--db`` (``_cli/_db.py``, several lists side by side) and the
fleet (``_fleet/``, one list per Temporal activity or a workspace's lists in
one process). It begins (or continues) the list's run from the database's own
record, drops the records an earlier process of a continued run already
staged, writes the pages (``write_pages``), makes the count check a continued
run's listing cannot make itself, and finishes the run: complete, or failed
with its progress kept for the rerun, whatever stopped it. A worker killed
mid-list and a rerun on another machine are the same case: the next run
continues from the last committed page.

Nothing here knows HTTP or Intercom: the caller makes the listing (any
``Listing``, by a callable run after the run is begun) and says how many
requests its client has sent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from .._core._count import count_check_resumed
from .._core._dedupe import drop_repeated_ids
from .._core._engine import ListChanges, Page
from .._core._listing import Listing
from .._exceptions import PageLimitError, SinkError
from ._base import Sink, SinkRun
from ._writer import write_pages

__all__ = ["ListSynced", "sync_list"]


@dataclass(frozen=True, slots=True)
class ListSynced:
    """What one ``sync_list`` did: the ``pages`` and ``items`` it wrote (the run's
    earlier ones not included), the run's totals (``run_pages``, ``run_items``),
    whether it continued a stopped run (``resumed``), its listing's ``changes``
    and how long it took."""

    pages: int
    items: int
    run_pages: int
    run_items: int
    resumed: bool
    changes: ListChanges
    seconds: float


async def sync_list(
    sink: Sink,
    make_listing: Callable[[], Listing[Any]],
    *,
    list_name: str,
    kind: str,
    whole: bool,
    per_page: int,
    base_url: str,
    requests: Callable[[], int],
    display_name: str | None = None,
    incremental: bool = False,
    restart: bool = False,
    keep_duplicates: bool = False,
    on_begun: Callable[[SinkRun], Callable[[Page[Any]], None] | None] | None = None,
) -> ListSynced:
    """Sync the list ``list_name`` (records of table ``kind``) into ``sink``.

    ``make_listing()`` makes its listing once the run is begun. ``requests()``
    is the client's number of requests so far (recorded with the progress).
    ``whole``: a complete pass marks the records it did not see as deleted.
    ``incremental``: the listing holds only the records updated since the
    bookmark, fetched from page 1. ``restart``: an unfinished run is started
    afresh, not continued. A continued run drops the records its earlier
    pages staged, unless ``keep_duplicates``. ``on_begun(run)`` may return a
    callable told of each page written. ``display_name`` names the list in a
    count check's message (``list_name`` by default)."""
    run = await sink.begin_run(
        list_name=list_name,
        kind=kind,
        per_page=per_page,
        base_url=base_url,
        whole=whole,
        incremental=incremental,
        restart=restart,
    )
    pages_before, items_before = run.pages, run.items
    started = time.perf_counter()
    listing = make_listing()
    # Updates move records between pages: an incremental run starts at page 1.
    pages = listing.pages(start=1 if incremental else run.next_page)
    if run.resumed and not incremental and not keep_duplicates:
        # The process that wrote the earlier pages, and its memory of the ids
        # handed over, is gone: a list that shifted since shows the last of
        # them again on the next page. The staging remembers them.
        pages = drop_repeated_ids(pages, listing.changes, await sink.staged_ids(run))
    on_page = on_begun(run) if on_begun is not None else None
    try:
        async with listing:
            await write_pages(sink, run, pages, requests=requests, on_written=on_page)
        if run.resumed and not incremental:
            # Records that came again (dropped as already staged) stand for as
            # many newcomers before the run's earlier pages, which total_count
            # counts and this run, past those pages, never meets.
            count_check_resumed(
                display_name or list_name,
                run.items,
                listing.changes,
                including="the run's earlier pages",
                credited=listing.changes.duplicates_dropped,
            )
    except PageLimitError as exc:
        if run.resumed:
            # Stopped after the list switched to the scroll: its pages are no
            # longer numbered ones to continue from.
            exc.message += "; the run continued a stopped one: --restart starts it afresh"
            exc.continued = True
        with anyio.CancelScope(shield=True), contextlib.suppress(SinkError):
            await sink.finish_run(run, complete=False, requests=requests())
        raise
    except BaseException:
        # The run failed or was stopped: its membership is left as it was, its
        # progress kept for the rerun. (A broken database may refuse this too.)
        with anyio.CancelScope(shield=True), contextlib.suppress(SinkError):
            await sink.finish_run(run, complete=False, requests=requests())
        raise
    await sink.finish_run(run, complete=True, requests=requests())
    return ListSynced(
        pages=run.pages - pages_before,
        items=run.items - items_before,
        run_pages=run.pages,
        run_items=run.items,
        resumed=run.resumed,
        changes=listing.changes,
        seconds=time.perf_counter() - started,
    )

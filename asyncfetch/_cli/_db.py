"""``--db``: a list command's records into a database instead of a file.

The library's sink does the work (``open_sink``, ``Sink.begin_run``,
``write_pages``, ``Sink.finish_run``); this module names each list for the
database (``DbList``) and runs the lists of one command side by side on one
client and one sink, with the same progress board and summary as a file
export. What is different from a file: no ``--resume``, the database keeps
its own record of where each list stopped, so rerunning the same command
continues; and no partial file, a page is in the database or not.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from dataclasses import dataclass

import anyio
import click

from .. import (
    SINK_KINDS,
    IntercomClient,
    PageLimitError,
    Sink,
    SinkError,
    drop_repeated_ids,
    write_pages,
)
from ._export import ExportSummary
from ._progress import ProgressBoard
from ._sync import ListSpec, Target, count_check_resumed

__all__ = ["DbList", "db_list_of", "sync_to_db"]


@dataclass(frozen=True, slots=True)
class DbList:
    """How a list is known in the database: ``name`` in ``list_members`` and
    ``sync_runs`` (``users?tag_id=100``), the table of its records (``kind``),
    and whether it is a whole collection (``whole``: a complete pass marks
    the records it did not see as deleted)."""

    name: str
    kind: str
    whole: bool


_FILTERS = ("tag_id", "segment_id", "id", "company_id")


def db_list_of(spec: ListSpec[IntercomClient]) -> DbList:
    """The database's name for ``spec``'s list, from its fingerprint."""
    what = str(spec.fingerprint["list"])
    filters = [
        (key, spec.fingerprint[key]) for key in _FILTERS if spec.fingerprint.get(key) is not None
    ]
    kind = "users" if what in ("users", "company_users") else what
    assert kind in SINK_KINDS, kind
    name = what + ("?" + "&".join(f"{key}={value}" for key, value in filters) if filters else "")
    return DbList(name=name, kind=kind, whole=what != "company_users" and not filters)


async def sync_to_db(
    client: IntercomClient,
    sink: Sink,
    targets: list[Target[IntercomClient]],
    board: ProgressBoard,
    *,
    per_page: int,
    base_url: str,
    incremental_margin: float | None = None,
    restart: bool = False,
    keep_duplicates: bool = False,
) -> None:
    """Every list of ``targets`` into ``sink``, side by side. With
    ``incremental_margin`` (all users only), only the users updated since the
    list's bookmark less that many seconds, if it has one. ``restart``: an
    unfinished run of a list is started afresh, not continued. A continued
    run drops the records its earlier pages staged, unless ``keep_duplicates``."""
    async with anyio.create_task_group() as group:
        for target in targets:
            group.start_soon(
                _sync_one,
                client,
                sink,
                target,
                board,
                per_page,
                base_url,
                incremental_margin,
                restart,
                keep_duplicates,
            )


async def _sync_one(
    client: IntercomClient,
    sink: Sink,
    target: Target[IntercomClient],
    board: ProgressBoard,
    per_page: int,
    base_url: str,
    incremental_margin: float | None,
    restart: bool,
    keep_duplicates: bool,
) -> None:
    where = db_list_of(target.spec)
    since = None
    if incremental_margin is not None:
        bookmark = await sink.bookmark(where.name)
        if bookmark is None:
            click.echo(
                f"asyncfetch: {target.spec.name}: no complete run yet to start from: a full pass",
                err=True,
            )
        else:
            since = bookmark - dt.timedelta(seconds=incremental_margin)
    run = await sink.begin_run(
        list_name=where.name,
        kind=where.kind,
        per_page=per_page,
        base_url=base_url,
        whole=where.whole,
        incremental=since is not None,
        restart=restart,
    )
    pages_before, items_before = run.pages, run.items
    started = time.perf_counter()
    if since is not None:
        # Updates move records between pages: an incremental run starts at page 1.
        listing = client.users(updated_since=since)
        first_page = 1
    else:
        listing = target.spec.make(client)
        first_page = run.next_page
    pages = listing.pages(start=first_page)
    if run.resumed and since is None and not keep_duplicates:
        # The process that wrote the earlier pages, and its memory of the ids
        # handed over, is gone: a list that shifted since shows the last of
        # them again on the next page. The staging remembers them.
        pages = drop_repeated_ids(pages, listing.changes, await sink.staged_ids(run))
    on_page = board.track(target.spec.name, done_pages=run.pages)

    def requests() -> int:
        return client.stats.requests

    try:
        async with listing:
            await write_pages(
                sink,
                run,
                pages,
                requests=requests,
                on_written=on_page,
            )
        if run.resumed and since is None:
            # Records that came again (dropped as already staged) stand for as
            # many newcomers before the run's earlier pages, which total_count
            # counts and this run, past those pages, never meets.
            count_check_resumed(
                target.spec.name,
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
    target.summary = ExportSummary(
        pages=run.pages - pages_before,
        items=run.items - items_before,
        seconds=time.perf_counter() - started,
        changes=listing.changes,
    )

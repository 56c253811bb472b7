"""``--db``: a list command's records into a database instead of a file.

The library's sink does the work (``open_sink``, ``sync_list``: a list's
run begun or continued, written and finished); this module names each list for the
database (``DbList``) and runs the lists of one command side by side on one
client and one sink, with the same progress board and summary as a file
export. What is different from a file: no ``--resume``, the database keeps
its own record of where each list stopped, so rerunning the same command
continues; and no partial file, a page is in the database or not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import click

from .. import (
    SINK_KINDS,
    IntercomClient,
    Item,
    Listing,
    Page,
    Sink,
    SinkRun,
    sync_list,
)
from ._export import ExportSummary
from ._progress import ProgressBoard
from ._sync import ListSpec, Target

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
    display = target.spec.name

    def make_listing() -> Listing[Item]:
        if since is not None:
            return client.users(updated_since=since)
        return target.spec.make(client)

    def on_begun(run: SinkRun) -> Callable[[Page[Item]], None] | None:
        return board.track(display, done_pages=run.pages)

    def requests() -> int:
        return client.stats.requests

    synced = await sync_list(
        sink,
        make_listing,
        list_name=where.name,
        kind=where.kind,
        whole=where.whole,
        per_page=per_page,
        base_url=base_url,
        requests=requests,
        display_name=display,
        incremental=since is not None,
        restart=restart,
        keep_duplicates=keep_duplicates,
        on_begun=on_begun,
    )
    target.summary = ExportSummary(
        pages=synced.pages, items=synced.items, seconds=synced.seconds, changes=synced.changes
    )

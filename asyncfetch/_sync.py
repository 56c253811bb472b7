"""Bulk sync: one run of the CLI, several lists, one client, files that survive a stop.

Every list of a run shares the client's connection pool and rate budget.
Each list goes to its own file (``--out`` for one list, ``--out-dir`` for
several), resumable from its checkpoint; or all lists go to one merged file,
one list after another, records seen in an earlier list dropped, while the
lists fetched one after another.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import IO, Any

import anyio

from ._checkpoint import Checkpoint, checkpoint_path
from ._client import IntercomClient
from ._engine import SWITCHED_TO_SCROLL, ListChanges, Page
from ._export import ExportSummary, Progress, export
from ._formats import OutputFormat
from ._intercom import Item
from ._listing import Listing
from ._progress import ProgressBoard

__all__ = ["ListSpec", "Output", "Target", "plan_targets", "sync_merged", "sync_separately"]


@dataclass(frozen=True, slots=True)
class ListSpec:
    """One list of a run: its display ``name``, a file-name ``slug``, how to make
    its listing from the client, and what identifies the request in a checkpoint."""

    name: str
    slug: str
    make: Callable[[IntercomClient], Listing[Item]]
    fingerprint: dict[str, Any]


@dataclass(slots=True)
class Target:
    """Where one list goes, and where it stopped last time (``resume_from``)."""

    spec: ListSpec
    path: str
    resume_from: Progress | None = None
    summary: ExportSummary | None = field(default=None)

    @property
    def checkpoint(self) -> str | None:
        return None if self.path == "-" else checkpoint_path(self.path)


class Output:
    """An output file, opened only at its first write: a run that fails before
    its first page leaves an earlier file untouched. Resuming, it is cut back
    to ``resume_offset`` bytes (dropping a page half-written by a killed run)."""

    def __init__(self, path: str, *, resume_offset: int | None = None) -> None:
        self._path = path
        self._resume_offset = resume_offset
        self._file: IO[bytes] | None = None

    def write(self, data: bytes) -> int:
        if self._file is None:
            self._file = self._open()
        return self._file.write(data)

    def _open(self) -> IO[bytes]:
        if self._path == "-":
            return sys.stdout.buffer
        if self._resume_offset is None:
            return open(self._path, "wb")
        file = open(self._path, "r+b")  # noqa: SIM115 - closed by close()
        file.truncate(self._resume_offset)
        file.seek(self._resume_offset)
        return file

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None and self._path != "-":
            self._file.close()


def plan_targets(
    specs: list[ListSpec], paths: list[str], fingerprint_extra: dict[str, Any], *, resume: bool
) -> list[Target]:
    """Pair lists with paths and read their checkpoints, before any request.

    Raises ``CheckpointMismatch`` or ``ValueError`` for a checkpoint that
    cannot be used.
    """
    targets = []
    for spec, path in zip(specs, paths, strict=True):
        spec = replace(spec, fingerprint={**spec.fingerprint, **fingerprint_extra})
        target = Target(spec=spec, path=path)
        if resume and target.checkpoint is not None:
            checkpoint = Checkpoint.load(target.checkpoint, spec.fingerprint)
            if checkpoint is not None:
                size = os.path.getsize(path) if os.path.exists(path) else -1
                if size < checkpoint.offset:
                    raise ValueError(
                        f"{path} is shorter than its checkpoint says ({size} < "
                        f"{checkpoint.offset} bytes); delete the checkpoint to start afresh"
                    )
                target.resume_from = Progress(
                    pages=checkpoint.pages, items=checkpoint.items, offset=checkpoint.offset
                )
        targets.append(target)
    return targets


async def sync_separately(
    client: IntercomClient, targets: list[Target], fmt: OutputFormat, board: ProgressBoard
) -> None:
    """Each list to its own file, all lists fetched together."""
    async with anyio.create_task_group() as group:
        for target in targets:
            group.start_soon(_sync_one, client, target, fmt, board)


async def _sync_one(
    client: IntercomClient, target: Target, fmt: OutputFormat, board: ProgressBoard
) -> None:
    resumed = target.resume_from
    out = Output(target.path, resume_offset=resumed.offset if resumed else None)
    checkpoint_file = target.checkpoint
    fingerprint = target.spec.fingerprint

    def save(progress: Progress) -> None:
        assert checkpoint_file is not None
        if listing.changes.method == SWITCHED_TO_SCROLL:
            # Scroll batches are not numbered pages: the checkpoint stays at the
            # last numbered page, and a resume from it refuses or goes on by page.
            return
        Checkpoint(fingerprint, progress.pages, progress.items, progress.offset).save(
            checkpoint_file
        )

    if checkpoint_file and resumed is None:
        # A fresh run: a checkpoint left by an earlier one no longer describes the file.
        Checkpoint.remove(checkpoint_file)
    listing = target.spec.make(client)
    try:
        async with listing:
            target.summary = await export(
                listing.pages(start=resumed.pages + 1 if resumed else 1),
                out,
                fmt,
                changes=listing.changes,
                resume_from=resumed,
                on_page=board.track(target.spec.name, done_pages=resumed.pages if resumed else 0),
                on_written=save if checkpoint_file else None,
            )
    finally:
        out.close()
    if checkpoint_file:
        Checkpoint.remove(checkpoint_file)


async def sync_merged(
    client: IntercomClient,
    specs: list[ListSpec],
    out: Output,
    fmt: OutputFormat,
    board: ProgressBoard,
) -> ExportSummary:
    """Every list into one file, one after another, a record seen before dropped.

    The lists are fetched one after another too: a list past the record cap is
    scrolled, Intercom allows one scroll at a time, and a later list's scroll
    waiting on an earlier list that is waiting to be written would never end.
    """
    changes = ListChanges()

    async def merged() -> AsyncIterator[Page[Item]]:
        seen: set[object] = set()
        for spec in specs:
            on_page = board.track(spec.name)
            async with spec.make(client) as listing:
                async for page in listing.pages():
                    kept = [item for item in page.items if item.get("id") not in seen]
                    seen.update(item.get("id") for item in kept)
                    changes.duplicates_dropped += len(page.items) - len(kept)
                    if on_page is not None:
                        on_page(page)
                    yield replace(page, items=kept) if len(kept) != len(page.items) else page

    try:
        summary = await export(merged(), out, fmt, changes=changes)
    finally:
        out.close()
    return summary

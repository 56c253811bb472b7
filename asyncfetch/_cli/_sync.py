"""Bulk sync: one run of the CLI, several lists, one client, files that survive a stop.

Every list of a run shares the client's connection pool and rate budget.
Each list goes to its own file (``--out`` for one list, ``--out-dir`` for
several), resumable from its checkpoint; or all lists go to one merged file,
one list after another, records seen in an earlier list dropped, while the
lists fetched one after another.

A file is written under a temporary name beside it (``users.jsonl.partial``,
its checkpoint ``users.jsonl.partial.checkpoint``) and renamed into place
once complete: a run that fails never leaves a partial file where a good
earlier export was, and the partial one stays resumable. Beside it, for
the whole run, an exclusive ``flock`` on ``users.jsonl.lock``: a second run
writing the same file would interleave its pages with the first's.
A checkpoint and the file it describes are read as input that may have been
edited: resume checks that the file ends a record at the checkpoint's
offset and holds as many records as it says, before any request.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import os
import sys
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import IO, Any, Generic, Protocol, TypeVar

import anyio

from .. import (
    FetchStats,
    Item,
    ListChanges,
    Listing,
    Page,
    count_check_resumed,
    drop_repeated_ids,
)
from .._exceptions import PageLimitError
from ._checkpoint import Checkpoint, CheckpointWriter, checkpoint_path
from ._export import ExportSummary, Progress, export
from ._formats import OutputFormat
from ._progress import ProgressBoard

__all__ = [
    "FetchClient",
    "ListSpec",
    "Output",
    "OutputLock",
    "Target",
    "in_place",
    "partial_path",
    "plan_targets",
    "sync_merged",
    "sync_separately",
]


class FetchClient(Protocol):
    """What a run asks of its client: to be opened and closed (``async with``)
    and its ``stats`` for the progress bar and the report. ``IntercomClient``
    and ``PagesClient`` both are one; a `ListSpec` knows the rest of its client."""

    @property
    def stats(self) -> FetchStats: ...

    async def __aenter__(self) -> object: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


C = TypeVar("C", bound=FetchClient)


@dataclass(frozen=True, slots=True)
class ListSpec(Generic[C]):
    """One list of a run: its display ``name``, a file-name ``slug``, how to make
    its listing from the client (a ``C``), and what identifies the request in a
    checkpoint."""

    name: str
    slug: str
    make: Callable[[C], Listing[Item]]
    fingerprint: dict[str, Any]


@dataclass(slots=True)
class Target(Generic[C]):
    """Where one list goes, where it stopped last time (``resume_from``, and the
    list's ``total_count`` then), or that its file is ``complete`` already."""

    spec: ListSpec[C]
    path: str
    resume_from: Progress | None = None
    total_count: int | None = None
    complete: bool = False
    summary: ExportSummary | None = field(default=None)
    fmt: OutputFormat | None = None

    @property
    def checkpoint(self) -> str | None:
        """The checkpoint beside the partial file."""
        return None if in_place(self.path) else checkpoint_path(partial_path(self.path))


def partial_path(path: str) -> str:
    """Where the file for ``path`` is written until it is complete."""
    return path + ".partial"


def in_place(path: str) -> bool:
    """``-`` (stdout), a pipe or a device (``/dev/null``, a named pipe), or the
    kernel's name of an open file (``/dev/stdout``, ``/dev/fd/3``, even when it
    is a regular file): written directly, never under a temporary name renamed
    over it, which would replace the pipe, the device node or the link with a
    regular file (or fail, in ``/proc``); so never resumable."""
    if path == "-":
        return True
    full = os.path.abspath(path)
    if full.startswith(("/dev/", "/proc/")) and not full.startswith("/dev/shm/"):
        return True  # /dev/shm holds regular files, written as anywhere else
    return os.path.exists(path) and not os.path.isfile(path)


class Output:
    """An output file, written under a temporary name beside it (``partial_path``)
    and renamed over ``path`` by ``commit()`` once complete: a failed or
    interrupted run never replaces an earlier good export, and what it wrote
    stays in the partial file, resumable with its checkpoint. The partial file
    is opened only at the first write, so a run that fails before its first
    page leaves an earlier partial file (and its checkpoint) untouched too.
    Resuming, it is cut back to ``resume_offset`` bytes (dropping a page
    half-written by a killed run). ``-`` is stdout, written directly, as is a
    pipe or a device (`in_place`)."""

    def __init__(
        self, path: str, *, resume_offset: int | None = None, checkpoint: str | None = None
    ) -> None:
        self._path = path
        self._in_place = in_place(path)
        self.partial = path if self._in_place else partial_path(path)
        self._resume_offset = resume_offset
        self._checkpoint = checkpoint
        self._file: IO[bytes] | None = None

    def write(self, data: bytes) -> int:
        if self._file is None:
            self._file = self._open()
        return self._file.write(data)

    def _open(self) -> IO[bytes]:
        if self._path == "-":
            return sys.stdout.buffer
        if self._in_place:
            return open(self._path, "wb")
        if self._resume_offset is None:
            if self._checkpoint is not None:
                # A fresh start: an earlier checkpoint no longer describes the file.
                Checkpoint.remove(self._checkpoint)
            return open(self.partial, "wb")
        file = open(self.partial, "r+b")  # noqa: SIM115 - closed by close()
        file.truncate(self._resume_offset)
        file.seek(self._resume_offset)
        return file

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def commit(self) -> None:
        """The file is complete: make it durable and put it in place."""
        if self._in_place:
            self.flush()
            return
        file = self._file if self._file is not None else self._open()
        file.flush()
        os.fsync(file.fileno())
        file.close()
        self._file = None
        if self._checkpoint is not None:
            # Before the rename: a stop in between leaves a partial file with
            # no checkpoint (fetched again), never a checkpoint without its file.
            Checkpoint.remove(self._checkpoint)
            # One an earlier version left beside the file no longer describes it.
            Checkpoint.remove(checkpoint_path(self._path))
        os.replace(self.partial, self._path)

    def close(self) -> None:
        if self._file is not None and self._file is not sys.stdout.buffer:
            self._file.close()
            self._file = None


class OutputLock:
    """An exclusive lock (``flock``) on ``<path>.lock``, held while a run writes
    ``path``: a second run writing the same file stops instead of interleaving.
    The lock file is removed when released; whoever locks a lock file checks it
    is still the one at that path (it may have been removed meanwhile)."""

    def __init__(self, path: str) -> None:
        self.path = path + ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ``BlockingIOError`` when another run holds it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            except BaseException:
                os.close(fd)
                raise
            if same:
                self._fd = fd
                return
            os.close(fd)  # removed by its holder meanwhile: lock the new one

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
            os.close(self._fd)
            self._fd = None


def plan_targets(
    specs: list[ListSpec[C]],
    paths: list[str],
    fingerprint_extra: dict[str, Any],
    *,
    resume: bool,
    restart: bool = False,
) -> list[Target[C]]:
    """Pair lists with paths and read their checkpoints, before any request.

    With ``resume``, a list whose partial file has a checkpoint continues from
    it, after checking that the file still ends a record where the checkpoint
    says and holds as many records; a list whose file is complete (no partial
    file left) is marked ``complete`` and not fetched, unless ``restart``
    (which fetches it again from page 1).

    Raises ``CheckpointMismatch`` or ``ValueError`` for a checkpoint that
    cannot be used.
    """
    targets: list[Target[C]] = []
    for spec, path in zip(specs, paths, strict=True):
        spec = replace(spec, fingerprint={**spec.fingerprint, **fingerprint_extra})
        target = Target(spec=spec, path=path)
        if resume and target.checkpoint is not None:
            partial = partial_path(path)
            _adopt_earlier_layout(path, target.checkpoint, spec.fingerprint)
            checkpoint = Checkpoint.load(target.checkpoint, spec.fingerprint)
            if checkpoint is not None:
                _check_partial(partial, checkpoint, str(spec.fingerprint.get("format")))
                target.resume_from = Progress(
                    pages=checkpoint.pages, items=checkpoint.items, offset=checkpoint.offset
                )
                target.total_count = checkpoint.total_count
            elif not restart and os.path.exists(path) and not os.path.exists(partial):
                target.complete = True
        targets.append(target)
    return targets


def _adopt_earlier_layout(path: str, checkpoint: str, fingerprint: dict[str, Any]) -> None:
    """Versions before the partial file wrote ``path`` in place with its checkpoint
    beside it: an interrupted run of theirs would look complete. Such a file,
    once checked, becomes the partial file, its checkpoint the partial's."""
    earlier = checkpoint_path(path)
    partial = partial_path(path)
    if os.path.exists(checkpoint) or os.path.exists(partial) or not os.path.exists(earlier):
        return
    loaded = Checkpoint.load(earlier, fingerprint)
    if loaded is None:
        return
    _check_partial(path, loaded, str(fingerprint.get("format")))
    os.replace(path, partial)
    os.replace(earlier, checkpoint)


_CHUNK = 1 << 20


def _check_partial(partial: str, checkpoint: Checkpoint, format_name: str) -> None:
    """Refuse a partial file that no longer matches its checkpoint: shorter than
    it, not ending a record at its offset, or holding another number of records
    before it (line endings converted, lines added or removed by hand)."""
    size = os.path.getsize(partial) if os.path.exists(partial) else -1
    afresh = "drop --resume (or add --restart) to start afresh"
    if size < checkpoint.offset:
        found = "missing" if size < 0 else f"shorter than its checkpoint says ({size} bytes)"
        raise ValueError(
            f"{partial} is {found}; the checkpoint says {checkpoint.offset} bytes; {afresh}"
        )
    if checkpoint.offset == 0:
        if checkpoint.items:
            raise ValueError(
                f"{partial}: the checkpoint says {checkpoint.items} records in 0 bytes"
            )
        return
    ends = {"jsonl": b"\n", "csv": b"\n", "json": b"}" if checkpoint.items else b"["}
    with open(partial, "rb") as file:
        file.seek(checkpoint.offset - 1)
        last = file.read(1)
        file.seek(0)
        if format_name == "csv":
            records = _csv_records(file, checkpoint.offset) - 1  # the header line
        else:
            records = _count_newlines(file, checkpoint.offset)
    if last != ends.get(format_name, last):
        raise ValueError(
            f"{partial} does not end a record at byte {checkpoint.offset}, where its "
            f"checkpoint says the last whole page ends: the file was changed; {afresh}"
        )
    if records != checkpoint.items:
        raise ValueError(
            f"{partial} holds {records} records in its first {checkpoint.offset} bytes where "
            f"its checkpoint says {checkpoint.items}: the file was changed; {afresh}"
        )


def _count_newlines(file: IO[bytes], limit: int) -> int:
    count = 0
    while limit > 0:
        chunk = file.read(min(_CHUNK, limit))
        if not chunk:
            break
        count += chunk.count(b"\n")
        limit -= len(chunk)
    return count


def _csv_records(file: IO[bytes], limit: int) -> int:
    def lines() -> Iterator[str]:
        left = limit
        for line in file:
            if left <= 0:
                return
            yield line[:left].decode("utf-8", "replace")
            left -= len(line)

    return sum(1 for _ in csv.reader(lines()))


Warn = Callable[[str], None]


async def sync_separately(
    client: C,
    targets: list[Target[C]],
    make_fmt: Callable[[str], OutputFormat],
    board: ProgressBoard,
    *,
    warn: Warn,
    restart_on_change: bool = False,
) -> None:
    """Each list to its own file, all lists fetched together (those ``complete``
    already skipped), each in a format of its own from ``make_fmt(list name)``."""
    async with anyio.create_task_group() as group:
        for target in targets:
            if not target.complete:
                group.start_soon(
                    _sync_one,
                    client,
                    target,
                    make_fmt(target.spec.name),
                    board,
                    warn,
                    restart_on_change,
                )


async def _sync_one(
    client: C,
    target: Target[C],
    fmt: OutputFormat,
    board: ProgressBoard,
    warn: Warn,
    restart_on_change: bool,
) -> None:
    target.fmt = fmt
    resumed = target.resume_from
    checkpoint_file = target.checkpoint
    fingerprint = target.spec.fingerprint
    listing = target.spec.make(client)
    pages = listing.pages(start=resumed.pages + 1 if resumed else 1)
    if resumed is not None:
        past_cap = False
        try:
            first = await anext(pages, None)
        except PageLimitError as exc:
            # Now past the cap, it can only go on by the scroll, so this resume
            # refuses; but the list grew since the checkpoint: a change, which
            # --restart-on-change answers by starting over.
            await listing.aclose()
            if not restart_on_change or exc.total_count is None:
                raise
            first, past_cap = None, True
            listing.changes.first_total_count = exc.total_count
        except BaseException:
            await listing.aclose()
            raise
        # The list may have changed a lot since the interrupted run: compare
        # its length now with the length the checkpoint recorded.
        now, then = listing.changes.first_total_count, target.total_count
        if past_cap or (first is not None and now is not None and then is not None and now != then):
            changed = (
                f"{target.spec.name}: the list is now past the 10,000-record cap "
                f"(total_count {then} -> {now})"
                if past_cap
                else f"{target.spec.name}: the list changed since the interrupted run "
                f"(total_count {then} -> {now})"
            )
            if restart_on_change:
                warn(f"{changed}; starting over (--restart-on-change)")
                await listing.aclose()
                target.resume_from = resumed = None
                listing = target.spec.make(client)
                pages = listing.pages()
                first = None
            else:
                warn(
                    f"{changed}; the {_plural(resumed.pages, 'page')} already written may "
                    "be stale (--restart-on-change starts over)"
                )
        if first is not None:
            pages = _prepend(first, pages)
    out = Output(
        target.path,
        resume_offset=resumed.offset if resumed else None,
        checkpoint=checkpoint_file,
    )
    changes = listing.changes
    writer = CheckpointWriter(checkpoint_file) if checkpoint_file else None

    def save(progress: Progress) -> None:
        assert writer is not None
        if listing.changes.method != "pages" and not fingerprint.get("scroll"):
            # Scroll batches are not numbered pages: the checkpoint stays at the
            # last numbered page (none, for a list scrolled from page 1 because it
            # was past the cap), and a resume from it refuses, goes on by page or
            # starts over. Only --scroll, in the fingerprint, resumes by batch.
            writer.save_pending()  # that last numbered page, now
            return
        writer.offer(
            Checkpoint(
                fingerprint,
                progress.pages,
                progress.items,
                progress.offset,
                changes.last_total_count,
            )
        )

    try:
        async with listing:
            try:
                target.summary = await export(
                    pages,
                    out,
                    fmt,
                    changes=changes,
                    resume_from=resumed,
                    on_page=board.track(
                        target.spec.name, done_pages=resumed.pages if resumed else 0
                    ),
                    on_written=save if writer else None,
                )
            except BaseException:
                # A failure or Ctrl-C: the last whole page's checkpoint (the file
                # holds it). One that cannot be saved (a full disk) leaves the
                # earlier one, which claims less, and the first error.
                if writer is not None:
                    with contextlib.suppress(OSError):
                        writer.save_pending()
                raise
            if writer is not None:
                writer.save_pending()
        if resumed is not None:
            count_check_resumed(
                target.spec.name,
                resumed.items + target.summary.items,
                target.summary.changes,
                including="the file's",
            )
        out.commit()
    finally:
        out.close()


async def _prepend(
    first: Page[Item], rest: AsyncGenerator[Page[Item], None]
) -> AsyncGenerator[Page[Item], None]:
    async with aclosing(rest):
        yield first
        async for page in rest:
            yield page


async def sync_merged(
    client: C,
    targets: list[Target[C]],
    out: Output,
    fmt: OutputFormat,
    board: ProgressBoard,
) -> None:
    """Every list into one file, one after another, a record seen before dropped.

    The lists are fetched one after another too: a list past the record cap is
    scrolled, Intercom allows one scroll at a time, and a later list's scroll
    waiting on an earlier list that is waiting to be written would never end.
    Each target gets a summary of its own (pages, records kept, and its
    listing's changes: method, count check, duplicates dropped, those already
    written by an earlier list included), for the report and ``--stats``.
    """
    kept_by_list = [[0, 0] for _ in targets]  # pages, records kept
    changes_by_list: list[ListChanges | None] = [None] * len(targets)

    async def merged() -> AsyncGenerator[Page[Item], None]:
        seen: set[object] = set()
        for index, target in enumerate(targets):
            on_page = board.track(target.spec.name)
            async with target.spec.make(client) as listing:
                changes_by_list[index] = listing.changes
                # A record an earlier list wrote is dropped, counted as this list's.
                pages = drop_repeated_ids(listing.pages(), listing.changes, seen)
                async with aclosing(pages):
                    async for page in pages:
                        kept_by_list[index][0] += 1
                        kept_by_list[index][1] += len(page.items)
                        if on_page is not None:
                            on_page(page)
                        yield page

    try:
        summary = await export(merged(), out, fmt, changes=ListChanges())
        out.commit()
    finally:
        out.close()
    for target, (pages, items), changes in zip(targets, kept_by_list, changes_by_list, strict=True):
        if changes is not None:
            target.summary = ExportSummary(
                pages=pages, items=items, seconds=summary.seconds, changes=changes
            )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"

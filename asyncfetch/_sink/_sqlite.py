"""The SQLite backend: the standard library's ``sqlite3``, off the event loop.

Every call runs in a worker thread (``anyio.to_thread.run_sync``), one at a
time under a lock, on one connection opened with ``check_same_thread=False``:
the event loop keeps the fetch's window of requests running while a page is
written. A call is not cancellable mid-statement (anyio waits for the
thread), so a transaction always ends committed or rolled back.

WAL mode: readers (a query while a sync runs) do not block the writer.
``synchronous=NORMAL`` keeps a committed page through ``kill -9`` (WAL is
synced at checkpoints; an OS crash may lose the last pages, which the rerun
fetches again: progress and records are in the same transaction).
Checkpoints come every ``_CHECKPOINT_PAGES`` WAL pages and on close.

The writer lock is an exclusive ``flock`` on ``<file>.lock`` beside the
database, held for as long as the sink is open; a second asyncfetch run
writing the same file gets ``SinkLockedError`` instead of interleaving.
Readers are never locked out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import re
import sqlite3
import stat
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from .._exceptions import SinkLockedError, SinkOpenError, SinkWriteError
from ._base import Sink, SinkURL, Step
from ._schema import SQLITE

__all__ = ["SQLiteSink", "sqlite_timestamp"]

T = TypeVar("T")

_PARAM = re.compile(r"\$(\d+)")

# WAL pages (4 KiB) before SQLite copies them into the file, with an fsync:
# 16 MiB rather than its default 4 MiB, a checkpoint per ~4,000 records
# rather than ~1,000 (measured: the commits of a 10,000-user sync took half
# the writer's time at the default). The rest is checkpointed on close.
_CHECKPOINT_PAGES = 4000


def sqlite_timestamp(value: dt.datetime) -> str:
    """A timestamp as SQLite's own ``datetime()`` writes it, in UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _arg(value: Any) -> Any:
    return sqlite_timestamp(value) if isinstance(value, dt.datetime) else value


def _args(values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(_arg(value) for value in values)


class SQLiteSink(Sink):
    """A SQLite database file (``sqlite:///path/x.db`` or a bare ``x.db``)."""

    dialect = SQLITE

    def __init__(self, url: SinkURL) -> None:
        super().__init__(url)
        assert url.path is not None
        self.path = url.path
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._calls = anyio.Lock()
        self._sql: dict[str, str] = {}

    def _text(self, sql: str) -> str:
        text = self._sql.get(sql)
        if text is None:
            text = self._sql[sql] = _PARAM.sub(r"?\1", sql)
        return text

    async def _call(self, work: Callable[[], T]) -> T:
        async with self._calls:
            return await anyio.to_thread.run_sync(work)

    async def _connect(self) -> None:
        await self._call(self._connect_sync)

    def _connect_sync(self) -> None:
        where = self.display
        if self.path.is_dir():  # checked before its lock file is made beside it
            raise SinkOpenError(f"{where}: cannot open: it is a folder, not a database file")
        try:
            self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SinkOpenError(f"{where}: cannot create its lock file: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._unlock()
            raise SinkLockedError(
                f"{where}: another asyncfetch run is writing this database"
            ) from None
        try:
            mode = os.stat(self.path).st_mode
        except OSError:
            mode = None  # made below, or refused by sqlite3 in its own words
        # A file nobody may write is read-only for this run too (root included:
        # its owner said so); one this user may not read or write is refused.
        if mode is not None and stat.S_ISREG(mode) and not mode & 0o222:
            self._unlock()
            raise SinkOpenError(f"{where}: cannot write: the file is read-only")
        if mode is not None and not os.access(self.path, os.R_OK | os.W_OK):
            self._unlock()
            raise SinkOpenError(f"{where}: cannot open: the file is not readable and writable")
        try:
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10
            )
        except sqlite3.Error as exc:
            self._unlock()
            raise SinkOpenError(f"{where}: cannot open: {exc}") from None
        doing = "open"
        try:
            db.execute("PRAGMA journal_mode=WAL")  # reads the file: not a database fails
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
            # Can it be written at all? (A read-only file or folder says so here.)
            doing = "write"
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            db.close()
            self._unlock()
            raise SinkOpenError(f"{where}: cannot {doing}: {exc}") from None
        self._db = db

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    async def _disconnect(self) -> None:
        await self._call(self._disconnect_sync)

    def _disconnect_sync(self) -> None:
        db, self._db = self._db, None
        try:
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    # What the WAL holds goes into the file; the WAL is emptied.
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                with contextlib.suppress(sqlite3.Error):
                    db.close()
        finally:
            self._unlock()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise SinkWriteError(f"{self.display}: the database is closed")
        return self._db

    async def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        def work() -> list[tuple[Any, ...]]:
            try:
                return self._connection().execute(self._text(sql), _args(args)).fetchall()
            except sqlite3.Error as exc:
                raise SinkWriteError(f"{self.display}: {exc}") from None

        return await self._call(work)

    async def _transaction(
        self, steps: Sequence[Step], *, pages: bool = False
    ) -> list[list[tuple[Any, ...]]]:
        def work() -> list[list[tuple[Any, ...]]]:
            db = self._connection()
            results: list[list[tuple[Any, ...]]] = []
            try:
                db.execute("BEGIN IMMEDIATE")
                for step in steps:
                    text = self._text(step.sql)
                    if step.many:
                        db.executemany(text, [_args(each) for each in step.args])
                        results.append([])
                    else:
                        results.append(db.execute(text, _args(step.args)).fetchall())
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise SinkWriteError(f"{self.display}: {exc}") from None
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            return results

        return await self._call(work)

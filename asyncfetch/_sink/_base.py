"""``Sink``: what every database backend of ``--db`` implements, and ``open_sink``.

The logic of a sync lives here once, written against four primitives a
backend provides (connect with an exclusive writer lock, disconnect, a query,
a list of statements in one transaction), so SQLite and PostgreSQL cannot
drift apart in what they promise:

- ``begin_run`` starts a run of one list, or continues the last one if it did
  not complete and was for the same request (list name, ``per_page``, base
  URL: its fingerprint). The next page to fetch comes from the database's own
  ``sync_runs`` row: there is no checkpoint file to lose or disagree with.
- ``write_page`` writes one page in ONE transaction with the run's progress:
  the records upserted (an update applies only when the incoming
  ``updated_at`` is not older than the stored one: a record never moves
  backwards), the page's ids into ``sync_staging`` for this run, and the next
  page to fetch. After ``kill -9`` a page is either all in, progress included,
  or not at all. ``write_batch`` writes several pages so in ONE transaction
  (one commit for the lot), the progress at the last of them.
- ``finish_run`` with ``complete=True`` swaps the list's ``list_members`` for
  the run's staging in one transaction, and after a full pass of a whole
  collection (``whole=True``) marks ``deleted_at`` on the records not seen;
  the bookmark is the run's START time (updates made during the run are
  caught by the next). With ``complete=False`` the run is ``failed``, the
  membership is untouched and its progress kept for the rerun.

The URL is parsed by ``open_sink`` before anything is opened (the CLI checks
it before any request); a password in it never reaches a message.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import orjson
from yarl import URL

from .._exceptions import SchemaVersionError, SinkError, SinkURLError, SinkWriteError
from . import _schema as sql
from ._schema import KINDS, SCHEMA_VERSION, Dialect, Row, row_of, schema_statements

__all__ = [
    "SQLITE_SUFFIXES",
    "Sink",
    "SinkRun",
    "SinkURL",
    "Step",
    "open_sink",
    "parse_sink_url",
    "workspace_sink_url",
]

# A bare path with one of these endings is a SQLite database.
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


@dataclass(frozen=True, slots=True)
class SinkURL:
    """A parsed database URL: ``scheme`` is ``"sqlite"`` or ``"postgresql"``;
    ``path`` the SQLite file; ``url`` the URL as given (it may hold a password:
    never show it); ``display`` the URL with any password replaced by ``***``."""

    scheme: str
    url: str
    display: str
    path: Path | None = None
    schema: str | None = None

    def __repr__(self) -> str:
        return f"SinkURL({self.display!r})"


def _redacted(url: str) -> str:
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return "<database URL>"
    if parsed.password is not None:
        parsed = parsed.with_password("***")
    if "password" in parsed.query:  # libpq's ?password=
        parsed = parsed.update_query(password="***")
    return str(parsed) if parsed != URL(url) else url


def parse_sink_url(url: str) -> SinkURL:
    """Which backend ``url`` names: ``sqlite:///abs/path.db`` (``sqlite:rel.db``
    for a relative path), a bare path ending ``.db``/``.sqlite``/``.sqlite3``,
    or ``postgresql://`` (``postgres://``). Anything else is a ``SinkURLError``."""
    display = _redacted(url)
    scheme, colon, rest = url.partition(":")
    if colon and scheme.lower() in ("postgresql", "postgres") and rest.startswith("//"):
        return SinkURL(scheme="postgresql", url=url, display=display)
    if colon and scheme.lower() == "sqlite":
        if rest.startswith("///"):
            path = rest[2:]
        elif rest.startswith("//"):
            raise SinkURLError(
                f"database URL {display!r}: a SQLite URL is sqlite:///absolute/path.db "
                "or sqlite:relative/path.db (no host)"
            )
        else:
            path = rest
        if not path or path.endswith("/"):
            raise SinkURLError(f"database URL {display!r} names no file")
        if "?" in path:
            # It would be part of the file's name: sqlite3 is given a path.
            raise SinkURLError(
                f"database URL {display!r}: a SQLite URL takes no ?query, only a file's path"
            )
        return SinkURL(scheme="sqlite", url=url, display=display, path=Path(path))
    if url.lower().endswith(SQLITE_SUFFIXES) and (
        not colon or len(scheme) == 1 or "/" in scheme or "\\" in scheme
    ):
        return SinkURL(scheme="sqlite", url=url, display=display, path=Path(url))
    raise SinkURLError(
        f"database URL {display!r}: unknown kind; use sqlite:///path/x.db, a path "
        f"ending {', '.join(SQLITE_SUFFIXES)}, or postgresql://user@host/db"
    )


def workspace_sink_url(parsed: SinkURL, workspace: str) -> SinkURL:
    """Where ``workspace``'s tables go in the database ``parsed`` names: a SQLite
    file beside it (``x.db`` -> ``x-acme.db``), or a PostgreSQL schema of its
    own (``acme``, created on first use) in the same database. ``workspace``
    is letters, digits, ``-`` and ``_`` (checked by the caller: a file name and
    a quoted identifier both take it as it is)."""
    if parsed.scheme == "sqlite":
        assert parsed.path is not None
        path = parsed.path.with_name(f"{parsed.path.stem}-{workspace}{parsed.path.suffix}")
        return SinkURL(scheme="sqlite", url=str(path), display=str(path), path=path)
    return dataclasses.replace(
        parsed, display=f"{parsed.display} (schema {workspace})", schema=workspace
    )


def open_sink(url: str, *, workspace: str | None = None) -> Sink:
    """The backend for ``url``, not yet opened (``async with open_sink(url) as sink``).
    With ``workspace``, that workspace's own file or schema (`workspace_sink_url`).

    Raises ``SinkURLError`` for a URL no backend takes, and ``SinkOpenError``
    for ``postgresql://`` when the PostgreSQL backend is not available.
    """
    parsed = parse_sink_url(url)
    if workspace is not None:
        parsed = workspace_sink_url(parsed, workspace)
    if parsed.scheme == "sqlite":
        from ._sqlite import SQLiteSink

        return SQLiteSink(parsed)
    return _postgres(parsed)


def _postgres(parsed: SinkURL) -> Sink:
    from .._exceptions import SinkOpenError

    try:
        from . import _postgres  # type: ignore[attr-defined, unused-ignore]
    except ImportError as exc:
        missing = (
            f"it needs {exc.name} (pip install 'asyncfetch[postgres]')"
            if exc.name and not exc.name.startswith("asyncfetch")
            else "not in this version of asyncfetch"
        )
        raise SinkOpenError(
            f"{parsed.display}: the PostgreSQL backend is not available: {missing}"
        ) from None
    sink: Sink = _postgres.PostgresSink(parsed)
    return sink


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a transaction: ``sql`` with ``$1..$n`` parameters, run
    once with ``args`` or, when ``many`` is true, once per tuple in ``args``."""

    sql: str
    args: Sequence[Any] = ()
    many: bool = False


@dataclass(slots=True)
class SinkRun:
    """One run of one list, as ``begin_run`` found or started it.

    ``next_page`` is where the fetch starts (1 for a new run, the page after
    the last one written for a continued one); ``items``, ``pages`` and
    ``requests`` count what the run has written so far, over every process
    that worked on it. An ``incremental`` run writes records only: it leaves
    the list's membership and deletions alone. ``started`` is the run's start (the bookmark once it
    completes); ``bookmark`` the start of the list's last complete run
    (``None`` if none), for an incremental run.
    """

    id: int
    list: str
    kind: str
    whole: bool
    started: dt.datetime
    next_page: int = 1
    items: int = 0
    pages: int = 0
    requests: int = 0
    resumed: bool = False
    bookmark: dt.datetime | None = None
    incremental: bool = False
    _requests_before: int = field(default=0, repr=False)


# A list of one kind may hold records of another (a tag's users list holds
# the leads carrying it, "type": "contact"): each goes to its own kind's table.
_TABLE_OF_TYPE = {
    "user": "users",
    "contact": "contacts",
    "lead": "contacts",
    "company": "companies",
}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _as_datetime(value: object) -> dt.datetime | None:
    """A stored timestamp as an aware UTC ``datetime`` (SQLite stores text)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    return None


def fingerprint(*, list_name: str, per_page: int, base_url: str, incremental: bool = False) -> str:
    """What identifies a run's request: a run for another is not continued."""
    request: dict[str, object] = {"list": list_name, "per_page": per_page, "base_url": base_url}
    if incremental:
        request["incremental"] = True
    return orjson.dumps(request, option=orjson.OPT_SORT_KEYS).decode()


class Sink(abc.ABC):
    """A database a sync writes to. Open it with ``async with``; one run at a
    time per database (``open`` takes an exclusive writer lock, a second
    writer gets ``SinkLockedError``).

    A backend subclass sets ``dialect`` and implements ``_connect``,
    ``_disconnect``, ``_query`` and ``_transaction``; everything else is here.
    """

    dialect: ClassVar[Dialect]

    def __init__(self, url: SinkURL) -> None:
        self.url = url
        self._open = False

    @property
    def display(self) -> str:
        """The database's URL with any password replaced by ``***``."""
        return self.url.display

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display!r})"

    # --- What a backend implements. ---

    @abc.abstractmethod
    async def _connect(self) -> None:
        """Connect and take the exclusive writer lock (held until ``_disconnect``).
        Raises ``SinkOpenError`` (cannot open or write) or ``SinkLockedError``."""

    @abc.abstractmethod
    async def _disconnect(self) -> None:
        """Release the lock and close; safe to call after a failed ``_connect``."""

    @abc.abstractmethod
    async def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one statement run on its own (its own transaction).
        Timestamps come back as the driver gives them (``_as_datetime`` reads
        both SQLite's text and PostgreSQL's ``datetime``)."""

    @abc.abstractmethod
    async def _transaction(
        self, steps: Sequence[Step], *, pages: bool = False
    ) -> list[list[tuple[Any, ...]]]:
        """Run ``steps`` in ONE transaction: all or nothing. The rows each step
        returned. A failure rolls back and raises ``SinkWriteError``. Parameters
        that are ``datetime`` are stored as the dialect's timestamps. ``pages``
        says the steps are pages with their progress (a backend may commit them
        without waiting for the disk, as it does a single page's statement)."""

    # --- The interface. ---

    async def open(self) -> None:
        """Connect, take the writer lock, create the schema on first use and
        check its version (``SchemaVersionError`` if newer than this code)."""
        await self._connect()
        try:
            await self._transaction([Step(sql.SCHEMA_VERSION_SQL)])
            self._check_version(await self._query(sql.VERSION_READ))
            await self._transaction(
                [Step(each) for each in schema_statements(self.dialect)]
                + [Step(sql.VERSION_WRITE, (SCHEMA_VERSION,))]
            )
        except BaseException:
            await self._disconnect()
            raise
        self._open = True

    async def aclose(self) -> None:
        """Release the writer lock and close the connection."""
        self._open = False
        await self._disconnect()

    async def __aenter__(self) -> Sink:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def bookmark(self, list_name: str) -> dt.datetime | None:
        """The start of ``list_name``'s last complete run (``None``: none yet):
        an incremental run asks for the records updated since (less a margin)."""
        self._check_open()
        rows = await self._query(sql.LAST_BOOKMARK, (list_name,))
        return _as_datetime(rows[0][0]) if rows else None

    async def begin_run(
        self,
        *,
        list_name: str,
        kind: str,
        per_page: int,
        base_url: str,
        whole: bool,
        incremental: bool = False,
        restart: bool = False,
    ) -> SinkRun:
        """Start a run of ``list_name`` (its records go to table ``kind``), or
        continue its last run if that did not complete and asked for the same
        pages (same ``per_page`` and ``base_url``). ``whole`` says the list is a
        whole collection: a complete pass marks the records it did not see as
        deleted. An ``incremental`` run (only the records updated since the
        bookmark) writes records only: its end swaps no membership and marks
        no deletions, and it is continued from its first page (updates move
        records between pages), its start kept as the bookmark to be.
        ``restart`` never continues: an unfinished run is abandoned (its
        staged members dropped; the records it wrote stay) and a new one
        starts at page 1."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        self._check_open()
        whole = whole and not incremental
        print_ = fingerprint(
            list_name=list_name, per_page=per_page, base_url=base_url, incremental=incremental
        )
        bookmark_rows = await self._query(sql.LAST_BOOKMARK, (list_name,))
        bookmark = _as_datetime(bookmark_rows[0][0]) if bookmark_rows else None
        last = await self._query(sql.LAST_RUN, (list_name,))
        now = _now()
        if last:
            run_id, found, status, next_page, items, pages, requests, started = last[0]
            if status in ("running", "failed") and found == print_ and not restart:
                await self._transaction([Step(sql.CONTINUE_RUN, (run_id,))])
                return SinkRun(
                    id=int(run_id),
                    list=list_name,
                    kind=kind,
                    whole=whole,
                    started=_as_datetime(started) or now,
                    next_page=int(next_page),
                    items=int(items),
                    pages=int(pages),
                    requests=int(requests),
                    resumed=True,
                    bookmark=bookmark,
                    incremental=incremental,
                    _requests_before=int(requests),
                )
            steps = []
            if status in ("running", "failed"):
                # Another request's run: its pages cannot be continued by this one.
                steps = [Step(sql.ABANDON_RUN, (run_id, now)), Step(sql.DROP_STAGING, (run_id,))]
        else:
            steps = []
        rows = await self._transaction([*steps, Step(sql.NEW_RUN, (list_name, kind, print_, now))])
        return SinkRun(
            id=int(rows[-1][0][0]),
            list=list_name,
            kind=kind,
            whole=whole,
            started=now,
            bookmark=bookmark,
            incremental=incremental,
        )

    async def staged_ids(self, run: SinkRun) -> set[object]:
        """The ids ``run`` has staged so far (its pages already written): a
        continued run drops them when a changed list shows them again."""
        self._check_open()
        return {row[0] for row in await self._query(sql.STAGED_IDS, (run.id,))}

    async def write_page(
        self,
        run: SinkRun,
        page: int,
        records: Sequence[Mapping[str, Any]],
        *,
        requests: int,
    ) -> None:
        """Write page number ``page`` of ``run`` and the run's progress (next
        page ``page + 1``) in one transaction. Each record goes to the table
        of its ``type`` (``user``, ``contact``, ``company``), else to
        ``run.kind``'s. ``requests`` counts this process's requests so far.
        A record without an id is a ``SinkWriteError`` (nothing of the page
        is written)."""
        self._check_open()
        now = _now()
        rows, tables = self._rows(run, page, records, now)
        first = run.items + 1
        items = run.items + len(rows)
        total_requests = run._requests_before + requests
        await self._transaction(
            self._page_steps(
                run, page, rows, tables, now=now, first=first, items=items, requests=total_requests
            )
        )
        run.next_page = page + 1
        run.items = items
        run.pages += 1
        run.requests = total_requests

    async def write_batch(
        self,
        run: SinkRun,
        pages: Sequence[tuple[int, Sequence[Mapping[str, Any]]]],
        *,
        requests: int,
    ) -> None:
        """Write several consecutive ``pages`` (number, records) of ``run`` in ONE
        transaction, with the run's progress at the last of them: all of them
        commit, progress included, or none does (a ``SinkWriteError``, the
        database as it was). One commit for the lot instead of one per page; the
        same rows as ``write_page`` page after page. ``requests`` counts this
        process's requests so far."""
        self._check_open()
        if len(pages) == 1:
            await self.write_page(run, pages[0][0], pages[0][1], requests=requests)
            return
        total_requests = run._requests_before + requests
        # The run as it will be after each page: each page's steps (its progress
        # included) are the ones write_page would send; the last progress wins.
        after = dataclasses.replace(run)
        steps: list[Step] = []
        now = _now()
        for page, records in pages:
            rows, tables = self._rows(run, page, records, now)
            items = after.items + len(rows)
            steps += self._page_steps(
                after,
                page,
                rows,
                tables,
                now=now,
                first=after.items + 1,
                items=items,
                requests=total_requests,
            )
            after.next_page, after.items, after.pages = page + 1, items, after.pages + 1
        await self._transaction(steps, pages=True)
        run.next_page, run.items, run.pages = after.next_page, after.items, after.pages
        run.requests = total_requests

    def _rows(
        self, run: SinkRun, page: int, records: Sequence[Mapping[str, Any]], now: dt.datetime
    ) -> tuple[list[Row], dict[str, list[tuple[Any, ...]]]]:
        """A page's rows, and each table's rows to upsert (``now`` appended)."""
        rows = []
        tables: dict[str, list[tuple[Any, ...]]] = {}
        for record in records:
            row = row_of(record)
            if row is None:
                raise SinkWriteError(
                    f"{self.display}: page {page} of {run.list} holds a record without an id"
                )
            rows.append(row)
            table = _TABLE_OF_TYPE.get(record.get("type"), run.kind)  # type: ignore[arg-type]
            tables.setdefault(table, []).append((*row, now))
        return rows, tables

    def _page_steps(
        self,
        run: SinkRun,
        page: int,
        rows: Sequence[Row],
        tables: Mapping[str, Sequence[tuple[Any, ...]]],
        *,
        now: dt.datetime,
        first: int,
        items: int,
        requests: int,
    ) -> list[Step]:
        """The statements of ``write_page``'s one transaction: each table's rows
        upserted (``tables``: the rows of each, ``now`` appended), the page's ids
        staged in order from position ``first``, the rows marked seen, the run's
        progress. A backend may write the same in fewer round trips."""
        steps = [
            Step(sql.UPSERT.replace("{table}", table), upserts, many=True)
            for table, upserts in tables.items()
        ]
        steps.append(
            Step(
                sql.STAGE,
                [(run.id, first + i, page, row[0]) for i, row in enumerate(rows)],
                many=True,
            )
        )
        steps += [Step(sql.SEEN.replace("{table}", table), (now, run.id, page)) for table in tables]
        steps.append(Step(sql.PROGRESS, (run.id, page + 1, items, run.pages + 1, requests)))
        return steps

    async def finish_run(self, run: SinkRun, *, complete: bool, requests: int) -> None:
        """End ``run``: ``complete`` swaps the list's membership (and, for a
        whole collection, marks the unseen records deleted) in one transaction;
        otherwise the run is ``failed``, the membership untouched and its
        progress kept for the next run of the same list."""
        self._check_open()
        now = _now()
        total_requests = run._requests_before + requests
        steps = []
        if complete and not run.incremental:
            steps += [
                Step(sql.MEMBERS_DROP, (run.list,)),
                Step(sql.MEMBERS_SWAP, (run.list, run.id)),
            ]
            if run.whole:
                steps.append(Step(sql.MARK_DELETED.replace("{table}", run.kind), (now, run.id)))
        if complete:
            steps.append(Step(sql.DROP_STAGING, (run.id,)))
        status = "complete" if complete else "failed"
        steps.append(Step(sql.FINISH, (run.id, status, now, total_requests)))
        await self._transaction(steps)
        run.requests = total_requests

    def _check_version(self, rows: list[tuple[Any, ...]]) -> None:
        found = max((int(row[0]) for row in rows), default=None)
        if found is not None and found > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.display}: the database's schema is version {found}, newer than "
                f"this asyncfetch knows ({SCHEMA_VERSION}); upgrade asyncfetch"
            )

    def _check_open(self) -> None:
        if not self._open:
            raise SinkError(f"{self.display}: the database is not open (use async with)")
